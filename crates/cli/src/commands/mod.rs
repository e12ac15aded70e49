//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod compile;
pub(crate) mod demo;
pub(crate) mod explain;
pub(crate) mod gateway;
pub(crate) mod integrity;
pub(crate) mod locks;
pub(crate) mod mariadb_init;
pub(crate) mod packaging;
pub(crate) mod plan;
mod plan_mariadb;
pub(crate) mod policy_man;
pub(crate) mod report;
pub(crate) mod validate;
pub(crate) mod verify;

/// Output formats of the commands that write a document (`check`, `verify`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Document {
    /// Markdown: a table per target, then the details.
    Md,
    /// One JSON document.
    Json,
}

/// Append a command's result to the audit log (for `curfew report`), or say on standard error
/// why it was not recorded; the command's own outcome does not depend on it.
pub(crate) fn record_result(
    audit_log: Option<&std::path::Path>,
    records: Vec<curfew_audit::Record>,
) {
    match curfew_ops::record_results(audit_log, records) {
        curfew_ops::ResultRecording::Recorded => {}
        curfew_ops::ResultRecording::NoAuditLog => eprintln!(
            "curfew: note: the result was not recorded (no audit_log in [agent], no --audit-log)"
        ),
        curfew_ops::ResultRecording::Failed { path, error } => eprintln!(
            "curfew: warning: the result was not recorded in {}: {error}",
            path.display()
        ),
    }
}
