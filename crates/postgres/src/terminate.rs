//! Ending sessions, guarded against ending the wrong one: one statement re-checks each session
//! and signals it ([`Connection::signal_all`]), then polls confirm the exits
//! ([`Connection::exited`]). Many sessions due at once cost one round trip, not one each. These
//! two statements are the only way curfew ends a session; the agent schedules the polls. Their
//! text, parameters and decoding are in `crate::sql::terminate`.

use curfew_backend::{Outcome, Signal};
use jiff::Timestamp;

pub use crate::sql::terminate::Guard;

use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::terminate::{
    TerminateParams, TerminationRow, WHAT, WHAT_EXITED, decode_exited, decode_signals,
    exited_params,
};

impl Connection {
    /// Signal every session whose guard still holds, in one statement, without waiting for
    /// the exits (see [`Connection::exited`]). Results come in the guards' order. A refusal by
    /// the server is a `Signal::Failed` for every session of the batch; a lost connection is an
    /// error.
    pub async fn signal_all(&self, guards: &[Guard]) -> Result<Vec<Signal>, PgError> {
        if guards.is_empty() {
            return Ok(Vec::new());
        }
        let params = TerminateParams::new(guards, self.fence);
        let rows = match self
            .client
            .query(&self.statements.terminate, &params.as_params())
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
            Err(e) => return Err(PgError::query(&self.target, WHAT, e)),
        };
        let rows = rows
            .iter()
            .map(|row| TerminationRow::extract(row, &self.target))
            .collect::<Result<Vec<_>, PgError>>()?;
        decode_signals(&rows, guards.len()).ok_or_else(|| self.not_leading())
    }

    /// For each session (pid, backend_start), the server's clock if its process is gone.
    pub async fn exited(
        &self,
        sessions: &[(i32, Timestamp)],
    ) -> Result<Vec<Option<Timestamp>>, PgError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let (pids, starts) = exited_params(sessions);
        let rows = self
            .client
            .query(&self.statements.exited, &[&pids, &starts])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_EXITED, e))?;
        rows.iter()
            .map(|r| decode_exited(r, &self.target))
            .collect()
    }
}
