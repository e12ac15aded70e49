//! Audit records for what the agent does, and the one place they are written.
//!
//! The log fails closed: while it cannot take records (a full disk, a failed write, the file
//! moved away, deleted or truncated) every write fails, so no action is taken, and outcome
//! records of actions already under way are kept in memory by the writer. [`keep`] tries to
//! recover it meanwhile, with a capped backoff; SIGHUP does too, and may create a new file
//! ([`recover`]). Observers hear `AuditFailed` on every failure and `Recorded` once records
//! are written again.

use std::sync::Arc;
use std::time::Duration;

use curfew_audit::{
    Action, Appended, AuditLog, Event, Intent, IntentToken, Outcome, Record, SessionInfo,
};
use curfew_policy::Session;
use jiff::Timestamp;
use tokio::sync::{broadcast, watch};

use crate::events::{AgentEvent, RecordedEvent};
use crate::shared::Shared;
use crate::tally::AuditTally;

/// How often [`keep`] looks whether the log needs recovering (two `stat` calls).
const KEEP_CHECK: Duration = Duration::from_millis(250);
/// Longest wait between two attempts to recover the log: enforcement resumes at most this
/// long after the disk does.
const KEEP_RETRY_MAX: Duration = Duration::from_secs(5);

/// The audit view of a session.
pub(crate) fn session_info(s: &Session) -> SessionInfo {
    SessionInfo {
        pid: s.pid,
        backend_start: s.backend_start,
        role: s.role.to_string(),
        database: s.database.to_string(),
        client_addr: s.client_addr.shown(),
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
    let seqs = result.as_ref().map(|a| vec![a.seq]).map_err(Clone::clone);
    tell(shared, gist.into_iter().collect(), seqs.as_deref());
    result
}

/// Whether anyone learns of records written (observers, or the tally).
fn counted(shared: &Shared) -> bool {
    shared.observed() || shared.options.tally.is_some()
}

/// What observers learn of records: their gist once durable (also counted in the tally), or
/// the failure.
fn tell(shared: &Shared, gists: Vec<RecordedEvent>, result: Result<&[u64], &String>) {
    tell_to(
        shared.audit.path(),
        shared.options.events.as_ref(),
        shared.options.tally.as_deref(),
        gists,
        result,
    );
}

fn tell_to(
    path: &std::path::Path,
    events: Option<&broadcast::Sender<AgentEvent>>,
    tally: Option<&AuditTally>,
    mut gists: Vec<RecordedEvent>,
    result: Result<&[u64], &String>,
) {
    let emit = |event| {
        if let Some(events) = events {
            let _ = events.send(event);
        }
    };
    match result {
        Ok(appended) => {
            if !gists.is_empty() {
                for (gist, seq) in gists.iter_mut().zip(appended) {
                    gist.seq = *seq;
                }
                if let Some(tally) = tally {
                    tally.add(&gists);
                }
                emit(AgentEvent::Recorded { records: gists });
            }
        }
        Err(error) => {
            tracing::error!("audit log {}: {error}", path.display());
            emit(AgentEvent::AuditFailed {
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
    append_batch(shared, records, "records", AuditLog::append_all).await
}

/// Append a batch with `append` off the async threads, and tell observers.
async fn append_batch(
    shared: &Shared,
    records: Vec<Record>,
    what: &'static str,
    append: fn(&AuditLog, Vec<Record>) -> Result<Vec<Appended>, curfew_audit::AuditError>,
) -> Result<Vec<Appended>, String> {
    let gists = if counted(shared) {
        records.iter().map(|r| gist(r, 0)).collect()
    } else {
        Vec::new()
    };
    let audit = shared.audit.clone();
    let result = match tokio::task::spawn_blocking(move || append(&audit, records)).await {
        Ok(Ok(appended)) => Ok(appended),
        Ok(Err(e)) => Err(format!("cannot write audit {what}: {e}")),
        Err(e) => Err(format!("audit writer stopped: {e}")),
    };
    let seqs = result
        .as_ref()
        .map(|appended| appended.iter().map(|a| a.seq).collect::<Vec<_>>())
        .map_err(Clone::clone);
    tell(shared, gists, seqs.as_deref());
    result
}

/// Write the intents of actions about to be taken, with one fsync (off the async threads), and
/// tell observers as [`write`] does. The tokens are what the actions require; on error nothing
/// was recorded, so nothing may be done.
pub(crate) async fn intend_all<A: Action + 'static>(
    shared: &Shared,
    intents: Vec<Intent<A>>,
) -> Result<Vec<IntentToken<A>>, String> {
    let gists = if counted(shared) {
        intents.iter().map(|i| gist(i.record(), 0)).collect()
    } else {
        Vec::new()
    };
    let audit = shared.audit.clone();
    let result = match tokio::task::spawn_blocking(move || audit.intend_all(intents)).await {
        Ok(Ok(tokens)) => Ok(tokens),
        Ok(Err(e)) => Err(format!("cannot write audit records: {e}")),
        Err(e) => Err(format!("audit writer stopped: {e}")),
    };
    let seqs = result
        .as_ref()
        .map(|tokens| tokens.iter().map(IntentToken::seq).collect::<Vec<_>>())
        .map_err(Clone::clone);
    tell(shared, gists, seqs.as_deref());
    result
}

/// Write the outcomes that complete these intents, with one fsync. What the log cannot take
/// now is kept in memory by the writer and written as soon as the log recovers (see
/// [`keep`]), so every intent gets its outcome; the error says so.
pub(crate) async fn complete_all<A>(
    shared: &Shared,
    completions: Vec<(IntentToken<A>, A::Outcome)>,
) -> Result<Vec<Appended>, String>
where
    A: Action + 'static,
    A::Outcome: Send + 'static,
{
    let gists = if counted(shared) {
        completions
            .iter()
            .map(|(token, outcome)| RecordedEvent {
                seq: 0,
                event: outcome.event(),
                target: token.intent().target.clone(),
                rule: token.intent().rule.clone(),
                result: Some(outcome.result().to_owned()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let audit = shared.audit.clone();
    let completed =
        tokio::task::spawn_blocking(move || audit.complete_all(Timestamp::now(), completions));
    let result = match completed.await {
        Ok(Ok(appended)) => Ok(appended),
        Ok(Err(e)) => Err(format!("cannot write audit outcome records: {e}")),
        Err(e) => Err(format!("audit writer stopped: {e}")),
    };
    let seqs = result
        .as_ref()
        .map(|appended| appended.iter().map(|a| a.seq).collect::<Vec<_>>())
        .map_err(Clone::clone);
    tell(shared, gists, seqs.as_deref());
    result
}

/// Make the audit log take records again if it refuses them ([`AuditLog::recover`]): after a
/// failed write, or in the file its path names now after a rotation (`create`: also when
/// nothing is there, as on SIGHUP). Logs what happened, counts the records written in
/// `tally` and tells observers (`Recorded`, or `AuditFailed` while it still fails). Returns
/// how many records were written (0: nothing was wrong).
pub async fn recover(
    audit: &AuditLog,
    create: bool,
    events: Option<&broadcast::Sender<AgentEvent>>,
    tally: Option<&AuditTally>,
) -> Result<usize, String> {
    let log = audit.clone();
    let result = tokio::task::spawn_blocking(move || log.recover(Timestamp::now(), create)).await;
    let recovered = match result {
        Ok(Ok(recovered)) => recovered,
        Ok(Err(e)) => {
            let error = format!("{e}");
            tell_to(audit.path(), events, tally, Vec::new(), Err(&error));
            return Err(error);
        }
        Err(e) => {
            let error = format!("audit writer stopped: {e}");
            tell_to(audit.path(), events, tally, Vec::new(), Err(&error));
            return Err(error);
        }
    };
    for warning in &recovered.warnings {
        tracing::warn!("{warning}");
    }
    if let Some((first, _)) = recovered.written.first() {
        tracing::warn!(
            "audit log {}: {}",
            audit.path().display(),
            first.reason.as_deref().unwrap_or(first.event.as_str())
        );
    }
    let (records, seqs): (Vec<RecordedEvent>, Vec<u64>) = recovered
        .written
        .iter()
        .map(|(record, appended)| (gist(record, appended.seq), appended.seq))
        .unzip();
    tell_to(audit.path(), events, tally, records, Ok(&seqs));
    Ok(seqs.len())
}

/// While the agent runs: whenever the audit log refuses records (or its path no longer names
/// the file being written: looked up every 250 ms), try to recover it, first
/// after `retry_min`, then with a doubling delay of at most 5 s, until it works (enforcement
/// resumes then). At `stop`, one last attempt, so that outcomes kept in memory are written
/// if they can be.
pub(crate) async fn keep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let first = shared.options.retry_min.min(KEEP_RETRY_MAX);
    let mut delay = first;
    loop {
        let audit = shared.audit.clone();
        let failing = tokio::task::spawn_blocking(move || audit.needs_recovery())
            .await
            .unwrap_or(true);
        let wait = if failing { delay } else { KEEP_CHECK };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        if !failing {
            delay = first;
            continue;
        }
        let attempt = recover(
            &shared.audit,
            false,
            shared.options.events.as_ref(),
            shared.options.tally.as_deref(),
        )
        .await;
        delay = match attempt {
            Ok(_) => first,
            Err(_) => (delay * 2).min(KEEP_RETRY_MAX),
        };
    }
    if shared.audit.needs_recovery() {
        let _ = recover(
            &shared.audit,
            false,
            shared.options.events.as_ref(),
            shared.options.tally.as_deref(),
        )
        .await;
    }
}
