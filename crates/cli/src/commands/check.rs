//! `curfew check`: read each target's live configuration and report findings (the
//! session-termination requirement and the security guide's hardening items), each with the
//! requirement, what was observed, what is expected and a fix. Exit 3 when one fails.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use curfew_check::{Checked, Finding, PolicyContext, Status, any_failed, check_target};
use jiff::Timestamp;

use super::Document as Format;
use crate::exit::{Failure, out, out_text};
use crate::policy_file;
use crate::table::{md_cell as cell, md_header};

/// Options of `curfew check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Record the result in this audit log (default: `audit_log` in `[agent]`), for
    /// `curfew report`.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<std::path::PathBuf>,
    /// Do not record the result in the audit log.
    #[arg(long, conflicts_with = "audit_log")]
    no_record: bool,
    /// The largest offset between this host's clock and each server's that passes (session
    /// ages come from the server's clock, audit timestamps from the host's). Run check on the
    /// agent's host: that is the offset that matters.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    max_clock_offset: curfew_policy::Limit,
}

/// Check each target.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = policy_file::targets(&loaded, args.target.as_deref())?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let context = PolicyContext {
        policy: &loaded.policy,
        source: &loaded.source,
        sha256: &loaded.sha256,
        max_clock_offset: args.max_clock_offset.to_std(),
    };
    let checked_at = Timestamp::now();
    let results: Vec<Checked> = targets
        .iter()
        .map(|t| {
            let checked = runtime.block_on(check_target(t, context));
            for warning in &checked.warnings {
                eprintln!("curfew: warning: {warning}");
            }
            checked
        })
        .collect();
    let failed = results.iter().any(|r| any_failed(&r.findings));
    if !args.no_record {
        let audit = args
            .audit_log
            .clone()
            .or_else(|| loaded.policy.agent.audit_log.as_ref().map(Into::into));
        super::record_result(
            audit.as_deref(),
            curfew_check::configuration_records(&results, &loaded.sha256),
        );
    }
    match args.format {
        Format::Md => out_text(&markdown(&results, &loaded, checked_at))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "checked_at": checked_at.to_string(),
                "policy": {"source": loaded.source, "sha256": loaded.sha256},
                "passed": !failed,
                "targets": results,
            }))
            .context("serializing the findings")?
        ))?,
    }
    if failed {
        let count: usize = results
            .iter()
            .map(|r| {
                r.findings
                    .iter()
                    .filter(|f| f.status == Status::Fail)
                    .count()
            })
            .sum();
        Err(Failure::Check(format!(
            "{count} finding{} failed",
            if count == 1 { "" } else { "s" }
        )))
    } else {
        Ok(())
    }
}

fn markdown(results: &[Checked], loaded: &curfew_policy::LoadedPolicy, at: Timestamp) -> String {
    let mut md = String::new();
    let at = at.round(jiff::Unit::Second).unwrap_or(at);
    for r in results {
        let count = |s: Status| r.findings.iter().filter(|f| f.status == s).count();
        let _ = writeln!(
            md,
            "# curfew check: target \"{}\"\n\n{} · policy `{}` (sha256 `{}`) · checked {at}\n\n**{} failed, {} unknown, {} passed.**\n",
            r.target,
            r.server.as_deref().unwrap_or("not reached"),
            loaded.source,
            loaded.sha256.get(..12).unwrap_or(&loaded.sha256),
            count(Status::Fail),
            count(Status::Unknown),
            count(Status::Pass),
        );
        md.push_str(&md_header(&[
            "Status", "ID", "Check", "Observed", "Expected",
        ]));
        for f in &r.findings {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                f.status.label(),
                f.id,
                cell(f.title),
                cell(&f.observed),
                cell(&f.expected)
            );
        }
        let to_fix: Vec<&Finding> = r.findings.iter().filter(|f| !f.fix.is_empty()).collect();
        if !to_fix.is_empty() {
            let _ = writeln!(md, "\n## To fix\n");
            for f in to_fix {
                let why = if f.why.is_empty() {
                    String::new()
                } else {
                    format!("fails because {}. ", f.why)
                };
                let _ = writeln!(
                    md,
                    "- **{}** ({}; {}): {why}{}",
                    f.id,
                    f.status.label(),
                    f.requirement,
                    f.fix
                );
            }
        }
        let _ = writeln!(md);
    }
    md
}
