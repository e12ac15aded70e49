//! Delivering queued warnings to the hooks: one task, both hooks at once for each warning,
//! each with its retries; at shutdown the delivery under way gets a moment to finish.

use std::sync::Arc;
use std::time::Duration;

use curfew_policy::NotifySettings;
use tokio::sync::watch;

use crate::queue::Deliveries;
use crate::{command, webhook};

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
pub fn hooks(settings: &NotifySettings) -> Vec<Hook> {
    let mut hooks = Vec::new();
    if settings.command.is_some() {
        hooks.push(Hook::Command);
    }
    if settings.webhook.is_some() {
        hooks.push(Hook::Webhook);
    }
    hooks
}

/// Deliver queued warnings to the hooks `settings` gives when each is delivered (the policy
/// in force) until `stop`; then give the delivery under way [`GRACE`] to finish, and drop what
/// is left (logged). `failed` hears of each hook that did not take a warning after every
/// attempt (already logged), for the sender's metrics.
pub async fn run<S, F>(
    deliveries: Deliveries,
    settings: S,
    mut stop: watch::Receiver<bool>,
    failed: F,
) where
    S: Fn() -> NotifySettings,
    F: Fn(Hook, String),
{
    let Deliveries(mut receiver) = deliveries;
    let mut tls = None;
    loop {
        let warning = tokio::select! {
            warning = receiver.recv() => match warning {
                Some(warning) => warning,
                None => return,
            },
            _ = stop.changed() => break,
        };
        let settings = settings();
        let event = warning.to_json();
        let delivery = deliver(&failed, &settings, &event, &mut tls);
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
        tracing::warn!(target: "curfew::notify", event = "notify_dropped",
            "stopping: {left} warnings were not sent to the notify hooks (they are in the audit log)");
    }
}

/// Deliver one warning to each configured hook (both at once), each with its retries.
async fn deliver<F: Fn(Hook, String)>(
    failed: &F,
    settings: &NotifySettings,
    event: &serde_json::Value,
    tls: &mut Option<Result<Arc<rustls::ClientConfig>, String>>,
) {
    let body = event.to_string();
    let command = async {
        if let Some(command) = &settings.command {
            with_retries(failed, Hook::Command, || command::run(command, &body)).await;
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
            with_retries(failed, Hook::Webhook, || {
                webhook::post(url, &body, config.clone())
            })
            .await;
        }
    };
    tokio::join!(command, webhook);
}

/// Try a delivery up to [`ATTEMPTS`] times, each bounded by [`ATTEMPT_TIMEOUT`]; a final
/// failure is logged and told to `failed` (the sender's `curfew_notify_failures_total`).
async fn with_retries<A, Fut, F>(failed: &F, hook: Hook, mut attempt: A) -> bool
where
    A: FnMut() -> Fut,
    F: Fn(Hook, String),
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
            tracing::debug!(target: "curfew::notify", hook = hook.as_str(),
                "notify {} attempt {n} of {ATTEMPTS} failed: {error}; retrying in {}s",
                hook.as_str(), wait.as_secs_f64());
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(BACKOFF_MAX);
        }
    }
    tracing::warn!(target: "curfew::notify", event = "notify_failed", hook = hook.as_str(),
        "notify {} failed after {ATTEMPTS} attempts: {}", hook.as_str(), curfew_policy::visible(&error));
    failed(hook, error);
    false
}
