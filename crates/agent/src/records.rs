//! Audit records for what the agent does, and the one place they are written.

use curfew_audit::{Appended, AuditLog, Event, Record, SessionInfo};
use curfew_policy::Session;
use jiff::Timestamp;

use crate::events::AgentEvent;
use crate::shared::Shared;

/// The audit view of a session.
pub(crate) fn session_info(s: &Session) -> SessionInfo {
    SessionInfo {
        pid: s.pid,
        backend_start: s.backend_start,
        role: s.role.to_string(),
        database: s.database.to_string(),
        client_addr: s.client_addr.map(|a| a.to_string()),
        application: s.application.to_string(),
        state: s.state.as_pg().to_owned(),
    }
}

/// A record about a target, stamped with the agent host's clock.
pub(crate) fn about(event: Event, target: &str) -> Record {
    let mut record = Record::new(Timestamp::now(), event);
    record.target = Some(target.to_owned());
    record
}

/// Append a record (with fsync, off the async threads). A failure is logged and reported to
/// observers; the caller must then not take the action the record was for.
pub(crate) async fn write(shared: &Shared, record: Record) -> Result<Appended, String> {
    write_to(&shared.audit, record).await.inspect_err(|error| {
        tracing::error!("audit log {}: {error}", shared.audit.path().display());
        shared.emit(AgentEvent::AuditFailed {
            error: error.clone(),
        });
    })
}

/// Append a record to a log (with fsync, off the async threads).
pub async fn write_to(audit: &AuditLog, record: Record) -> Result<Appended, String> {
    let audit = audit.clone();
    match tokio::task::spawn_blocking(move || audit.append(record)).await {
        Ok(Ok(appended)) => Ok(appended),
        Ok(Err(e)) => Err(format!("cannot write audit record: {e}")),
        Err(e) => Err(format!("audit writer stopped: {e}")),
    }
}

/// Append several records with one fsync; see [`write`].
pub(crate) async fn write_all(
    shared: &Shared,
    records: Vec<Record>,
) -> Result<Vec<Appended>, String> {
    let audit = shared.audit.clone();
    let result = match tokio::task::spawn_blocking(move || audit.append_all(records)).await {
        Ok(Ok(appended)) => Ok(appended),
        Ok(Err(e)) => Err(format!("cannot write audit records: {e}")),
        Err(e) => Err(format!("audit writer stopped: {e}")),
    };
    result.inspect_err(|error| {
        tracing::error!("audit log {}: {error}", shared.audit.path().display());
        shared.emit(AgentEvent::AuditFailed {
            error: error.clone(),
        });
    })
}
