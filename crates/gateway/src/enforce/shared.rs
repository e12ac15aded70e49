//! The shared count of a `per = "role"` violations rule: each counted error is asked of the
//! database (every gateway's count) in a task of its own, and the answer is polled with the
//! session's other events; this gateway's own count stands in when the database fails.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use curfew_policy::Action;

use super::Enforcer;
use crate::error::Fatal;
use crate::registry::{RegistrationError, SharedViolation, gateway_id};
use crate::violations::{Judged, SharedCount, shared_verdict};

/// Whose count ended a session for a `per = "role"` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CountedBy {
    /// The database's, across every gateway.
    Shared,
    /// This gateway's own: the shared count failed or was not asked (why).
    ThisGateway(String),
    /// This gateway's own count reached the rule's count first (every gateway's can only be
    /// higher): the session ended without waiting for the database.
    ThisGatewayFirst,
}

/// How many shared counts one session may have in flight: beyond, its own count decides.
const SESSION_COUNTS_IN_FLIGHT: usize = 4;

/// A shared count asked of the database, not answered yet.
pub(super) struct PendingCount {
    pub(super) rule: String,
    pub(super) answer: oneshot::Receiver<Result<Option<Vec<String>>, RegistrationError>>,
    /// This gateway's verdict for the rule, if the database cannot answer.
    pub(super) fallback: Judged,
}

impl Enforcer<'_> {
    /// Asks the database for the role's count of `count.rule`, in a task of its own: the
    /// relay never waits for it, the answer is polled with the session's other events. When
    /// this session or this gateway already has as many counts in flight as it may, this
    /// gateway's own verdict decides at once (the FATAL, if it ends the session).
    pub(super) fn ask_shared_count(&mut self, count: SharedCount) -> Option<Fatal> {
        let source = self.shared_counts.clone()?;
        let permit = if self.pending.len() < SESSION_COUNTS_IN_FLIGHT {
            self.violations.count_permit()
        } else {
            None
        };
        let Some(permit) = permit else {
            let why = "too many shared counts in flight (a flood of errors): not asked".to_owned();
            return self.fell_back(&count.rule, count.fallback, why);
        };
        let (tell, answer) = oneshot::channel();
        let violation = SharedViolation {
            role: self.identity.role.to_string(),
            rule: count.rule.clone(),
            sqlstate: count.code,
            within_seconds: count.within_seconds,
            gateway_id: gateway_id().to_owned(),
        };
        tokio::spawn(async move {
            let Some(registry) = source.registry() else {
                return;
            };
            // As long as the registry's other calls may take: a slow answer only delays a
            // verdict this gateway's own count (never above every gateway's) cannot reach by
            // itself; the relay never waits for it.
            let within = registry.call_timeout();
            let call = registry.count_violation(&violation);
            tokio::pin!(call);
            tokio::select! {
                answer = &mut call => {
                    drop(permit);
                    let _ = tell.send(answer);
                }
                () = tokio::time::sleep(within) => {
                    let _ = tell.send(Err(RegistrationError::Failed(format!(
                        "no answer within {within:?}"
                    ))));
                    // The call is on the wire and runs anyway: it holds its place among the
                    // gateway's calls in flight until the server has answered it, so a flood
                    // cannot pile calls on the auth connection behind a slow one.
                    let _ = call.await;
                    drop(permit);
                }
            }
        });
        self.pending.push(PendingCount {
            rule: count.rule,
            answer,
            fallback: count.fallback,
        });
        None
    }

    /// This gateway's own verdict decides for `rule` because the shared count did not (why):
    /// metered; logged once per session (a flood would otherwise flood the log too).
    fn fell_back(&mut self, rule: &str, fallback: Judged, error: String) -> Option<Fatal> {
        self.metrics.violation_count_fell_back(rule);
        if !self.fallback_logged {
            self.fallback_logged = true;
            tracing::warn!(
                event = "gateway_violation_count_fallback",
                rule,
                role = %self.identity.role,
                process_id = self.identity.pid,
                %error,
                "the shared count of a per-role violations rule failed: this gateway's own count decides (it sees only this gateway's sessions); run curfew init for the gateway's target if the function is missing (further fallbacks in this session are counted in /metrics only)"
            );
        }
        self.act(fallback, Some(CountedBy::ThisGateway(error)))
    }

    /// The shared counts answered since the last poll, in the order asked: the FATAL when one
    /// reaches its rule's count. A count that failed falls back to this gateway's own verdict,
    /// logged and counted.
    pub(super) fn answered_counts(&mut self, cx: &mut Context<'_>) -> Option<Fatal> {
        let mut index = 0;
        while index < self.pending.len() {
            let Poll::Ready(answer) = Pin::new(&mut self.pending[index].answer).poll(cx) else {
                index += 1;
                continue;
            };
            let pending = self.pending.remove(index);
            let policy = self.policy.borrow().clone();
            // A reload took the rule (or every rule) away: nothing to decide for it.
            let still = policy.as_deref().is_some_and(|p| {
                p.rules
                    .iter()
                    .any(|r| r.id().as_str() == pending.rule && r.action == Action::Terminate)
            });
            if !still {
                continue;
            }
            let shared = match answer {
                Ok(Ok(Some(codes))) => policy
                    .as_deref()
                    .and_then(|p| shared_verdict(p, &pending.rule, codes))
                    .ok_or_else(|| "the database counted nothing for the role".to_owned()),
                Ok(Ok(None)) => Err("the registry cannot count".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                // The task ended without an answer (the runtime is shutting down).
                Err(_) => Err("the counting task ended without an answer".to_owned()),
            };
            let fatal = match shared {
                Ok(judged) => self.act(judged, Some(CountedBy::Shared)),
                Err(error) => self.fell_back(&pending.rule, pending.fallback, error),
            };
            if fatal.is_some() {
                self.pending.clear();
                return fatal;
            }
        }
        None
    }
}
