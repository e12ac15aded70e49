//! Ending sessions, guarded against ending the wrong one: one statement re-checks each session
//! and signals it ([`Connection::signal_all`]), then polls confirm the exits
//! ([`Connection::exited`]). Many sessions due at once cost one round trip, not one each. These
//! two statements are the only way curfew ends a session; the agent schedules the polls.

use curfew_backend::{EndRequest, IdleState, Outcome, Signal};
use curfew_policy::Decision;
use jiff::Timestamp;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

/// The `kind` the termination statement compares with the session's state.
fn idle_state_sql(state: IdleState) -> &'static str {
    match state {
        IdleState::Idle => "idle",
        IdleState::InTransaction => "in_transaction",
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
    /// For a session over a `max_sessions` limit: the older sessions that keep their places
    /// (pid, backend_start). All must still be there, or this session may now be within the
    /// limit and is left alone (the next snapshot ranks again).
    pub keepers: Vec<(i32, Timestamp)>,
}

impl Guard {
    /// The guard for an engine decision.
    pub fn for_decision(decision: &Decision) -> Guard {
        Guard::from(&EndRequest::for_decision(decision))
    }
}

/// An end request in PostgreSQL's terms: a session is a pid and its backend start.
impl From<&EndRequest> for Guard {
    fn from(request: &EndRequest) -> Guard {
        Guard {
            pid: request.session.pid,
            backend_start: request.session.backend_start,
            idle_since: request.idle_since,
            not_before: request.not_before,
            keepers: request
                .keepers
                .iter()
                .map(|k| (k.pid, k.backend_start))
                .collect(),
        }
    }
}

impl Connection {
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
            .map(|g| g.idle_since.map(|(k, _)| idle_state_sql(k)))
            .collect();
        let since: Vec<Option<Timestamp>> = guards
            .iter()
            .map(|g| g.idle_since.map(|(_, t)| t))
            .collect();
        let not_before: Vec<Option<Timestamp>> = guards.iter().map(|g| g.not_before).collect();
        let leader_pid = self.fence.map(|f| f.pid);
        let leader_start = self.fence.map(|f| f.backend_start);
        let mut keeper_of: Vec<i64> = Vec::new();
        let mut keeper_pids: Vec<i32> = Vec::new();
        let mut keeper_starts: Vec<Timestamp> = Vec::new();
        for (n, guard) in (1i64..).zip(guards) {
            for (pid, start) in &guard.keepers {
                keeper_of.push(n);
                keeper_pids.push(*pid);
                keeper_starts.push(*start);
            }
        }
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
                    &keeper_of,
                    &keeper_pids,
                    &keeper_starts,
                ],
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) if e.as_db_error().is_some() && !crate::error::ends_session(&e) => {
                if guards.len() > 1 {
                    // Something about one session made the server refuse the whole statement:
                    // ask again one by one, so that each session succeeds or fails on its own.
                    let mut signals = Vec::with_capacity(guards.len());
                    for guard in guards {
                        let one = Box::pin(self.signal_all(std::slice::from_ref(guard))).await?;
                        signals.extend(one);
                    }
                    return Ok(signals);
                }
                let reason = e
                    .as_db_error()
                    .map(|db| format!("{}: {}", db.severity(), db.message()))
                    .unwrap_or_default();
                let code = e.code().map(|c| c.code().to_owned());
                return Ok(vec![Signal::Settled(Outcome::Failed { reason, code })]);
            }
            Err(e) => return Err(PgError::query(&self.target, "terminating sessions", e)),
        };
        let mut signals = vec![
            Signal::Settled(Outcome::Failed {
                reason: "no result for the session".to_owned(),
                code: None,
            });
            guards.len()
        ];
        let what = "terminating sessions";
        // Fenced out: nothing was signalled, and nothing may be until this agent leads again.
        if let Some(first) = rows.first()
            && !col::<bool>(first, 5, &self.target, what)?
        {
            return Err(self.not_leading());
        }
        for row in &rows {
            let n: i64 = col(row, 0, &self.target, what)?;
            let n = usize::try_from(n - 1).unwrap_or(usize::MAX);
            let matched: bool = col(row, 1, &self.target, what)?;
            let early: bool = col(row, 2, &self.target, what)?;
            let signal: Option<bool> = col(row, 3, &self.target, what)?;
            let at: Timestamp = col(row, 4, &self.target, what)?;
            let refused: bool = col(row, 6, &self.target, what)?;
            if let Some(slot) = signals.get_mut(n) {
                *slot = match (matched, early, refused, signal) {
                    (false, _, _, _) => Signal::Settled(Outcome::NoLongerMatched { at }),
                    (true, true, _, _) => Signal::Settled(Outcome::NotYetDue { at }),
                    (true, false, true, _) => Signal::Settled(Outcome::Failed {
                        reason: "the session belongs to a superuser, and only a superuser may end it (curfew's role is not one)".to_owned(),
                        code: None,
                    }),
                    (true, false, false, Some(true)) => Signal::Signalled { at },
                    _ => Signal::Settled(Outcome::Failed {
                        reason: "PostgreSQL could not signal the process".to_owned(),
                        code: None,
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
        let what = "confirming terminations";
        rows.iter()
            .map(|r| {
                let gone: bool = col(r, 0, &self.target, what)?;
                let at: Timestamp = col(r, 1, &self.target, what)?;
                Ok(gone.then_some(at))
            })
            .collect()
    }
}
