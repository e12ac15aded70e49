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

    /// An earlier write or fsync failed in a way that leaves the file's tail uncertain;
    /// the handle refuses further appends so the chain is not continued on a guess.
    /// Reopening the log repairs the tail.
    #[error(
        "audit log {}: no longer writable after an earlier failure ({reason}); reopen it",
        path.display()
    )]
    Unusable {
        /// The log file.
        path: PathBuf,
        /// The earlier failure.
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
