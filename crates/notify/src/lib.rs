//! curfew's notify hooks (`[notify]`): warnings delivered to a `command` run with the warning as
//! JSON on its standard input, and to a `webhook` the warning is POSTed to. One job: getting a
//! warning that an enforcement point (the agent or the gateway) gave to the hooks the policy in
//! force configures, without ever delaying enforcement.
//!
//! A sender queues a [`Warning`] on a [`Notifier`] (bounded, never waited on: a full queue
//! drops the warning, which its sender's audit log still holds); one background task ([`run`])
//! delivers them, each hook tried up to [`ATTEMPTS`] times with a capped backoff, each attempt
//! bounded by [`ATTEMPT_TIMEOUT`]. The hooks are read when a warning is delivered, so a reload
//! applies to the next one.

mod command;
mod deliver;
mod queue;
mod warning;
mod webhook;

pub use command::split_command;
pub use deliver::{ATTEMPT_TIMEOUT, ATTEMPTS, Hook, hooks, run};
pub use queue::{Deliveries, Notifier};
pub use warning::{By, Warning};
pub use webhook::{WebhookUrl, redact_url};

#[cfg(test)]
mod tests;
