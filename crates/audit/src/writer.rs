//! Appending to a log file. Several writers (the agent, `curfew verify`, a second agent
//! process on the same host) may append to one file: each append takes an advisory lock on
//! the file, continues the chain from whatever the file ends with now, and releases the lock
//! after the fsync. So the chain stays one chain whoever writes.
//!
//! The writer fails closed and recovers: before every append it checks that the path still
//! names the file it writes and that the file did not shrink; a write or fsync that fails is
//! undone (the file is cut back to its last complete record). Either way appends are refused
//! from then on, so no action is taken that cannot be recorded, until [`AuditLog::recover`]
//! succeeds (see `recover.rs`). Outcome records of actions already under way are never
//! dropped: [`AuditLog::append_outcomes`] keeps those it cannot write in memory, and
//! `recover` writes them first.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;

use crate::error::AuditError;
use crate::file::{self, Seen};
use crate::line;
use crate::record::Record;
use crate::tail;

/// What [`AuditLog::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The record's seq; name it in an outcome's `intent` when this was an intent.
    pub seq: u64,
    /// The record's hash.
    pub hash: String,
}

/// Where a chain ends: what the agent anchors outside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The chain's identity (see [`crate::chain_id`]).
    pub chain: String,
    /// The seq of its last durable record.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
}

impl Position {
    /// Records are there but the first line does not name the chain.
    fn chain_unknown(&self) -> bool {
        self.next_seq > 1 && self.chain.is_none()
    }
}

impl Head {
    fn of(at: &Position) -> Option<Head> {
        let seq = at.next_seq.checked_sub(1).filter(|s| *s > 0)?;
        Some(Head {
            chain: at.chain.clone()?,
            seq,
            hash: at.prev.clone(),
        })
    }
}

/// A writer of one audit log. Cloning gives another handle to the same writer; appends from
/// all handles, and from other processes writing the same file, are serialized.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    warnings: Vec<String>,
    pub(crate) state: Mutex<State>,
    /// The chain's head once durable, read without waiting for an append under way.
    head: Mutex<Option<Head>>,
    /// The log holds records but its chain's identity cannot be told (a damaged first
    /// line): there is no head to anchor, which the agent must say rather than go quiet.
    chain_unknown: AtomicBool,
    /// For an agent: the locked claim file that keeps other agents off this log.
    _claim: Option<File>,
}

/// Where the chain ends in the file being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// File length after the last append seen (ours or another writer's), to notice another
    /// writer's records, a file that shrank, and to undo a partial write.
    pub(crate) len: u64,
    pub(crate) next_seq: u64,
    pub(crate) prev: String,
    /// The chain's identity (see [`crate::chain_id`]); `None` until its first record is
    /// written, or for a file whose first line cannot be read.
    pub(crate) chain: Option<String>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) file: File,
    pub(crate) at: Position,
    /// Set while appends are refused; cleared by a successful [`AuditLog::recover`].
    pub(crate) fault: Option<Fault>,
    /// Outcome records not yet durable, oldest first; `recover` writes them.
    pub(crate) owed: Vec<Record>,
    /// Intents this writer appended whose outcome it has not appended yet (a rotation waits
    /// for them a while, so that an intent and its outcome end up in one file).
    pub(crate) open_intents: BTreeSet<u64>,
    /// Intents whose token was dropped without an outcome (see `journal.rs`).
    pub(crate) abandoned: BTreeSet<u64>,
    /// A reopen (SIGHUP) asked to create the file if nothing is at the path.
    pub(crate) create_asked: bool,
    /// When a switch to a new file was first put off for actions under way.
    pub(crate) deferred_since: Option<Timestamp>,
}

/// Why appends are refused.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) kind: FaultKind,
    pub(crate) reason: String,
    /// The time of the first record that could not be written, if one was.
    pub(crate) since: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// A write or fsync failed (full disk, I/O error); retried by `recover`.
    Failed,
    /// The path no longer names the file, or it shrank; `recover` moves on to the file the
    /// path names.
    Detached,
}

/// Holds the file's advisory lock; released when dropped, whatever happened meanwhile.
pub(crate) struct Locked<'f>(&'f File);

