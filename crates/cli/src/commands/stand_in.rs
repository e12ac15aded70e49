//! `curfew lock` and `unlock` when no agent enforces a target: whether one leads, and where the
//! stand-in (`curfew_agent::StandIn`, run by the command itself) records.

use std::path::{Path, PathBuf};

use curfew_policy::LoadedPolicy;
use curfew_postgres::Connection;

use crate::exit::Failure;

/// Whether an enforcing curfew agent leads the server `connection` is on (see
/// [`Connection::enforcing_agent_leads`]).
pub(crate) async fn agent_leads(connection: &Connection) -> Result<bool, Failure> {
    connection
        .enforcing_agent_leads()
        .await
        .map_err(|e| Failure::Runtime(e.into()))
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
