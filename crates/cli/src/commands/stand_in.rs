//! `curfew lock` and `unlock` when no agent enforces a target: the command itself runs the
//! agent on those targets (same leader lock and fence, same audit records) until the change is
//! applied, then stops. An incident responder gets the lock applied now, agent or not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use curfew_agent::{AgentOptions, LoadedPolicy};
use curfew_audit::AuditLog;
use curfew_postgres::{Announcement, Connection};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

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

/// An agent run by the command for some targets (their standbys come along).
pub(crate) struct StandIn {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), curfew_agent::AgentError>>,
}

impl StandIn {
    /// Start enforcing `loaded` on the named primaries and their standbys, recording to
    /// `audit` (appended to alongside any other writer of the file).
    pub(crate) fn start(
        loaded: &LoadedPolicy,
        primaries: &[String],
        audit: &Path,
    ) -> Result<StandIn, Failure> {
        let mut scoped = loaded.clone();
        scoped.policy.targets.retain(|t| {
            primaries.contains(&t.name) || t.primary.as_ref().is_some_and(|p| primaries.contains(p))
        });
        let log = AuditLog::open(audit)
            .with_context(|| format!("opening the audit log {}", audit.display()))?;
        let (_policy_tx, policy_rx) = watch::channel(Arc::new(scoped));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // The sender lives as long as the agent: a dropped sender would stop it.
            let _keep = _policy_tx;
            let options = AgentOptions {
                close_interrupted: false,
                ..AgentOptions::default()
            };
            curfew_agent::run(
                log,
                options,
                curfew_postgres::PolicyTarget::from_policy,
                policy_rx,
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await
        });
        Ok(StandIn {
            stop: Some(stop_tx),
            task,
        })
    }

    /// Stop it (what it signalled is confirmed first) and wait.
    pub(crate) async fn stop(mut self) -> Result<(), Failure> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Runtime(e.into())),
            Err(e) => Err(Failure::Runtime(anyhow::anyhow!("the agent stopped: {e}"))),
        }
    }
}
