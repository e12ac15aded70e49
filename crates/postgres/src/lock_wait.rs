//! What `curfew lock` and `unlock` ask the server while a change of the ledger is applied:
//! whether an enforcing agent leads it (else the command stands in for one), and the change's
//! progress until it is applied.

use std::time::{Duration, Instant};

use curfew_backend::Announcement;

use crate::{Connection, LockProgress, PgError};

/// How often the progress of a lock is read while waiting for it.
const POLL: Duration = Duration::from_millis(200);

impl Connection {
    /// Whether a curfew agent that ends sessions leads the server this connection is on: a
    /// session of curfew's own role holding the leader lock and announcing that it enforces a
    /// policy. (Any policy: the ledger's locks are applied by every enforcing agent.)
    pub async fn enforcing_agent_leads(&self) -> Result<bool, PgError> {
        let holders = self.lock_holders().await?;
        Ok(holders.iter().any(|h| {
            h.own_role
                && h.application
                    .as_deref()
                    .and_then(Announcement::parse)
                    .is_some_and(|a| !a.dry_run)
        }))
    }

    /// Polls the progress of lock `lock_id` on role `role_oid` until `done` holds (`Some`, the
    /// progress then), or `limit` has passed (`None`).
    pub async fn wait_for_lock_progress(
        &self,
        role_oid: u32,
        lock_id: i64,
        limit: Duration,
        done: impl Fn(&LockProgress) -> bool,
    ) -> Result<Option<LockProgress>, PgError> {
        let started = Instant::now();
        loop {
            let progress = self.lock_progress(role_oid, lock_id).await?;
            if done(&progress) {
                return Ok(Some(progress));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
