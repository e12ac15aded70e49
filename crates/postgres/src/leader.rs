//! Leadership among agent replicas: a session-level advisory lock on a dedicated connection.
//! PostgreSQL is the coordination service: the lock is released when the holder's session ends,
//! whatever ended it.
//!
//! Holding the lock is not enough to act safely: the leader's lock connection may be gone on the
//! server while the agent has not noticed yet, and another replica may already lead. So every
//! action is *fenced*: the statement that ends sessions, and the transaction that changes a
//! login, check on the server, in the same statement, that the leader's lock session (pid and
//! start time) is still alive. curfew never unlocks the lock on that session, so the session
//! alive means the lock held; a replica whose lock session ended cannot act. (Checking
//! `pg_locks` instead would cost a scan of the whole lock table per termination: 6 ms with 2000
//! sessions, measured.) One gap remains, inside PostgreSQL: an exiting backend releases its
//! advisory locks a moment (well under a millisecond) before it leaves `pg_stat_activity`. A new
//! leader would have to take the lock and act within that moment while the old one acts too;
//! and even then each termination's own guard makes a second signal to the same session a
//! no-op. Connect directly, not through a pooler: a pooler may run `DISCARD ALL`, which releases
//! the lock while the server session lives on.

use crate::connect::Connection;
use crate::error::PgError;
use crate::fence::{LEADER_KEY, Leadership};
use crate::sql::leader::{
    ANNOUNCE, PING, TRY_LEAD, UNLOCK, WHAT_CHECK, WHAT_HOLDERS, WHAT_TAKE, decode_lock_holder,
    decode_try_lead, held_elsewhere_sql, lock_holders_sql, still_leads_sql,
};
use crate::sql::scalar;

/// Who holds the leader lock (see [`curfew_backend::LockHolder`]).
pub type LeaderInfo = curfew_backend::LockHolder;

impl Connection {
    /// Try to take the leader lock on this connection (which should do nothing else and must
    /// never unlock it). `Some` when this connection holds it now. A lock held by a replica
    /// connected to another database of the same server counts as taken: advisory locks are
    /// per database, and two leaders on one server would end the same sessions.
    pub async fn try_lead(&mut self) -> Result<Option<Leadership>, PgError> {
        let failed = |e| PgError::query(&self.target, WHAT_TAKE, e);
        let row = self
            .client
            .query_one(TRY_LEAD, &[&LEADER_KEY])
            .await
            .map_err(failed)?;
        let Some(backend_start) = decode_try_lead(&row, &self.target)? else {
            return Ok(None);
        };
        if self.leads.is_none() {
            let row = self
                .client
                .query_one(&held_elsewhere_sql(), &[])
                .await
                .map_err(failed)?;
            let elsewhere = scalar(&row, &self.target, WHAT_TAKE)?;
            if elsewhere {
                self.client
                    .execute(UNLOCK, &[&LEADER_KEY])
                    .await
                    .map_err(failed)?;
                return Ok(None);
            }
        } else {
            // Taken again by its holder: keep the count at one.
            self.client
                .execute(UNLOCK, &[&LEADER_KEY])
                .await
                .map_err(failed)?;
        }
        let leadership = Leadership {
            pid: self.info.backend_pid,
            backend_start,
        };
        self.leads = Some(leadership);
        Ok(Some(leadership))
    }

    /// Whether this connection still holds the leader lock: it took it, and its session still
    /// answers as the same one (a heartbeat round trip: a session that answers has not lost it).
    pub async fn still_leads(&self) -> Result<bool, PgError> {
        let Some(leadership) = self.leads else {
            return Ok(false);
        };
        let row = self
            .client
            .query_one(
                &still_leads_sql(),
                &[&leadership.pid, &leadership.backend_start],
            )
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_CHECK, e))?;
        scalar(&row, &self.target, WHAT_CHECK)
    }

    /// Who holds the leader lock now, if anyone: a session of curfew's own role first (see
    /// [`Connection::lock_holders`]).
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, PgError> {
        Ok(self.lock_holders().await?.into_iter().find(|h| h.granted))
    }

    /// Every other session that holds the leader lock, in any database (advisory locks are per
    /// database, so several may), or waits for it: holders first, sessions of curfew's own role
    /// first. Any role may take an advisory lock: a holder of another role is a squatter, never
    /// a curfew agent; so is a session of another role waiting for it (it would get the lock
    /// the moment a squatter ahead of it is ended).
    pub async fn lock_holders(&self) -> Result<Vec<LeaderInfo>, PgError> {
        let rows = self
            .client
            .query(&lock_holders_sql(), &[])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_HOLDERS, e))?;
        rows.iter()
            .map(|r| decode_lock_holder(r, &self.target))
            .collect()
    }

    /// Show `text` as this session's `application_name`, where `pg_stat_activity` and
    /// `curfew check` see it: the leader announces its mode and policy on its lock session.
    pub async fn announce(&self, text: &str) -> Result<(), PgError> {
        self.client
            .execute(ANNOUNCE, &[&text])
            .await
            .map(drop)
            .map_err(|e| PgError::query(&self.target, "announcing the agent", e))
    }

    /// One round trip: the connection and the server still answer.
    pub async fn ping(&self) -> Result<(), PgError> {
        self.client
            .simple_query(PING)
            .await
            .map(drop)
            .map_err(|e| PgError::query(&self.target, "checking the connection", e))
    }

    /// Fence this connection's actions: from now on, sessions are ended and logins changed
    /// only while `leadership` holds the leader lock (checked by the server in the same
    /// statement). `None` removes the fence (a single process with no replicas, or tests).
    pub fn fence(&mut self, leadership: Option<Leadership>) {
        self.fence = leadership;
    }

    /// The NotLeading error for this connection.
    pub(crate) fn not_leading(&self) -> PgError {
        PgError::NotLeading {
            target: self.target.clone(),
        }
    }
}
