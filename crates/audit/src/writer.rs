//! Appending to a log file. Several writers (the agent, `curfew verify`, a second agent
//! process on the same host) may append to one file: each append takes an advisory lock on
//! the file, continues the chain from whatever the file ends with now, and releases the lock
//! after the fsync. So the chain stays one chain whoever writes.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::AuditError;
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

/// A writer of one audit log. Cloning gives another handle to the same writer; appends from
/// all handles, and from other processes writing the same file, are serialized.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    warnings: Vec<String>,
    state: Mutex<State>,
    /// For an agent: the locked claim file that keeps other agents off this log.
    _claim: Option<File>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// File length after the last append seen (ours or another writer's), to notice
    /// another writer's records and to undo a partial write.
    len: u64,
    next_seq: u64,
    prev: String,
    /// Set when the file's tail is uncertain; appends are refused from then on.
    broken: Option<String>,
}

/// Holds the file's advisory lock; released when dropped, whatever happened meanwhile.
struct Locked<'f>(&'f File);

/// How long an append waits for another writer's append to finish. Appends take
/// milliseconds; a lock held longer is a writer that keeps it (a stuck or older process).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl<'f> Locked<'f> {
    fn take(file: &'f File, path: &Path) -> Result<Locked<'f>, AuditError> {
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
        let (file, created) = open_file(path)?;
        let mut warnings = Vec::new();
        let metadata = file
            .metadata()
            .map_err(|e| AuditError::io(path, "cannot stat", e))?;
        if created {
            // umask may have taken bits away, never added; set 0600 exactly so the owner can
            // still append, then make the new directory entry durable.
            file.set_permissions(Permissions::from_mode(0o600))
                .map_err(|e| AuditError::io(path, "cannot set permissions", e))?;
            sync_parent(path)?;
        } else if let Some(warning) = mode_warning(path, metadata.permissions().mode()) {
            warnings.push(warning);
        }
        let (len, next_seq, prev) = {
            let _locked = Locked::take(&file, path)?;
            let found = catch_up(&file, path)?;
            warnings.extend(found.warnings);
            (found.len, found.next_seq, found.prev)
        };
        Ok(AuditLog {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                warnings,
                state: Mutex::new(State {
                    file,
                    len,
                    next_seq,
                    prev,
                    broken: None,
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
        let claim = claim(path)?;
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
    /// fsync. Returns once all are durable; on error none of them counts. Many actions that
    /// happen at once (a batch of terminations) cost one fsync, not one each.
    pub fn append_all(&self, records: Vec<Record>) -> Result<Vec<Appended>, AuditError> {
        let path = &self.inner.path;
        // A panic elsewhere cannot leave the state half-updated (it changes only after the
        // I/O succeeded), so a poisoned lock is safe to keep using.
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = &state.broken {
            return Err(AuditError::Unusable {
                path: path.clone(),
                reason: reason.clone(),
            });
        }
        // Another writer may have appended since: continue from the file's end as it is now.
        let file = state
            .file
            .try_clone()
            .map_err(|e| AuditError::io(path, "cannot lock", e))?;
        let _locked = Locked::take(&file, path)?;
        let len = file
            .metadata()
            .map_err(|e| AuditError::io(path, "cannot stat", e))?
            .len();
        if len < state.len {
            let reason = format!(
                "the file shrank from {} to {len} bytes while curfew was writing it (truncated?)",
                state.len
            );
            state.broken = Some(reason.clone());
            return Err(AuditError::Unusable {
                path: path.clone(),
                reason,
            });
        }
        if len != state.len {
            // A torn line another writer left is closed here and reported by `verify`.
            let found = catch_up(&file, path)?;
            state.len = found.len;
            state.next_seq = found.next_seq;
            state.prev = found.prev;
        }
        let mut bytes = Vec::new();
        let mut appended = Vec::with_capacity(records.len());
        let (mut seq, mut prev) = (state.next_seq, state.prev.clone());
        for record in &records {
            let (line, hash) =
                line::seal(seq, &prev, record).map_err(|source| AuditError::Serialize {
                    path: path.clone(),
                    event: record.event.as_str(),
                    source,
                })?;
            bytes.extend_from_slice(&line);
            appended.push(Appended {
                seq,
                hash: hash.clone(),
            });
            seq += 1;
            prev = hash;
        }

        if let Err(e) = state.file.write_all(&bytes) {
            // Remove any partial line so the next record starts on a fresh line.
            let len = state.len;
            if let Err(undo) = state.file.set_len(len) {
                state.broken = Some(format!(
                    "a write failed ({e}) and the partial line could not be removed ({undo})"
                ));
            }
            return Err(AuditError::io(path, "cannot write", e));
        }
        if let Err(e) = state.file.sync_data() {
            // The lines may or may not be durable; only a reopen can tell where the chain ends.
            state.broken = Some(format!("fsync failed: {e}"));
            return Err(AuditError::io(path, "cannot fsync", e));
        }

        state.len += bytes.len() as u64;
        state.next_seq = seq;
        state.prev = prev;
        Ok(appended)
    }

    /// Whether the next append can be expected to succeed: the writer is not broken by an
    /// earlier failure, the path still names the file being written (not moved away or
    /// deleted, which would send records where nobody looks), and it can still be opened for
    /// appending. A full disk shows only when a write fails, which breaks nothing but is
    /// reported by that write.
    pub fn check_writable(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let path = &self.inner.path;
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = &state.broken {
            return Err(format!("{}: unusable: {reason}", path.display()));
        }
        let held = state
            .file
            .metadata()
            .map_err(|e| format!("{}: cannot stat the open file: {e}", path.display()))?;
        drop(state);
        let named = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e} (moved or deleted while in use?)", path.display()))?;
        if (named.dev(), named.ino()) != (held.dev(), held.ino()) {
            return Err(format!(
                "{}: is no longer the file being written (moved or replaced); restart the agent",
                path.display()
            ));
        }
        OpenOptions::new()
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
}

/// Take the agent claim on `<log>.agent-lock`, recording who holds it for the next one's
/// message.
fn claim(path: &Path) -> Result<File, AuditError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".agent-lock");
    let claim_path = PathBuf::from(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&claim_path)
        .map_err(|e| AuditError::io(&claim_path, "cannot open the agent claim", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&claim_path)
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty());
            return Err(AuditError::InUse {
                path: path.to_owned(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(AuditError::io(
                &claim_path,
                "cannot lock the agent claim",
                e,
            ));
        }
    }
    let holder = format!(
        "pid {} since {}",
        std::process::id(),
        jiff::Timestamp::now()
    );
    file.set_len(0)
        .and_then(|()| file.write_all(holder.as_bytes()))
        .map_err(|e| AuditError::io(&claim_path, "cannot write the agent claim", e))?;
    Ok(file)
}

/// Where the chain ends now, with a torn last line closed (the caller holds the lock).
struct CaughtUp {
    len: u64,
    next_seq: u64,
    prev: String,
    warnings: Vec<String>,
}

fn catch_up(file: &File, path: &Path) -> Result<CaughtUp, AuditError> {
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
        len,
        next_seq: tail.next_seq,
        prev: tail.prev,
        warnings: tail.warnings,
    })
}

/// Opens the file for reading and appending; `true` if it was created now.
fn open_file(path: &Path) -> Result<(File, bool), AuditError> {
    let created = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map(|file| (file, false))
            .map_err(|e| AuditError::io(path, "cannot open", e)),
        Err(e) => Err(AuditError::io(path, "cannot create", e)),
    }
}

/// Fsyncs the directory holding `path`, so a crash cannot lose the new file's entry.
fn sync_parent(path: &Path) -> Result<(), AuditError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io(path, "cannot sync the parent directory", e))
}

