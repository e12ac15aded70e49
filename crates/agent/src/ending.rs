//! How one session is to be ended and why (an engine decision, a login lock), and what its
//! outcome record says of the end.

use curfew_audit::TerminationOutcome;
use curfew_audit::details::{SessionEnded, TerminationFailure, TerminationSkip};
use curfew_backend::{EndRequest, GatewayClient, Outcome};
use curfew_policy::{Decision, Limit, LoadedPolicy};
use jiff::Timestamp;

/// How one session is to be ended, and why.
pub(crate) struct Ending {
    pub(crate) rule: String,
    pub(crate) reason: String,
    pub(crate) deadline: Timestamp,
    pub(crate) guard: EndRequest,
    /// The session was the gateway's to end and the gateway had not when the grace ran out.
    pub(crate) gateway_missed: bool,
}

impl Ending {
    /// The ending an engine decision describes, with its reason as of `now`.
    pub(crate) fn of(loaded: &LoadedPolicy, d: &Decision, now: Timestamp) -> Ending {
        Ending {
            rule: d.rule_id.to_string(),
            reason: d.reason(&loaded.policy, now.max(d.deadline)),
            deadline: d.deadline,
            guard: EndRequest::for_decision(d),
            gateway_missed: false,
        }
    }

    /// The same ending, for a session the gateway should have ended by now (the grace after
    /// the deadline ran out): its reason, and so its records and log, say that it did not.
    pub(crate) fn missed_by_gateway(mut self, client: &GatewayClient, grace: Limit) -> Ending {
        self.gateway_missed = true;
        self.reason = format!(
            "{}; curfew gateway {} did not end it within {grace} of the deadline",
            self.reason, client.gateway
        );
        self
    }
}

/// What ending a session came to, as its outcome record states it: the backend's answer, or
/// why it is not known.
pub(crate) fn termination_outcome(
    ending: &Ending,
    via_gateway: Option<&GatewayClient>,
    outcome: &Result<Outcome, String>,
) -> TerminationOutcome {
    match outcome {
        Ok(Outcome::Ended { at, confirmed_at }) => TerminationOutcome::Ended(SessionEnded {
            at: *at,
            exit_confirmed_at: *confirmed_at,
            lateness_ms: at.duration_since(ending.deadline).as_secs_f64() * 1e3,
            gateway_client: via_gateway
                .map(|c| std::net::SocketAddr::new(c.addr, c.port).to_string()),
            gateway_id: via_gateway.map(|c| c.gateway.clone()),
        }),
        Ok(Outcome::NoLongerMatched { at }) => {
            TerminationOutcome::NoLongerMatched(TerminationSkip { at: *at })
        }
        Ok(Outcome::NotYetDue { at }) => TerminationOutcome::NotYetDue(TerminationSkip { at: *at }),
        Ok(Outcome::Failed { reason, .. }) => TerminationOutcome::Failed(TerminationFailure {
            error: reason.clone(),
        }),
        Err(error) => TerminationOutcome::Failed(TerminationFailure {
            error: error.clone(),
        }),
    }
}
