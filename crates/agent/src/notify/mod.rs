//! The notify hooks of `[notify]`: a `command` run with the event as JSON on its standard input,
//! and a `webhook` the event is POSTed to. They hear of warnings (`session_warned`), which the
//! agent cannot deliver to the user itself.
//!
//! Enforcement never waits for a hook: events go through a bounded queue to one background
//! task; a full queue drops the event (counted, logged); each delivery is tried up to
//! [`ATTEMPTS`] times with a capped backoff, each attempt bounded by [`ATTEMPT_TIMEOUT`]. The
//! hooks are read from the policy in force when an event is delivered, so a reload applies to
//! the next event.

mod command;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use curfew_policy::NotifySettings;
use serde_json::Value;
use tokio::sync::watch;

use crate::events::AgentEvent;
use crate::shared::Shared;
use curfew_policy::LoadedPolicy;

pub use command::split_command;
pub use webhook::{WebhookUrl, redact_url};

/// Attempts per delivery (the first and two retries).
pub const ATTEMPTS: u32 = 3;
/// How long one attempt may take (the command's run, or the HTTP exchange).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before the first retry; doubled for each further one, at most [`BACKOFF_MAX`].
const BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// At shutdown, how long a delivery under way may still take.
const GRACE: Duration = Duration::from_secs(2);

/// A hook, as named in metrics, logs and audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `[notify] command`.
    Command,
    /// `[notify] webhook`.
    Webhook,
}

impl Hook {
    /// `command` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Command => "command",
            Hook::Webhook => "webhook",
        }
    }
}

/// The hooks a policy configures.
pub(crate) fn hooks(settings: &NotifySettings) -> Vec<Hook> {
    let mut hooks = Vec::new();
    if settings.command.is_some() {
        hooks.push(Hook::Command);
    }
    if settings.webhook.is_some() {
        hooks.push(Hook::Webhook);
    }
    hooks
}

/// Deliver queued events to the hooks of the policy in force until `stop`; then give the
/// delivery under way [`GRACE`] to finish, and drop what is left.
pub(crate) async fn run(
    shared: Arc<Shared>,
    policy: watch::Receiver<Arc<LoadedPolicy>>,
    mut stop: watch::Receiver<bool>,
) {
    let receiver = shared.notify.take_receiver();
    let Some(mut receiver) = receiver else {
        return;
    };
    let mut tls = None;
    loop {
        let event = tokio::select! {
            event = receiver.recv() => match event {
                Some(event) => event,
                None => return,
            },
            _ = stop.changed() => break,
        };
        let settings = policy.borrow().policy.notify.clone();
        let delivery = deliver(&shared, &settings, &event, &mut tls);
        tokio::pin!(delivery);
        tokio::select! {
            () = &mut delivery => {}
            _ = stop.changed() => {
                let _ = tokio::time::timeout(GRACE, delivery).await;
                break;
            }
        }
    }
    receiver.close();
    let mut left = 0;
    while receiver.try_recv().is_ok() {
        left += 1;
    }
    if left > 0 {
        tracing::warn!(target: "curfew::agent", event = "notify_dropped",
            "the agent is stopping: {left} events were not sent to the notify hooks (they are in the audit log)");
    }
}

/// Deliver one event to each configured hook (both at once), each with its retries.
async fn deliver(
    shared: &Shared,
    settings: &NotifySettings,
    event: &Value,
    tls: &mut Option<Result<Arc<rustls::ClientConfig>, String>>,
) {
    let body = event.to_string();
    let command = async {
        if let Some(command) = &settings.command {
            with_retries(shared, Hook::Command, || command::run(command, &body)).await;
        }
    };
    let webhook = async {
        if let Some(url) = &settings.webhook {
            let config = match tls {
                Some(config) => Some(config.clone()),
                None if url.to_ascii_lowercase().starts_with("https://") => {
                    // Reading the system's certificates is file I/O: off the async threads.
                    let config = tokio::task::spawn_blocking(webhook::tls_config)
                        .await
                        .unwrap_or_else(|e| Err(format!("loading trusted certificates: {e}")));
                    *tls = Some(config.clone());
                    Some(config)
                }
                None => None,
            };
            with_retries(shared, Hook::Webhook, || {
                webhook::post(url, &body, config.clone())
            })
            .await;
        }
    };
    tokio::join!(command, webhook);
}

/// Try a delivery up to [`ATTEMPTS`] times, each bounded by [`ATTEMPT_TIMEOUT`]; a final
/// failure is logged and told to observers (`curfew_notify_failures_total`).
async fn with_retries<F, Fut>(shared: &Shared, hook: Hook, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut wait = BACKOFF;
    let mut error = String::new();
    for n in 1..=ATTEMPTS {
        error = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
        };
        if n < ATTEMPTS {
            tracing::debug!(target: "curfew::agent", hook = hook.as_str(),
                "notify {} attempt {n} of {ATTEMPTS} failed: {error}; retrying in {}s",
                hook.as_str(), wait.as_secs_f64());
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(BACKOFF_MAX);
        }
    }
    tracing::warn!(target: "curfew::agent", event = "notify_failed", hook = hook.as_str(),
        "notify {} failed after {ATTEMPTS} attempts: {}", hook.as_str(), curfew_policy::visible(&error));
    shared.emit(AgentEvent::NotifyFailed {
        hook: hook.as_str(),
        error,
    });
    false
}

#[cfg(test)]
mod tests;