/// How long an append waits for another writer's append to finish. Appends take
/// milliseconds; a lock held longer is a writer that keeps it (a stuck or older process).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl<'f> Locked<'f> {
    pub(crate) fn take(file: &'f File, path: &Path) -> Result<Locked<'f>, AuditError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Locked(file)),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(AuditError::Busy {
                        path: path.to_owned(),
                        waited: LOCK_WAIT,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(AuditError::io(path, "cannot lock", e));
                }
            }
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl AuditLog {
    /// Opens (creating with mode 0600 if needed) the log at `path` and continues its chain.
    ///
    /// Fails with [`AuditError::Corrupt`] if the last complete record is damaged. A torn last
    /// line (a crash mid-write) is closed with a newline and reported in
    /// [`AuditLog::warnings`].
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let (file, mut warnings) = file::open_log(path)?;
        let at = {
            let _locked = Locked::take(&file, path)?;
            let found = catch_up(&file, path)?;
            warnings.extend(found.warnings);
            found.at
        };
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                warnings,
                head: Mutex::new(Head::of(&at)),
                chain_unknown: AtomicBool::new(Position::chain_unknown(&at)),
                state: Mutex::new(State {
                    file,
                    at,
                    fault: None,
                    owed: Vec::new(),
                    open_intents: BTreeSet::new(),
                    abandoned: BTreeSet::new(),
                    create_asked: false,
                    deferred_since: None,
                }),
                _claim: None,
            }),
        })
    }

    /// Opens the log for a curfew agent: as [`AuditLog::open`], and claims it for this agent
    /// for as long as the writer lives. Other processes (`curfew check`, `curfew verify`) may
    /// still append; another agent gets [`AuditError::InUse`]. An agent closes the unfinished
    /// actions it finds at start, which is right only for its own dead predecessors.
    pub fn open_for_agent(path: &Path) -> Result<AuditLog, AuditError> {
        let claim = file::claim(path)?;
        let log = AuditLog::open(path)?;
        let inner = Arc::try_unwrap(log.inner).map_err(|_| AuditError::Unusable {
            path: path.to_owned(),
            reason: "the writer was shared before it was claimed".to_owned(),
        })?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                _claim: Some(claim),
                ..inner
            }),
        })
    }

    /// Appends `record` as the next link of the chain: one write of the whole line, then
    /// fsync. Returns once the record is durable.
    pub fn append(&self, record: Record) -> Result<Appended, AuditError> {
        let mut appended = self.append_all(vec![record])?;
        appended.pop().ok_or_else(|| AuditError::Unusable {
            path: self.inner.path.clone(),
            reason: "a record was written but not reported".to_owned(),
        })
    }

    /// Appends several records as consecutive links: one write of all their lines, then one
    /// fsync. Returns once all are durable; on error none of them counts (a partial write is
    /// cut off again). Many actions that happen at once (a batch of terminations) cost one
    /// fsync, not one each.
    ///
    /// Refused ([`AuditError::Detached`]) when the path no longer names the file being
    /// written or the file shrank, and ([`AuditError::Unusable`]) after such a refusal or a
    /// failed write, until [`AuditLog::recover`] succeeds: whoever writes an intent learns
    /// before acting that it could not be recorded.
    pub fn append_all(&self, records: Vec<Record>) -> Result<Vec<Appended>, AuditError> {
        let path = &self.inner.path;
        let mut state = self.state();
        if let Some(fault) = &state.fault {
            return Err(AuditError::Unusable {
                path: path.clone(),
                reason: fault.reason.clone(),
            });
        }
        let file = state
            .file
            .try_clone()
            .map_err(|e| AuditError::io(path, "cannot lock", e))?;
        let _locked = Locked::take(&file, path)?;
        let seen = Seen::now(&file, path).map_err(|e| AuditError::io(path, "cannot stat", e))?;
        if let Some(reason) = seen.problem(state.at.len) {
            state.fail(FaultKind::Detached, reason.clone(), records.first());
            return Err(AuditError::Detached {
                path: path.clone(),
                reason,
            });
        }
        let written = state.write(path, &file, &records);
        self.publish(&state.at);
        written
    }

    /// Appends the outcome records of actions already under way. As [`AuditLog::append_all`],
    /// except that what cannot be written now is kept in memory and written by the next
    /// successful [`AuditLog::recover`] (the error says so), and that a file that was only
    /// moved away still takes them, next to their intents.
    pub fn append_outcomes(&self, records: Vec<Record>) -> Result<Vec<Appended>, AuditError> {
        let path = &self.inner.path;
        let mut state = self.state();
        if state
            .fault
            .as_ref()
            .is_some_and(|f| f.kind == FaultKind::Failed)
            || !state.owed.is_empty()
        {
            let reason = state.fault.as_ref().map_or_else(
                || "earlier outcome records are still to be written".to_owned(),
                |f| f.reason.clone(),
            );
            return Err(state.owe(path, records, reason));
        }
        let file = state
            .file
            .try_clone()
            .map_err(|e| AuditError::io(path, "cannot lock", e))?;
        let _locked = Locked::take(&file, path)?;
        let seen = match Seen::now(&file, path) {
            Ok(seen) => seen,
            Err(e) => return Err(state.owe(path, records, format!("cannot stat: {e}"))),
        };
        if let Some(reason) = seen.problem(state.at.len)
            && state.fault.is_none()
        {
            state.fail(FaultKind::Detached, reason, records.first());
        }
        if !seen.takes_outcomes(state.at.len) {
            let reason = seen
                .problem(state.at.len)
                .unwrap_or_else(|| "the file cannot take records".to_owned());
            return Err(state.owe(path, records, reason));
        }
        let written = state.write(path, &file, &records);
        self.publish(&state.at);
        match written {
            Ok(appended) => Ok(appended),
            Err(e) => Err(state.owe(path, records, e.to_string())),
        }
    }

    /// The chain's head: its identity and last durable record. `None` while the log holds no
    /// record, or when the chain's identity cannot be told (its file's first line is
    /// damaged). Never waits for an append under way: it is what the last one left.
    pub fn head(&self) -> Option<Head> {
        self.inner
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// True when the log holds records but their chain's identity cannot be told (the
    /// file's first line is damaged): [`AuditLog::head`] is `None`, and nothing can be
    /// anchored until the log is rotated to a new file.
    pub fn chain_unknown(&self) -> bool {
        self.inner.chain_unknown.load(Ordering::Relaxed)
    }

    /// Make the head after `at` visible to [`AuditLog::head`].
    pub(crate) fn publish(&self, at: &Position) {
        self.inner
            .chain_unknown
            .store(at.chain_unknown(), Ordering::Relaxed);
        let head = Head::of(at);
        *self
            .inner
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = head;
    }

    /// Whether [`AuditLog::recover`] should be tried: appends are refused, outcome records
    /// wait to be written, or the path no longer names the file being written or the file
    /// shrank (looked up on disk: a rotation is then noticed, and appends refused, before
    /// the next action needs a record).
    pub fn needs_recovery(&self) -> bool {
        let mut state = self.state();
        if state.fault.is_some() || !state.owed.is_empty() {
            return true;
        }
        let problem = Seen::now(&state.file, &self.inner.path)
            .ok()
            .and_then(|seen| seen.problem(state.at.len));
        match problem {
            Some(reason) => {
                state.fail(FaultKind::Detached, reason, None);
                true
            }
            None => false,
        }
    }

    /// Whether the next append can be expected to succeed: the writer is not refusing appends
    /// after a failure, no outcome record waits to be written, the path still names the file
    /// being written (not moved away, deleted or truncated), and it can still be opened for
    /// appending. A full disk shows only when a write fails.
    pub fn check_writable(&self) -> Result<(), String> {
        let path = &self.inner.path;
        let state = self.state();
        if let Some(fault) = &state.fault {
            let owed = match state.owed.len() {
                0 => String::new(),
                n => format!("; {n} outcome record(s) kept in memory until then"),
            };
            return Err(format!(
                "{}: not writable until it recovers: {}{owed}",
                path.display(),
                fault.reason
            ));
        }
        let seen = Seen::now(&state.file, path)
            .map_err(|e| format!("{}: cannot be checked: {e}", path.display()))?;
        if let Some(problem) = seen.problem(state.at.len) {
            return Err(format!(
                "{}: {problem}; send the agent SIGHUP to reopen it",
                path.display()
            ));
        }
        drop(state);
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("{}: cannot be opened for appending: {e}", path.display()))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Things found at open that an operator should see (permissions too open, a torn last
    /// line, ...). Empty when all was well.
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-updated (it changes only after the
        // I/O succeeded), so a poisoned lock is safe to keep using.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Refuse appends from now on (keeping the first reason).
    pub(crate) fn fail(&mut self, kind: FaultKind, reason: String, first: Option<&Record>) {
        if self.fault.is_none() {
            self.fault = Some(Fault {
                kind,
                reason,
                since: first.map(|r| r.ts),
            });
        }
    }

    /// Keep outcome records for `recover`; the error to return says so.
    fn owe(&mut self, path: &Path, records: Vec<Record>, reason: String) -> AuditError {
        self.fail(FaultKind::Failed, reason.clone(), records.first());
        self.owed.extend(records);
        AuditError::Unusable {
            path: path.to_owned(),
            reason: format!(
                "{reason}; {} outcome record(s) are kept in memory and written once it recovers",
                self.owed.len()
            ),
        }
    }

    /// Append to `file` (locked by the caller) after the chain as it ends now; a failure
    /// refuses appends from then on.
    pub(crate) fn write(
        &mut self,
        path: &Path,
        file: &File,
        records: &[Record],
    ) -> Result<Vec<Appended>, AuditError> {
        let size = file
            .metadata()
            .map_err(|e| AuditError::io(path, "cannot stat", e))?
            .len();
        if size != self.at.len {
            // Another writer appended since: continue from the file's end as it is now. A torn
            // line another writer left is closed here and reported by `verify`.
            self.at = catch_up(file, path)?.at;
        }
        match write_at(file, path, &self.at, records) {
            Ok((at, appended)) => {
                self.at = at;
                for (record, appended) in records.iter().zip(&appended) {
                    if record.event.is_intent() {
                        self.open_intents.insert(appended.seq);
                    }
                    if let Some(intent) = record.intent {
                        self.open_intents.remove(&intent);
                    }
                }
                Ok(appended)
            }
            Err(failure) => {
                self.fail(FaultKind::Failed, failure.reason, records.first());
                Err(failure.error)
            }
        }
    }
}

/// A failed [`write_at`]: the error, and the reason appends are refused now.
pub(crate) struct WriteFailure {
    pub(crate) error: AuditError,
    pub(crate) reason: String,
}

/// Writes `records` as the links after `at` in one write, then fsyncs; returns where the
/// chain ends then. On failure the file is cut back to `at.len` (a partial line, or lines
/// whose fsync failed, must not stay: an intent left behind would claim an action that was
/// not taken); if even that fails, `recover` cuts it back later.
pub(crate) fn write_at(
    file: &File,
    path: &Path,
    at: &Position,
    records: &[Record],
) -> Result<(Position, Vec<Appended>), WriteFailure> {
    let mut bytes = Vec::new();
    let mut appended = Vec::with_capacity(records.len());
    let (mut seq, mut prev) = (at.next_seq, at.prev.clone());
    let mut chain = at.chain.clone();
    for record in records {
        let (line, hash) = line::seal(seq, &prev, record).map_err(|source| WriteFailure {
            reason: format!("a {} record cannot be serialized", record.event),
            error: AuditError::Serialize {
                path: path.to_owned(),
                event: record.event.as_str(),
                source,
            },
        })?;
        bytes.extend_from_slice(&line);
        if seq == 1 {
            // A new chain: its first record names it.
            chain = Some(hash.clone());
        }
        appended.push(Appended {
            seq,
            hash: hash.clone(),
        });
        seq += 1;
        prev = hash;
    }
    let mut writer = file;
    let done = writer
        .write_all(&bytes)
        .map_err(|e| ("cannot write", e))
        .and_then(|()| file.sync_data().map_err(|e| ("cannot fsync", e)));
    if let Err((what, e)) = done {
        let undo = file.set_len(at.len).and_then(|()| file.sync_data());
        let reason = match undo {
            Ok(()) => format!("{what}: {e}"),
            Err(undo) => {
                format!("{what}: {e}; the partial record could not be removed yet ({undo})")
            }
        };
        return Err(WriteFailure {
            error: AuditError::io(path, what, e),
            reason,
        });
    }
    let end = Position {
        len: at.len + bytes.len() as u64,
        next_seq: seq,
        prev,
        chain,
    };
    Ok((end, appended))
}

/// Where the chain ends now, with a torn last line closed (the caller holds the lock).
pub(crate) struct CaughtUp {
    pub(crate) at: Position,
    pub(crate) warnings: Vec<String>,
}

pub(crate) fn catch_up(file: &File, path: &Path) -> Result<CaughtUp, AuditError> {
    let mut len = file
        .metadata()
        .map_err(|e| AuditError::io(path, "cannot stat", e))?
        .len();
    let tail = tail::scan(file, path, len)?;
    if tail.needs_newline {
        let mut writer = file;
        writer
            .write_all(b"\n")
            .and_then(|()| file.sync_data())
            .map_err(|e| AuditError::io(path, "cannot repair the last line", e))?;
        len += 1;
    }
    Ok(CaughtUp {
        at: Position {
            len,
            next_seq: tail.next_seq,
            prev: tail.prev,
            chain: crate::chain::file_chain(file),
        },
        warnings: tail.warnings,
    })
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
