//! What `curfew lock` and `unlock` ask the server before they stand in for an agent: whether
//! an enforcing agent leads it.

use curfew_backend::Announcement;

use crate::{Connection, PgError};

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
}
