//! Ending one session, guarded against ending the wrong one.

use std::time::Duration;

use curfew_policy::{Cause, Decision, SessionState};
use jiff::Timestamp;

use crate::connect::Connection;
use crate::error::PgError;

/// What must still hold, at the moment of the signal, for the session to be ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The process.
    pub pid: i32,
    /// Its start: with the pid, the session's identity.
    pub backend_start: Timestamp,
    /// For idle rules: the states it must still be in, and since when.
    pub idle_since: Option<(&'static [&'static str], Timestamp)>,
}

impl Guard {
    /// The guard for an engine decision.
    pub fn for_decision(decision: &Decision) -> Guard {
        const IDLE: &[&str] = &[SessionState::Idle.as_pg()];
        const IN_TRANSACTION: &[&str] = &[
            SessionState::IdleInTransaction.as_pg(),
            SessionState::IdleInTransactionAborted.as_pg(),
        ];
        let idle_since = match decision.cause {
            Cause::Idle { since, .. } => Some((IDLE, since)),
            Cause::IdleInTransaction { since, .. } => Some((IN_TRANSACTION, since)),
            _ => None,
        };
        Guard {
            pid: decision.session.pid,
            backend_start: decision.session.backend_start,
            idle_since,
        }
    }
}

/// How a termination went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The session was signalled and its process exited.
    Ended {
        /// Server clock after the exit was confirmed.
        at: Timestamp,
    },
    /// The session had changed (ended, reused pid, ran a statement): nothing was done.
    NoLongerMatched {
        /// Server clock at the check.
        at: Timestamp,
    },
    /// The server refused or the process did not exit in time.
    Failed {
        /// Why, from the server.
        reason: String,
    },
}

impl Outcome {
    /// The audit `result` word.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Ended { .. } => "ended",
            Outcome::NoLongerMatched { .. } => "no_longer_matched",
            Outcome::Failed { .. } => "failed",
        }
    }
}

impl Connection {
    /// End a session if the guard still holds, waiting up to `wait` for its process to exit.
    /// A refusal by the server is an `Outcome::Failed`; a lost connection is an error.
    pub async fn terminate(&self, guard: &Guard, wait: Duration) -> Result<Outcome, PgError> {
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX).max(1);
        let states: Option<Vec<&str>> = guard.idle_since.map(|(s, _)| s.to_vec());
        let since: Option<Timestamp> = guard.idle_since.map(|(_, t)| t);
        let result = self
            .client
            .query_one(
                &self.statements.terminate,
                &[&guard.pid, &guard.backend_start, &wait_ms, &states, &since],
            )
            .await;
        match result {
            Ok(row) => {
                let ended: Option<bool> = row.get(0);
                let at: Timestamp = row.get(1);
                Ok(match ended {
                    None => Outcome::NoLongerMatched { at },
                    Some(true) => Outcome::Ended { at },
                    Some(false) => Outcome::Failed {
                        reason: format!(
                            "the process was signalled but did not exit within {}",
                            curfew_policy::format_age(jiff::SignedDuration::from_millis(wait_ms))
                        ),
                    },
                })
            }
            Err(e) if e.as_db_error().is_some() && !e.is_closed() => Ok(Outcome::Failed {
                reason: e
                    .as_db_error()
                    .map(|db| format!("{}: {}", db.severity(), db.message()))
                    .unwrap_or_default(),
            }),
            Err(e) => Err(PgError::query(&self.target, "terminating a session", e)),
        }
    }
}
