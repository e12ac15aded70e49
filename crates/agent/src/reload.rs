//! SIGHUP for a running agent: reopen the audit log (after logrotate moved or truncated it: the
//! chain goes on in the file at its path, created if need be), then reload the policy, all or
//! nothing. The binary only wires the signal to [`Reload::on_hangup`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use curfew_audit::details::PolicyRejection;
use curfew_audit::{AuditLog, Event, Record};
use curfew_policy::{LoadError, LoadedPolicy, Need, UrlValidator, require};
use tokio::sync::{broadcast, watch};

use crate::events::{AgentEvent, RecordedEvent};
use crate::records::{recover, write_to};
use crate::tally::AuditTally;

/// What a reload works on: the policy file, the channel the running agent reads its policy
/// from, and where the reload's own records and events go.
pub struct Reload {
    /// The policy file, read again on every reload.
    pub config: PathBuf,
    /// The running agent's policy; a valid new policy is sent here.
    pub policy: watch::Sender<Arc<LoadedPolicy>>,
    /// The agent's audit log (reopened first, then `policy_rejected` is written to it).
    pub audit: AuditLog,
    /// Observers of the agent's events (the HTTP endpoint), if any.
    pub events: Option<broadcast::Sender<AgentEvent>>,
    /// The counts of audit records the endpoint reports.
    pub tally: Arc<AuditTally>,
    /// Whether `--listen` was given (then a changed `listen` in `[agent]` is not worth a
    /// warning: the flag wins anyway).
    pub listen_from_flag: bool,
    /// The database adapters' URL checks, so a reloaded file's targets are checked as at
    /// start (a bad URL is rejected with its `file:line:col`, the running policy kept).
    pub url_validators: &'static [&'static dyn UrlValidator],
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload")
            .field("config", &self.config)
            .field("audit", &self.audit)
            .field("listen_from_flag", &self.listen_from_flag)
            .finish_non_exhaustive()
    }
}

impl Reload {
    /// SIGHUP: first the log, so that what the reload records goes to the new file; then the
    /// policy.
    pub async fn on_hangup(&self) {
        tracing::info!(
            "SIGHUP: reopening the audit log {}",
            self.audit.path().display()
        );
        let _ = recover(&self.audit, true, self.events.as_ref(), Some(&self.tally)).await;
        self.reload_policy().await;
    }

    /// Validate the whole file, then swap it in; an invalid file leaves the running policy
    /// in force, and both outcomes are audited (the swap by the agent as `policy_loaded`).
    pub async fn reload_policy(&self) {
        let config = &self.config;
        let policy = &self.policy;
        tracing::info!("SIGHUP: reloading {}", config.display());
        let checked = LoadedPolicy::from_file_with(config, Some(self.url_validators))
            .and_then(|loaded| require(loaded, Need::Enforceable));
        match checked {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    // Diagnostics quote the policy's names: escapes shown, not obeyed.
                    tracing::warn!("{}", curfew_policy::visible_lines(&warning.to_string()));
                }
                let before = policy.borrow().policy.agent.listen;
                let wanted = loaded.policy.agent.listen;
                if !self.listen_from_flag && wanted != before {
                    let shown =
                        |a: Option<SocketAddr>| a.map_or("(none)".to_owned(), |a| a.to_string());
                    tracing::warn!(
                        "`listen` in [agent] changed from {} to {}; the HTTP endpoint changes only when the agent restarts",
                        shown(before),
                        shown(wanted)
                    );
                }
                if loaded.sha256 == policy.borrow().sha256 {
                    tracing::info!("policy unchanged");
                } else {
                    let _ = policy.send(Arc::new(loaded));
                }
            }
            Err(error) => self.rejected(&error).await,
        }
    }

    /// An invalid file: say why, keep the running policy, and record `policy_rejected`.
    async fn rejected(&self, error: &LoadError) {
        let config = &self.config;
        let problems: Vec<String> = match error {
            LoadError::Invalid(errors) => errors.errors().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        };
        for problem in &problems {
            tracing::error!("{}", curfew_policy::visible_lines(problem));
        }
        tracing::error!("the new policy was rejected; the running policy stays in force");
        let record = Record::new(jiff::Timestamp::now(), Event::PolicyRejected)
            .with_reason(format!(
                "{} was rejected ({} problem{}); the running policy stays in force",
                config.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ))
            .with_details(&PolicyRejection {
                source: config.display().to_string(),
                errors: problems.clone(),
            });
        let gist = RecordedEvent {
            seq: 0,
            event: record.event,
            target: None,
            rule: None,
            result: None,
        };
        let written = write_to(&self.audit, record).await;
        // The agent tells observers of its own records; this one is written here.
        let told = match written {
            Ok(appended) => {
                let records = vec![RecordedEvent {
                    seq: appended.seq,
                    ..gist
                }];
                self.tally.add(&records);
                AgentEvent::Recorded { records }
            }
            Err(error) => {
                tracing::error!("{error}");
                AgentEvent::AuditFailed { error }
            }
        };
        if let Some(events) = &self.events {
            let _ = events.send(told);
            let _ = events.send(AgentEvent::PolicyRejected {
                source: config.display().to_string(),
                problems: problems.len(),
            });
        }
    }
}
