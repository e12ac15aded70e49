//! Audit records for what the agent does, and the one place they are written.

use curfew_audit::{Appended, AuditLog, Event, Record, SessionInfo};
use curfew_policy::Session;
use jiff::Timestamp;

use crate::events::{AgentEvent, RecordedEvent};
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
    let gist = counted(shared).then(|| gist(&record, 0));
    let result = write_to(&shared.audit, record).await;
    tell(
        shared,
        gist.into_iter().collect(),
        result.as_ref().map(std::slice::from_ref),
    );
    result
}

/// Whether anyone learns of records written (observers, or the tally).
fn counted(shared: &Shared) -> bool {
    shared.observed() || shared.options.tally.is_some()
}

/// What observers learn of records: their gist once durable (also counted in the tally), or
/// the failure.
fn tell(shared: &Shared, mut gists: Vec<RecordedEvent>, result: Result<&[Appended], &String>) {
    match result {
        Ok(appended) => {
            if !gists.is_empty() {
                for (gist, appended) in gists.iter_mut().zip(appended) {
                    gist.seq = appended.seq;
                }
                if let Some(tally) = &shared.options.tally {
                    tally.add(&gists);
                }
                shared.emit(AgentEvent::Recorded { records: gists });
            }
        }
        Err(error) => {
            tracing::error!("audit log {}: {error}", shared.audit.path().display());
            shared.emit(AgentEvent::AuditFailed {
                error: error.clone(),
            });
        }
    }
}

fn gist(record: &Record, seq: u64) -> RecordedEvent {
    RecordedEvent {
        seq,
        event: record.event,
        target: record.target.clone(),
        rule: record.rule.clone(),
        result: record.result.clone(),
    }
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
    let gists = if counted(shared) {
        records.iter().map(|r| gist(r, 0)).collect()
    } else {
        Vec::new()
    };
    let audit = shared.audit.clone();
    let result = match tokio::task::spawn_blocking(move || audit.append_all(records)).await {
        Ok(Ok(appended)) => Ok(appended),
        Ok(Err(e)) => Err(format!("cannot write audit records: {e}")),
        Err(e) => Err(format!("audit writer stopped: {e}")),
    };
    tell(shared, gists, result.as_deref());
    result
}
