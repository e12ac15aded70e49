//! `curfew validate`: check a policy and list its rules.

use std::path::Path;

use curfew_policy::explain::summary;
use curfew_policy::visible;

use crate::exit::{Failure, out_text};
use crate::policy_file;

/// Options of `curfew validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print nothing when the policy is valid (errors and warnings still go to standard error).
    #[arg(short, long)]
    quiet: bool,
}

/// Validate the policy and print a line per rule.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let file = policy_file::load(config)?;
    if args.quiet {
        return Ok(());
    }
    let policy = &file.policy;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut text = format!(
        "{}: valid: {}, {} (sha256 {})\n",
        file.source,
        plural(policy.rules.len(), "rule"),
        plural(policy.targets.len(), "target"),
        &file.sha256[..16]
    );
    let width = policy
        .rules
        .iter()
        .map(|r| visible(&r.name).chars().count())
        .max()
        .unwrap_or(0);
    for rule in &policy.rules {
        text.push_str(&format!(
            "  {:<width$}  {}\n",
            visible(&rule.name),
            visible(&summary(rule))
        ));
    }
    out_text(&text)
}
