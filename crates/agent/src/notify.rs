//! The agent's end of the `[notify]` hooks (`curfew-notify`): the delivery task fed by the
//! queue in the agent's shared state, reading the hooks of the policy in force, its failures
//! told to observers (`curfew_notify_failures_total`).

use std::sync::Arc;

use curfew_policy::LoadedPolicy;
use tokio::sync::watch;

use crate::events::AgentEvent;
use crate::shared::Shared;

/// Deliver the queued warnings until `stop` (see `curfew_notify::run`).
pub(crate) async fn run(
    shared: Arc<Shared>,
    policy: watch::Receiver<Arc<LoadedPolicy>>,
    stop: watch::Receiver<bool>,
) {
    let Some(deliveries) = shared.notify.take_receiver() else {
        return;
    };
    let observers = shared.clone();
    curfew_notify::run(
        deliveries,
        move || policy.borrow().policy.notify.clone(),
        stop,
        move |hook, error| {
            observers.emit(AgentEvent::NotifyFailed {
                hook: hook.as_str(),
                error,
            });
        },
    )
    .await;
}
