//! Making a writer that refuses appends usable again: after a failed write (tried again: the
//! disk may have room now), and after the file was moved away, deleted, replaced or truncated
//! (the chain continues in the file the path names, which a reopen on SIGHUP creates if
//! nothing is there).
//!
//! The chain never restarts. A new file begins with a `log_continued` record whose `seq` and
//! `prev` follow the last record of the file before, so the two files in order verify as one
//! chain, and the new one verifies alone as a continuation (see `verify.rs`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use crate::details::{AuditResumption, LogContinuation};
use crate::error::AuditError;
use crate::event::Event;
use crate::file::{self, Seen};
use crate::line;
use crate::record::Record;
use crate::writer::{
    Appended, AuditLog, Fault, FaultKind, Locked, Position, State, catch_up, write_at,
};

/// How long a switch to a new file waits for the outcomes of actions under way, so that they
/// are written next to their intents in the file that was moved away.
const DEFER_LIMIT: SignedDuration = SignedDuration::from_secs(30);

/// What [`AuditLog::recover`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// The records written, in order, with their seq and hash: a `log_continued` record (the
    /// chain went on in a new file) or an `audit_resumed` record (the log takes records
    /// again), then the outcome records that were kept in memory. Empty when nothing was
    /// wrong.
    pub written: Vec<(Record, Appended)>,
    /// What an operator should know about a new file (its mode, a torn last line).
    pub warnings: Vec<String>,
}

impl AuditLog {
    /// Makes the log take records again, if it can, and says so in it:
    ///
    /// - after a failed write: cuts off any partial record, then writes an `audit_resumed`
    ///   record and the outcome records kept in memory (fails again while the disk is full);
    /// - when the path names another file (the log was moved away and a new one created, as
    ///   logrotate does), or the file was truncated in place (copytruncate): continues the
    ///   chain there with a `log_continued` record, then the outcomes kept in memory. A file
    ///   moved away first gets the outcomes of the actions still under way (for up to 30 s);
    /// - when nothing is at the path: creates a new file only if `create` is set now or was
    ///   on an earlier call (a reopen on SIGHUP); otherwise stays refused.
    ///
    /// Nothing is written when nothing was wrong. `ts` stamps the record written (the crate
    /// reads no clock). On error, appends stay refused.
    pub fn recover(&self, ts: Timestamp, create: bool) -> Result<Recovered, AuditError> {
        let path = self.inner.path.clone();
        let mut state = self.state();
        state.create_asked |= create;
        let seen =
            Seen::now(&state.file, &path).map_err(|e| AuditError::io(&path, "cannot stat", e))?;
        let recovered = match seen.problem(state.at.len) {
            None if state.fault.is_none() && state.owed.is_empty() => {
                state.create_asked = false;
                Ok(Recovered::default())
            }
            None => resume(&mut state, &path, ts),
            Some(why) => switch(&mut state, &path, ts, seen, why),
        };
        self.publish(&state.at);
        recovered
    }
}

/// The same file takes records again: cut off what a failed write left, then say so.
fn resume(state: &mut State, path: &Path, ts: Timestamp) -> Result<Recovered, AuditError> {
    let file = state
        .file
        .try_clone()
        .map_err(|e| AuditError::io(path, "cannot lock", e))?;
    let _locked = Locked::take(&file, path)?;
    if let Err(e) = cut_back(&file, path, &mut state.at) {
        state.fail(FaultKind::Failed, e.to_string(), None);
        return Err(e);
    }
    let mut records = vec![resumed(ts, state.fault.as_ref(), state.owed.len())];
    records.extend(state.owed.iter().cloned());
    match write_at(&file, path, &state.at, &records) {
        Ok((at, appended)) => {
            state.at = at;
            Ok(finish(state, records, appended, Vec::new()))
        }
        Err(failure) => {
            refail(state, failure.reason);
            Err(failure.error)
        }
    }
}

