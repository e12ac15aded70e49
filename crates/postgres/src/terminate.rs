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
        /// Server clock right after the signal: when the session ended.
        at: Timestamp,
        /// Server clock when the process was seen gone.
        confirmed_at: Timestamp,
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
    /// End a session if the guard still holds, then confirm its process exited (waiting up to
    /// `wait`). A refusal by the server is an `Outcome::Failed`; a lost connection is an error.
    pub async fn terminate(&self, guard: &Guard, wait: Duration) -> Result<Outcome, PgError> {
        let states: Option<Vec<&str>> = guard.idle_since.map(|(s, _)| s.to_vec());
        let since: Option<Timestamp> = guard.idle_since.map(|(_, t)| t);
        let result = self
            .client
            .query_one(
                &self.statements.terminate,
                &[&guard.pid, &guard.backend_start, &states, &since],
            )
            .await;
        let row = match result {
            Ok(row) => row,
            Err(e) if e.as_db_error().is_some() && !crate::error::ends_session(&e) => {
                return Ok(Outcome::Failed {
                    reason: e
                        .as_db_error()
                        .map(|db| format!("{}: {}", db.severity(), db.message()))
                        .unwrap_or_default(),
                });
            }
            Err(e) => return Err(PgError::query(&self.target, "terminating a session", e)),
        };
        let signalled: Option<bool> = row.get(0);
        let at: Timestamp = row.get(1);
        match signalled {
            None => return Ok(Outcome::NoLongerMatched { at }),
            Some(false) => {
                return Ok(Outcome::Failed {
                    reason: "PostgreSQL could not signal the process".to_owned(),
                });
            }
            Some(true) => {}
        }
        // Confirm the exit: usually gone at the first look; poll briefly, then less often.
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let row = self
                .client
                .query_one(&self.statements.exited, &[&guard.pid, &guard.backend_start])
                .await
                .map_err(|e| PgError::query(&self.target, "confirming a termination", e))?;
            if row.get::<_, bool>(0) {
                return Ok(Outcome::Ended {
                    at,
                    confirmed_at: row.get(1),
                });
            }
            if started.elapsed() >= wait {
                return Ok(Outcome::Failed {
                    reason: format!(
                        "the process was signalled at {at} but had not exited {} later",
                        curfew_policy::format_age(
                            jiff::SignedDuration::try_from(wait).unwrap_or_default()
                        )
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}
