//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Why the audit log could not be opened, written or read.
///
/// Problems *inside* a log (altered or missing records) are not errors: [`crate::verify`]
/// reports them as [`crate::Problem`]s so that an assessor gets all of them at once.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Another process kept the log locked longer than any append takes.
    #[error(
        "audit log {} stayed locked by another process for {}s; a stuck writer, or a curfew agent older than this version (which locks the log for its whole run) holds it",
        path.display(), waited.as_secs()
    )]
    Busy {
        /// The log file.
        path: PathBuf,
        /// How long the append waited.
        waited: std::time::Duration,
    },

    /// Another curfew agent writes this log (two agents on one log would both close each
    /// other's unfinished actions at start).
    #[error(
        "audit log {} is in use by another curfew agent{}; give each agent its own audit log",
        path.display(),
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    InUse {
        /// The log file.
        path: PathBuf,
        /// What the holder wrote into the claim file, if anything.
        holder: Option<String>,
    },

    /// An I/O operation on the log (or its directory) failed.
    #[error("audit log {}: {what}: {source}", path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// What was being done, e.g. "cannot open".
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The last complete record of an existing log is damaged, so the chain cannot be
    /// continued without hiding that; the log must be inspected first.
    #[error(
        "audit log {}: the last complete record is damaged ({reason}); refusing to continue the chain; check it with `curfew audit verify`",
        path.display()
    )]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// What is wrong with the record.
        reason: String,
    },

    /// A record could not be serialized (only possible with unusual `detail` values).
    #[error("audit log {}: cannot serialize a {event} record: {source}", path.display())]
    Serialize {
        /// The log file.
        path: PathBuf,
        /// The event of the record.
        event: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// The log cannot be written now: an earlier write or fsync failed, or the file went away.
    /// Appends are refused until [`crate::AuditLog::recover`] succeeds (the agent retries it
    /// by itself, and on SIGHUP), so that nothing is done that cannot be recorded.
    #[error(
        "audit log {}: not writable until it recovers ({reason}); no action is taken meanwhile",
        path.display()
    )]
    Unusable {
        /// The log file.
        path: PathBuf,
        /// The earlier failure.
        reason: String,
    },

    /// The path no longer names the file being written, or the file shrank: it was moved
    /// away, deleted, replaced or truncated. Nothing is appended to it any more (records
    /// would go where nobody looks, or be lost); [`crate::AuditLog::recover`] continues the
    /// chain in the file the path names (creating it on SIGHUP).
    #[error(
        "audit log {}: {reason}; no action is taken until the log is reopened (send the agent SIGHUP)",
        path.display()
    )]
    Detached {
        /// The log file.
        path: PathBuf,
        /// What happened to the file.
        reason: String,
    },
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, what: &'static str, source: io::Error) -> Self {
        AuditError::Io {
            path: path.into(),
            what,
            source,
        }
    }
}