/// Continue the chain in the file the path names now (or in the truncated file).
fn switch(
    state: &mut State,
    path: &Path,
    ts: Timestamp,
    seen: Seen,
    why: String,
) -> Result<Recovered, AuditError> {
    let detached = |state: &mut State, reason: String| {
        state.fail(FaultKind::Detached, reason.clone(), None);
        if let Some(fault) = &mut state.fault {
            fault.reason.clone_from(&reason);
        }
        AuditError::Detached {
            path: path.to_owned(),
            reason,
        }
    };
    let moved_away = seen.linked && !seen.same;
    if moved_away && !state.open_intents.is_empty() {
        let since = *state.deferred_since.get_or_insert(ts);
        if ts.duration_since(since) < DEFER_LIMIT {
            let reason = format!(
                "{why}; waiting for the outcome of {} action(s) under way before continuing in a new file",
                state.open_intents.len()
            );
            return Err(detached(state, reason));
        }
    }
    if seen.missing && !state.create_asked {
        let reason = format!("{why}; send the agent SIGHUP to create a new log there");
        return Err(detached(state, reason));
    }
    if moved_away && seen.size > state.at.len {
        // A partial record a failed write left in the file moved away: best effort, that
        // file is finished either way.
        if let Ok(_locked) = Locked::take(&state.file, path) {
            let mut at = state.at.clone();
            let _ = cut_back(&state.file, path, &mut at);
        }
    }
    let (file, mut warnings) = if seen.same {
        let file = state
            .file
            .try_clone()
            .map_err(|e| AuditError::io(path, "cannot lock", e))?;
        (file, Vec::new())
    } else {
        match file::open_log(path) {
            Ok(opened) => opened,
            Err(e) => return Err(detached(state, format!("{why}; {e}"))),
        }
    };
    let locked = Locked::take(&file, path)?;
    let found = match catch_up(&file, path) {
        Ok(found) => found,
        Err(e) => return Err(detached(state, format!("{why}; {e}"))),
    };
    warnings.extend(found.warnings);
    let ours = found.at.next_seq == state.at.next_seq && found.at.prev == state.at.prev;
    let first = if ours {
        resumed(ts, state.fault.as_ref(), state.owed.len())
    } else {
        continued(ts, &why, &state.at, &found.at)
    };
    let mut records = vec![first];
    records.extend(state.owed.iter().cloned());
    let start = Position {
        len: found.at.len,
        next_seq: state.at.next_seq,
        prev: state.at.prev.clone(),
        chain: state.at.chain.clone(),
    };
    match write_at(&file, path, &start, &records) {
        Ok((at, appended)) => {
            drop(locked);
            state.file = file;
            state.at = at;
            // Intents still open are in the file before; their outcomes come here.
            state.open_intents.clear();
            Ok(finish(state, records, appended, warnings))
        }
        Err(failure) => {
            refail(state, format!("{why}; {}", failure.reason));
            Err(failure.error)
        }
    }
}

/// A recovery attempt failed: refuse appends, with the latest reason and the first time.
fn refail(state: &mut State, reason: String) {
    let since = state.fault.as_ref().and_then(|f| f.since);
    state.fault = Some(Fault {
        kind: FaultKind::Failed,
        reason,
        since,
    });
}

/// The log takes records again.
fn finish(
    state: &mut State,
    records: Vec<Record>,
    appended: Vec<Appended>,
    warnings: Vec<String>,
) -> Recovered {
    for record in &records {
        if let Some(intent) = record.intent {
            state.open_intents.remove(&intent);
        }
    }
    state.fault = None;
    state.owed.clear();
    state.create_asked = false;
    state.deferred_since = None;
    Recovered {
        written: records.into_iter().zip(appended).collect(),
        warnings,
    }
}

/// Removes what follows the last record this writer knows of, unless it is another writer's
/// complete records continuing the chain (then they are taken in). What a failed write left
/// must go: a partial line would stay malformed in the middle of the log, and an intent
/// whose write "failed" would claim an action that was not taken.
fn cut_back(file: &File, path: &Path, at: &mut Position) -> Result<(), AuditError> {
    let size = file
        .metadata()
        .map_err(|e| AuditError::io(path, "cannot stat", e))?
        .len();
    if size <= at.len {
        return Ok(());
    }
    let mut head = vec![0; usize::try_from((size - at.len).min(64 * 1024)).unwrap_or(0)];
    file.read_exact_at(&mut head, at.len)
        .map_err(|e| AuditError::io(path, "cannot read the end", e))?;
    let continues = head
        .iter()
        .position(|&b| b == b'\n')
        .and_then(|end| line::parse(&head[..end]).ok())
        .is_some_and(|p| p.intact && p.entry.seq == at.next_seq && p.entry.prev == at.prev);
    if continues {
        *at = catch_up(file, path)?.at;
        return Ok(());
    }
    file.set_len(at.len)
        .and_then(|()| file.sync_data())
        .map_err(|e| AuditError::io(path, "cannot remove a partial record", e))
}

/// The record that says the log takes records again.
fn resumed(ts: Timestamp, fault: Option<&Fault>, owed: usize) -> Record {
    let (error, since) = fault.map_or((None, None), |f| (Some(f.reason.as_str()), f.since));
    let mut reason = match (error, since) {
        (Some(error), Some(since)) => format!(
            "the audit log takes records again; from {since} records could not be written ({error}) and no action was taken"
        ),
        (Some(error), None) => format!(
            "the audit log takes records again; for a while records could not be written ({error}) and no action was taken"
        ),
        _ => "the audit log takes records again".to_owned(),
    };
    if owed > 0 {
        reason.push_str(&format!(
            "; the {owed} outcome record(s) kept in memory meanwhile follow"
        ));
    }
    Record::new(ts, Event::AuditResumed)
        .with_reason(reason)
        .with_details(&AuditResumption {
            error: error.map(str::to_owned),
            since,
            owed_outcomes: owed,
        })
}

/// The first record of a file that continues the chain of the file before.
fn continued(ts: Timestamp, why: &str, ours: &Position, found: &Position) -> Record {
    let last = ours.next_seq.saturating_sub(1);
    let mut reason = format!(
        "this file continues the audit log whose last record is seq {last} (hash {}): {why}",
        ours.prev
    );
    if found.len > 0 {
        reason.push_str(&format!(
            "; the file already held {} byte(s) of other records, which are not part of this chain",
            found.len
        ));
    }
    Record::new(ts, Event::LogContinued)
        .with_reason(reason)
        .with_details(&LogContinuation {
            previous_seq: last,
            previous_hash: ours.prev.clone(),
            chain: ours.chain.clone(),
            why: why.to_owned(),
        })
}
