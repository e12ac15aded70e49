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
pub(crate) mod packaging;
pub(crate) mod plan;
pub(crate) mod policy_man;
pub(crate) mod report;
pub(crate) mod stand_in;
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
    let Some(path) = audit_log else {
        eprintln!(
            "curfew: note: the result was not recorded (no audit_log in [agent], no --audit-log)"
        );
        return;
    };
    let appended = curfew_audit::AuditLog::open(path).and_then(|log| log.append_all(records));
    if let Err(e) = appended {
        eprintln!(
            "curfew: warning: the result was not recorded in {}: {e}",
            path.display()
        );
    }
}
