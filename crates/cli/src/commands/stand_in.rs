//! `curfew lock` and `unlock` when no agent enforces a target: whether one leads, and where the
//! stand-in (`curfew_agent::StandIn`, run by the command itself) records.

use std::path::{Path, PathBuf};

use curfew_policy::LoadedPolicy;
use curfew_postgres::{Announcement, Connection};

use crate::exit::Failure;

/// Whether a curfew agent that ends sessions leads the server `connection` is on: a session of
/// curfew's own role holding the leader lock and announcing that it enforces a policy. (Any
/// policy: the ledger's locks are applied by every enforcing agent.)
pub(crate) async fn agent_leads(connection: &Connection) -> Result<bool, Failure> {
    let holders = connection
        .lock_holders()
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    Ok(holders.iter().any(|h| {
        h.own_role
            && h.application
                .as_deref()
                .and_then(Announcement::parse)
                .is_some_and(|a| !a.dry_run)
    }))
}

/// The audit log the agent would write: `--audit-log`, else `audit_log` in `[agent]`.
pub(crate) fn audit_path(loaded: &LoadedPolicy, given: Option<&Path>) -> Result<PathBuf, Failure> {
    given
        .map(Path::to_owned)
        .or_else(|| loaded.policy.agent.audit_log.as_ref().map(PathBuf::from))
        .ok_or_else(|| {
            Failure::Usage(
                "no curfew agent leads the target, so this command applies the change itself and must record it: set audit_log in [agent] of the policy, or pass --audit-log FILE"
                    .to_owned(),
            )
        })
}
