//! `curfew compile`: the policy as native database settings (defense in depth).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::exit::{Failure, out};
use crate::policy_file;

/// The databases `curfew compile` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Dialect {
    /// PostgreSQL 14 or later: ALTER ROLE ... SET and CONNECTION LIMIT, in one transaction.
    Postgres,
    /// Oracle Database: profiles, ALTER USER ... PROFILE, RESOURCE_LIMIT, sqlnet.ora lines.
    Oracle,
}

/// Options of `curfew compile`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which database to write the settings for.
    #[arg(long, value_enum)]
    dialect: Dialect,

    /// Write the script to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Print (or write) the native settings for the policy.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let file = policy_file::load_conditions(config)?;
    let dialect = match args.dialect {
        Dialect::Postgres => curfew_compile::Dialect::Postgres,
        Dialect::Oracle => curfew_compile::Dialect::Oracle,
    };
    let script = curfew_compile::compile(&file.policy, dialect, &file.source, &file.sha256);
    match &args.output {
        None => out(&script),
        Some(path) => std::fs::write(path, script)
            .with_context(|| format!("writing {}", path.display()))
            .map_err(Failure::Runtime),
    }
}
