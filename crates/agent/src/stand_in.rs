//! `curfew lock` and `unlock` when no agent enforces a target: the command itself runs the
//! agent on those targets (same leader lock and fence, same audit records) until the change is
//! applied, then stops. An incident responder gets the lock applied now, agent or not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use curfew_audit::{AuditError, AuditLog};
use curfew_backend::Connector;
use curfew_policy::{LoadedPolicy, Target};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::shared::AgentOptions;
use crate::supervisor::{AgentError, run};

/// Why a stand-in agent could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// Its audit log could not be opened.
    #[error("opening the audit log {}", path.display())]
    Audit {
        /// The log.
        path: PathBuf,
        /// Why.
        source: AuditError,
    },
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The agent's task died.
    #[error("the agent stopped: {0}")]
    Stopped(tokio::task::JoinError),
}

/// An agent run by a command for some targets (their standbys come along).
#[derive(Debug)]
pub struct StandIn {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl StandIn {
    /// Start enforcing `loaded` on the named primaries and their standbys, recording to
    /// `audit` (appended to alongside any other writer of the file), connecting to each
    /// target through `connector` (the database adapter, as for [`run`]).
    pub fn start<C: Connector>(
        loaded: &LoadedPolicy,
        primaries: &[String],
        audit: &Path,
        connector: impl Fn(&Target) -> C + Send + Sync + 'static,
    ) -> Result<StandIn, StandInError> {
        let mut scoped = loaded.clone();
        scoped.policy.targets.retain(|t| {
            primaries.contains(&t.name) || t.primary.as_ref().is_some_and(|p| primaries.contains(p))
        });
        let log = AuditLog::open(audit).map_err(|source| StandInError::Audit {
            path: audit.to_owned(),
            source,
        })?;
        let (policy_tx, policy_rx) = watch::channel(Arc::new(scoped));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // The sender lives as long as the agent: a dropped sender would stop it.
            let _keep = policy_tx;
            let options = AgentOptions {
                close_interrupted: false,
                ..AgentOptions::default()
            };
            run(log, options, connector, policy_rx, async move {
                let _ = stop_rx.await;
            })
            .await
        });
        Ok(StandIn {
            stop: Some(stop_tx),
            task,
        })
    }

    /// Stop it (what it signalled is confirmed first) and wait.
    pub async fn stop(mut self) -> Result<(), StandInError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(result) => Ok(result?),
            Err(e) => Err(StandInError::Stopped(e)),
        }
    }
}
