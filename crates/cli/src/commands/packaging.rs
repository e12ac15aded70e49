//! `curfew completions` and `curfew man`: shell completions and manual pages generated from the
//! command-line definition, so they never drift from `--help`.

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

use crate::exit::{Failure, out};

/// Options of `curfew completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Options of `curfew man`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// Write one page per command (curfew.1, curfew-agent.1, ...) into this directory instead
    /// of printing curfew(1).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// The policy file's page, curfew.toml(5), instead (printed, or written into --out-dir as
    /// curfew.toml.5).
    #[arg(long)]
    policy: bool,
}

/// Print the completion script for a shell.
pub(crate) fn completions(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut command = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "curfew", &mut script);
    out(&String::from_utf8_lossy(&script))
}

/// Print curfew(1), or write every page into a directory.
pub(crate) fn man(args: &ManArgs) -> Result<(), Failure> {
    if args.policy {
        let page = super::policy_man::page();
        return match &args.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join("curfew.toml.5");
                std::fs::write(&path, page)
                    .with_context(|| format!("writing {}", path.display()))?;
                out(&format!("Manual page written to {}\n", path.display()))
            }
            None => out(&page),
        };
    }
    let command = crate::Cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            out(&format!("Manual pages written to {}\n", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the manual page")?;
            out(&String::from_utf8_lossy(&page))
        }
    }
}
