//! Ending sessions, guarded against ending the wrong one: one statement re-checks each session
//! and signals it, then one poll confirms the exits. Many sessions due at once cost one round
//! trip, not one each.

use std::time::Duration;

use curfew_policy::{Cause, Decision};
use jiff::Timestamp;

use crate::connect::Connection;
use crate::error::PgError;

/// Which idle state an idle rule's guard requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// `idle`.
    Idle,
    /// `idle in transaction` or `idle in transaction (aborted)`.
    InTransaction,
}

impl IdleState {
    fn as_sql(self) -> &'static str {
        match self {
            IdleState::Idle => "idle",
            IdleState::InTransaction => "in_transaction",
        }
    }
}

/// What must still hold, at the moment of the signal, for a session to be ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The process.
    pub pid: i32,
    /// Its start: with the pid, the session's identity (pids are reused).
    pub backend_start: Timestamp,
    /// For idle rules: the state it must still be in, and since when (a statement in between
    /// resets the clock).
    pub idle_since: Option<(IdleState, Timestamp)>,
    /// Not before this instant on the server's clock (the deadline): an early signal is refused.
    pub not_before: Option<Timestamp>,
}

impl Guard {
    /// The guard for an engine decision.
    pub fn for_decision(decision: &Decision) -> Guard {
        let idle_since = match decision.cause {
            Cause::Idle { since, .. } => Some((IdleState::Idle, since)),
            Cause::IdleInTransaction { since, .. } => Some((IdleState::InTransaction, since)),
            _ => None,
        };
        Guard {
            pid: decision.session.pid,
            backend_start: decision.session.backend_start,
            idle_since,
            not_before: Some(decision.deadline),
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
    /// The server's clock had not reached the deadline yet: nothing was done (try again then).
    NotYetDue {
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
            Outcome::NotYetDue { .. } => "not_yet_due",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// What signalling one session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Its guard held and it was sent the signal at `at` (its exit is still to be confirmed).
    Signalled {
        /// Server clock right after the signal.
        at: Timestamp,
    },
    /// Nothing was sent, and this is the outcome: `NoLongerMatched`, `NotYetDue` or `Failed`.
    Settled(Outcome),
}

impl Connection {
    /// End one session if its guard holds; see [`Connection::terminate_all`].
    pub async fn terminate(&self, guard: &Guard, wait: Duration) -> Result<Outcome, PgError> {
        let mut outcomes = self
            .terminate_all(std::slice::from_ref(guard), wait)
            .await?;
        Ok(outcomes.pop().unwrap_or(Outcome::Failed {
            reason: "no result for the session".to_owned(),
        }))
    }

    /// End every session whose guard still holds, in one statement, then confirm the exits
    /// (waiting up to `wait`). Outcomes come in the guards' order. A refusal by the server is
    /// an `Outcome::Failed` for every session of the batch; a lost connection is an error.
    pub async fn terminate_all(
        &self,
        guards: &[Guard],
        wait: Duration,
    ) -> Result<Vec<Outcome>, PgError> {
        let signals = self.signal_all(guards).await?;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; guards.len()];
        let mut signalled = Vec::new();
        for (n, signal) in signals.into_iter().enumerate() {
            outcomes[n] = match signal {
                Signal::Signalled { at } => {
                    signalled.push((n, at));
                    None
                }
                Signal::Settled(outcome) => Some(outcome),
            };
        }
        self.confirm_exits(guards, &signalled, wait, &mut outcomes)
            .await?;
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::Failed {
                    reason: "no result for the session".to_owned(),
                })
            })
            .collect())
    }

    /// Signal every session whose guard still holds, in one statement, without waiting for
    /// the exits (see [`Connection::exited`]). Results come in the guards' order. A refusal by
    /// the server is a `Signal::Failed` for every session of the batch; a lost connection is an
    /// error.
    pub async fn signal_all(&self, guards: &[Guard]) -> Result<Vec<Signal>, PgError> {
        if guards.is_empty() {
            return Ok(Vec::new());
        }
        let pids: Vec<i32> = guards.iter().map(|g| g.pid).collect();
        let starts: Vec<Timestamp> = guards.iter().map(|g| g.backend_start).collect();
        let kinds: Vec<Option<&str>> = guards
            .iter()
            .map(|g| g.idle_since.map(|(k, _)| k.as_sql()))
            .collect();
        let since: Vec<Option<Timestamp>> = guards
            .iter()
            .map(|g| g.idle_since.map(|(_, t)| t))
            .collect();
        let not_before: Vec<Option<Timestamp>> = guards.iter().map(|g| g.not_before).collect();
        let leader_pid = self.fence.map(|f| f.pid);
        let leader_start = self.fence.map(|f| f.backend_start);
        let rows = match self
            .client
            .query(
                &self.statements.terminate,
                &[
                    &pids,
                    &starts,
                    &kinds,
                    &since,
                    &not_before,
                    &leader_pid,
                    &leader_start,
                ],
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) if e.as_db_error().is_some() && !crate::error::ends_session(&e) => {
                let reason = e
                    .as_db_error()
                    .map(|db| format!("{}: {}", db.severity(), db.message()))
                    .unwrap_or_default();
                return Ok(vec![
                    Signal::Settled(Outcome::Failed { reason });
                    guards.len()
                ]);
            }
            Err(e) => return Err(PgError::query(&self.target, "terminating sessions", e)),
        };
        let mut signals = vec![
            Signal::Settled(Outcome::Failed {
                reason: "no result for the session".to_owned()
            });
            guards.len()
        ];
        // Fenced out: nothing was signalled, and nothing may be until this agent leads again.
        if rows.first().is_some_and(|r| !r.get::<_, bool>(5)) {
            return Err(self.not_leading());
        }
        for row in &rows {
            let n = usize::try_from(row.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            let (matched, early): (bool, bool) = (row.get(1), row.get(2));
            let signal: Option<bool> = row.get(3);
            let at: Timestamp = row.get(4);
            if let Some(slot) = signals.get_mut(n) {
                *slot = match (matched, early, signal) {
                    (false, _, _) => Signal::Settled(Outcome::NoLongerMatched { at }),
                    (true, true, _) => Signal::Settled(Outcome::NotYetDue { at }),
                    (true, false, Some(true)) => Signal::Signalled { at },
                    _ => Signal::Settled(Outcome::Failed {
                        reason: "PostgreSQL could not signal the process".to_owned(),
                    }),
                };
            }
        }
        Ok(signals)
    }

    /// For each session (pid, backend_start), the server's clock if its process is gone.
    pub async fn exited(
        &self,
        sessions: &[(i32, Timestamp)],
    ) -> Result<Vec<Option<Timestamp>>, PgError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let pids: Vec<i32> = sessions.iter().map(|(p, _)| *p).collect();
        let starts: Vec<Timestamp> = sessions.iter().map(|(_, s)| *s).collect();
        let rows = self
            .client
            .query(&self.statements.exited, &[&pids, &starts])
            .await
            .map_err(|e| PgError::query(&self.target, "confirming terminations", e))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, bool>(0).then(|| r.get::<_, Timestamp>(1)))
            .collect())
    }

    /// Poll until the signalled processes are gone (usually at the first look), up to `wait`.
    async fn confirm_exits(
        &self,
        guards: &[Guard],
        signalled: &[(usize, Timestamp)],
        wait: Duration,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), PgError> {
        let started = tokio::time::Instant::now();
        let mut pending: Vec<(usize, Timestamp)> = signalled.to_vec();
        let mut pause = Duration::from_millis(1);
        while !pending.is_empty() {
            let sessions: Vec<(i32, Timestamp)> = pending
                .iter()
                .map(|(n, _)| (guards[*n].pid, guards[*n].backend_start))
                .collect();
            let gone = self.exited(&sessions).await?;
            let mut still = Vec::new();
            for (i, confirmed) in gone.into_iter().enumerate() {
                let (n, at) = pending[i];
                match confirmed {
                    Some(now) => {
                        outcomes[n] = Some(Outcome::Ended {
                            at,
                            confirmed_at: now,
                        });
                    }
                    None => still.push((n, at)),
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if started.elapsed() >= wait {
                for (n, at) in &pending {
                    outcomes[*n] = Some(Outcome::Failed {
                        reason: format!(
                            "the process was signalled at {at} but had not exited {} later",
                            curfew_policy::format_age(
                                jiff::SignedDuration::try_from(wait).unwrap_or_default()
                            )
                        ),
                    });
                }
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Ok(())
    }
}