/// A warning if group or others have any access to the log.
fn mode_warning(path: &Path, mode: u32) -> Option<String> {
    let mode = mode & 0o7777;
    if mode & 0o077 == 0 {
        return None;
    }
    let access = match (mode & 0o044 != 0, mode & 0o022 != 0) {
        (true, true) => "readable and writable",
        (true, false) => "readable",
        (false, true) => "writable",
        (false, false) => "accessible",
    };
    Some(format!(
        "audit log {} is {access} by group/others (mode {mode:04o}); chmod 600 it",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_warnings() {
        let p = Path::new("/var/log/curfew/audit.jsonl");
        assert_eq!(mode_warning(p, 0o100600), None);
        assert_eq!(
            mode_warning(p, 0o100644).as_deref(),
            Some(
                "audit log /var/log/curfew/audit.jsonl is readable by group/others (mode 0644); chmod 600 it"
            )
        );
        assert!(mode_warning(p, 0o620).unwrap().contains("writable by"));
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("curfew-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn check_writable_flags_a_log_moved_or_deleted_under_the_writer() {
        let dir = scratch_dir("moved");
        let path = dir.join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.check_writable(), Ok(()));
        std::fs::rename(&path, dir.join("audit.jsonl.1")).unwrap();
        let gone = log.check_writable().unwrap_err();
        assert!(gone.contains("moved or deleted"), "{gone}");
        // A new file under the old name is not the one being written either.
        std::fs::write(&path, b"").unwrap();
        let replaced = log.check_writable().unwrap_err();
        assert!(
            replaced.contains("no longer the file being written"),
            "{replaced}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
