//! One error type for every backend call, with the kind the loop acts on. The database's own
//! error is kept whole as the source (its codes and structure are not flattened into a string);
//! the message the operator sees is that error's.

use std::fmt;

/// What the loop does about an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection is gone: reconnect and retry.
    ConnectionLost,
    /// This agent no longer leads the target (its fence failed): stop acting, campaign again.
    NotLeading,
    /// The database refused the request; `code` is its code where it gave one (PostgreSQL: the
    /// SQLSTATE, e.g. `42501`).
    Refused {
        /// The database's code.
        code: Option<String>,
    },
    /// Anything else (a failed statement, a row that could not be decoded).
    Failed,
}

/// An error from a backend: its kind, and the database's error with the operator's message.
pub struct BackendError {
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// The loop's own errors, for what it detects without the database (no reply in time, the
/// leadership given up).
#[derive(Debug, thiserror::Error)]
enum LoopError {
    #[error("target \"{target}\": this agent no longer holds the leader lock; it stops acting")]
    NotLeading { target: String },
    #[error("target \"{target}\": {what} failed: no reply within {}s", seconds)]
    NoReply {
        target: String,
        what: &'static str,
        seconds: u64,
    },
}

impl BackendError {
    /// An error of this kind, from the database's error.
    pub fn new(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError {
            kind,
            source: Box::new(source),
        }
    }

    /// This agent no longer leads `target` (said the way the adapters say it).
    pub fn not_leading(target: &str) -> BackendError {
        BackendError::new(
            ErrorKind::NotLeading,
            LoopError::NotLeading {
                target: target.to_owned(),
            },
        )
    }

    /// A statement about `what` got no reply within `seconds`: the connection is taken as lost.
    pub fn no_reply(target: &str, what: &'static str, seconds: u64) -> BackendError {
        BackendError::new(
            ErrorKind::ConnectionLost,
            LoopError::NoReply {
                target: target.to_owned(),
                what,
                seconds,
            },
        )
    }

    /// What the loop does about it.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether the connection is gone, so the caller should reconnect.
    pub fn is_connection_lost(&self) -> bool {
        self.kind == ErrorKind::ConnectionLost
    }

    /// Whether this agent lost its leadership (stop acting, campaign again).
    pub fn is_not_leading(&self) -> bool {
        self.kind == ErrorKind::NotLeading
    }

    /// The database's error, to inspect further (e.g. downcast to the adapter's type).
    pub fn database_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

/// The database's message, as it is: a backend error reads exactly like the error it wraps.
impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

/// Transparent: the chain continues with the wrapped error's own source, so a report of the
/// chain does not repeat the message.
impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_s_own_errors_read_as_the_adapter_s() {
        let e = BackendError::not_leading("db1");
        assert!(e.is_not_leading() && !e.is_connection_lost());
        assert_eq!(
            e.to_string(),
            "target \"db1\": this agent no longer holds the leader lock; it stops acting"
        );
        let e = BackendError::no_reply("db1", "checking the connection", 10);
        assert!(e.is_connection_lost() && !e.is_not_leading());
        assert_eq!(
            e.to_string(),
            "target \"db1\": checking the connection failed: no reply within 10s"
        );
    }

    #[test]
    fn a_refusal_keeps_its_code() {
        let io = std::io::Error::other("permission denied");
        let e = BackendError::new(
            ErrorKind::Refused {
                code: Some("42501".to_owned()),
            },
            io,
        );
        assert_eq!(
            e.kind(),
            &ErrorKind::Refused {
                code: Some("42501".to_owned())
            }
        );
        assert_eq!(e.to_string(), "permission denied");
        assert!(
            e.database_error()
                .downcast_ref::<std::io::Error>()
                .is_some()
        );
    }
}
