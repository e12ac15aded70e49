//! MariaDB as far as `curfew-backend`'s traits allow today: reading sessions and ending them.
//! A [`SessionKey`] carries a connection id and a start; this connection remembers, for each
//! key it reported, the account and the server's boot, and re-checks them at the end (a key it
//! did not report, e.g. one planned before a reconnect, matches nothing).

use curfew_backend::{
    AuthorizedEnd, BackendError, ErrorKind, Outcome, SessionEnder, SessionEnding, SessionKey,
    SessionReader, Signal, Snapshot,
};
use jiff::Timestamp;

use crate::connect::Connection;
use crate::error::MysqlError;
use crate::kill::{KillRequest, signal};

/// What the loop does about a MariaDB/MySQL error; the error itself is kept as the source.
impl From<MysqlError> for BackendError {
    fn from(e: MysqlError) -> BackendError {
        let kind = match &e {
            MysqlError::NotLeading { .. } => ErrorKind::NotLeading,
            MysqlError::Query { lost: true, .. } => ErrorKind::ConnectionLost,
            MysqlError::MissingPrivileges { .. } => ErrorKind::Refused { code: None },
            MysqlError::Connect { .. } | MysqlError::ConnectTimeout { .. } => {
                ErrorKind::ConnectionLost
            }
            _ => match e.server_code() {
                Some(code) => ErrorKind::Refused {
                    code: Some(code.to_string()),
                },
                None => ErrorKind::Failed,
            },
        };
        BackendError::new(kind, e)
    }
}

impl SessionReader for Connection {
    /// `memberships` is ignored: MariaDB roles are not read yet (every `member_of` is empty).
    async fn snapshot(&mut self, _memberships: bool) -> Result<Snapshot, BackendError> {
        Ok(Connection::snapshot(self).await?)
    }
}

impl Connection {
    /// The kill request for an end request, if this connection reported its session (and
    /// every keeper).
    pub fn kill_request(&self, request: &curfew_backend::EndRequest) -> Option<KillRequest> {
        let keepers = request
            .keepers
            .iter()
            .map(|k| self.seen.get(k).cloned())
            .collect::<Option<Vec<_>>>()?;
        Some(KillRequest {
            session: self.seen.get(&request.session)?.clone(),
            idle_since: request.idle_since,
            not_before: request.not_before,
            keepers,
        })
    }
}

impl SessionEnder for Connection {
    async fn signal_all<A: SessionEnding>(
        &mut self,
        requests: &[AuthorizedEnd<'_, A>],
    ) -> Result<Vec<Signal>, BackendError> {
        let planned: Vec<Option<KillRequest>> = requests
            .iter()
            .map(|r| self.kill_request(r.request()))
            .collect();
        let known: Vec<KillRequest> = planned.iter().flatten().cloned().collect();
        let answer = self.kill_all(&known).await?;
        let at = answer.at;
        let mut verdicts = answer.verdicts.into_iter();
        let now = match known.len() < requests.len() {
            true => Some(self.server_now().await?),
            false => None,
        };
        let mut signals = Vec::with_capacity(requests.len());
        for plan in &planned {
            let verdict = match plan {
                Some(_) => verdicts.next(),
                None => None,
            };
            signals.push(match verdict {
                Some(verdict) => signal(&verdict, at),
                // Not reported by this connection (planned before a reconnect, or a keeper
                // gone from its snapshots): nothing is done.
                None => Signal::Settled(Outcome::NoLongerMatched {
                    at: now.unwrap_or(Timestamp::UNIX_EPOCH),
                }),
            });
        }
        Ok(signals)
    }

    async fn exited(
        &mut self,
        sessions: &[SessionKey],
    ) -> Result<Vec<Option<Timestamp>>, BackendError> {
        let seen: Vec<Option<crate::seen::SeenSession>> =
            sessions.iter().map(|k| self.seen.get(k).cloned()).collect();
        let known: Vec<crate::seen::SeenSession> = seen.iter().flatten().cloned().collect();
        let mut gone = self.gone(&known).await?.into_iter();
        let now = match known.len() < sessions.len() {
            true => Some(self.server_now().await?),
            false => None,
        };
        Ok(seen
            .iter()
            .map(|s| match s {
                Some(_) => gone.next().flatten(),
                // Not reported by this connection: gone as far as it can tell.
                None => now,
            })
            .collect())
    }
}
