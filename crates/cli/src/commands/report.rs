//! `curfew report`: the assessor's document — the conditions, the policy history, terminations
//! by rule and by day, locks, the latest `check` and `verify` results and the audit chain's
//! verification, coverage per target from the heartbeats, completeness, compensating controls,
//! the control mapping and a sign-off block — from the policy file and the audit log.

use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::Timestamp;

use crate::exit::Failure;
use crate::policy_file;

/// Output formats of `curfew report`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// One self-contained HTML page (no scripts, no external assets), printable.
    Html,
    /// Markdown.
    Md,
    /// One JSON document.
    Json,
}

/// Options of `curfew report`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The period: a duration back from now (30d, 12h) or an instant (2026-11-01,
    /// "2026-11-01 00:00 Europe/Berlin"). Default: the whole log.
    #[arg(long, value_name = "DURATION|TIME", allow_hyphen_values = true)]
    since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// The audit log to report on: a file or a directory (its files with .jsonl in their
    /// name); repeat it for a log and its rotated files, checked as one chain (default:
    /// `audit_log` in `[agent]`).
    #[arg(long, value_name = "FILE|DIR")]
    audit_log: Vec<PathBuf>,
    #[command(flatten)]
    check: super::integrity::CheckArgs,
}

/// Build and write the report.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let now = Timestamp::now();
    let since = args
        .since
        .as_deref()
        .map(|text| since(text, now))
        .transpose()
        .map_err(Failure::Usage)?;
    let audit: Vec<PathBuf> = if args.audit_log.is_empty() {
        let log = loaded.policy.agent.audit_log.as_ref().ok_or_else(|| {
            Failure::Usage(format!(
                "{} sets no audit_log in [agent]; name the log with --audit-log",
                loaded.source
            ))
        })?;
        curfew_audit::log_set(Path::new(log))
    } else {
        args.audit_log.clone()
    };
    // One pass: the chain is checked and the records kept as the files are read; then the
    // anchors on the policy's targets and the signatures.
    let mut entries: Vec<curfew_audit::Entry> = Vec::new();
    let checked = super::integrity::check(&audit, Ok(&loaded.policy), &args.check, |e| {
        entries.push(e.clone());
    })?;
    let verification = &checked.chain.verification;
    let integrity = curfew_report::Integrity::from_check(&checked);
    let explanation = curfew_policy::explain::explain(&loaded.policy);
    let audit_path = checked
        .chain
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let report = curfew_report::build(&curfew_report::Input {
        policy_source: &loaded.source,
        policy_sha256: &loaded.sha256,
        policy: &loaded.policy,
        explanation: &explanation,
        audit_path: &audit_path,
        entries: &entries,
        verification,
        integrity: &integrity,
        since,
        generated_at: now,
    });
    let text = match args.format {
        Format::Html => report.to_html().context("rendering the report")?,
        Format::Md => report.to_markdown(),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report).context("serializing the report")?
        ),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "curfew: report on {} ({} records{}) written to {}",
                audit_path,
                verification.records,
                if integrity.contradicted {
                    ", CONTRADICTED BY ANCHORS OR SIGNATURES"
                } else if report.chain.intact {
                    ", chain intact"
                } else {
                    ", CHAIN BROKEN"
                },
                path.display()
            );
        }
        None => crate::exit::out_text(&text)?,
    }
    let problems = report.chain.problems.len();
    if problems == 0 {
        return match checked.unconfirmed() {
            Some(why) => Err(Failure::Check(format!(
                "the audit chain of {audit_path} is {why}"
            ))),
            None => Ok(()),
        };
    }
    let first = checked
        .first_seq()
        .map(|seq| format!("; first missing or differing seq {seq}"))
        .unwrap_or_default();
    Err(Failure::Check(format!(
        "the audit chain of {audit_path} is {} ({problems} problem{}{first}; the report lists them)",
        if integrity.contradicted {
            "contradicted by the anchors or signatures kept outside the log"
        } else {
            "broken"
        },
        if problems == 1 { "" } else { "s" }
    )))
}

/// `--since`: a duration back from `now`, or an instant.
fn since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    crate::when::parse_past(text, now).map_err(|e| format!("--since: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_an_instant() {
        let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        assert_eq!(
            since("30d", now).unwrap(),
            "2026-10-24T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            since("2026-11-01T00:00:00Z", now).unwrap(),
            "2026-11-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(since("last tuesday", now).unwrap_err().contains("--since"));
    }
}
