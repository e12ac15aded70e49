//! Who may lead a target, and what happens to a session that takes curfew's leader lock
//! without being curfew. The lock is an advisory lock, which any role may take: a holder of a
//! role other than curfew's is a squatter, ended (with a record) so that a curfew agent can lead.
//! A holder of curfew's own role is a replica; it is trusted to lead only while it announces
//! that it enforces this very policy, and otherwise the target is reported as not enforced.

use std::time::Duration;

use curfew_audit::details::SquatEnding;
use curfew_audit::{Intent, SquatOutcome, SquatterEnding};
use curfew_backend::{
    Announcement, Backend, BackendError, EndRequest, LockHolder, Outcome, SessionKey, Signal,
};
use jiff::Timestamp;
use tokio::time::Instant;

use crate::records::{complete_all, intend_all};
use crate::shared::Shared;

/// The rule name in the records of ending a squatter.
pub(crate) const SQUAT_RULE: &str = "leader-lock";

/// Whether the replica holding the lock enforces `sha256`: `Err` says why not, for the
/// operator (a dry run, another policy, or no announcement at all).
pub(crate) fn judge_leader(holder: &LockHolder, sha256: &str) -> Result<(), String> {
    let who = holder.describe();
    match holder.application.as_deref().and_then(Announcement::parse) {
        Some(a) if a.dry_run => Err(format!(
            "the curfew agent leading it ({who}) runs a dry run: it ends nothing"
        )),
        Some(a) if !sha256.starts_with(&a.sha256_prefix) => Err(format!(
            "the curfew agent leading it ({who}) enforces another policy (sha256 {}), not this one (sha256 {})",
            a.sha256_prefix,
            sha256.get(..12).unwrap_or(sha256)
        )),
        Some(_) => Ok(()),
        None => Err(format!(
            "the session leading it ({who}) does not announce which policy it enforces (an older curfew, or a curfew command holding the lock)"
        )),
    }
}

/// End the sessions of other roles that hold the leader lock, each with an intent record
/// before and a `leader_squatted` record after. Returns how many were ended (and confirmed
/// gone). Nothing is done for a session whose intent could not be recorded.
pub(crate) async fn evict<B: Backend>(
    shared: &Shared,
    target: &str,
    lock: &mut B,
    squatters: &[LockHolder],
) -> Result<usize, BackendError> {
    let mut ended = 0;
    // Those waiting first: ending a holder first would hand the lock to the next in line.
    let mut squatters: Vec<&LockHolder> = squatters.iter().collect();
    squatters.sort_by_key(|s| s.granted);
    for squatter in squatters {
        let reason = format!(
            "{} {} curfew's leader lock, which only curfew's role \"{}\" may hold: while it did, no curfew agent could enforce the policy on this target",
            squatter.describe(),
            if squatter.granted {
                "held"
            } else {
                "waited for"
            },
            lock.own_role()
        );
        let Some(backend_start) = squatter.backend_start else {
            // Not a live client session (a prepared transaction, or one just gone): nothing to
            // end. The target is reported NOT ENFORCED by the caller meanwhile.
            tracing::error!(target: "curfew::agent", "target \"{target}\": {reason}; curfew cannot end it");
            continue;
        };
        tracing::warn!(target: "curfew::agent", "target \"{target}\": {reason}; ending it");
        let session = curfew_audit::SessionInfo {
            pid: squatter.pid,
            backend_start,
            role: squatter.role.clone().unwrap_or_default(),
            database: squatter.database.clone().unwrap_or_default(),
            client_addr: squatter.client_addr.clone(),
            application: squatter.application.clone().unwrap_or_default(),
            state: String::new(),
        };
        // A bare intent: no policy rule's deadline is involved.
        let intent = Intent::<SquatterEnding>::new(Timestamp::now(), target, None)
            .with_rule(SQUAT_RULE)
            .with_reason(reason.clone())
            .with_session(session);
        let Some(intent) = intend_all(shared, vec![intent])
            .await
            .ok()
            .and_then(|mut tokens| tokens.pop())
        else {
            continue; // nothing is done without a record
        };
        let guard = EndRequest::identity_only(SessionKey {
            pid: squatter.pid,
            backend_start,
        });
        // On an error the intent stays open (recorded as interrupted at the next start).
        let signal = lock.signal_all(&[intent.authorize(guard.clone())]).await?;
        let outcome = match signal.into_iter().next() {
            Some(Signal::Signalled { .. }) => {
                confirm_gone(lock, &guard, shared.options.terminate_wait).await?
            }
            Some(Signal::Settled(outcome)) => outcome,
            None => Outcome::Failed {
                reason: "no result for the session".to_owned(),
                code: None,
            },
        };
        let said = match &outcome {
            Outcome::Ended { .. } => {
                ended += 1;
                format!("{reason}; it was ended")
            }
            Outcome::NoLongerMatched { .. } => format!("{reason}; it had already gone"),
            Outcome::Failed { reason: why, .. } => {
                format!("{reason}; it could not be ended: {why}")
            }
            Outcome::NotYetDue { .. } => reason.clone(),
        };
        if let Outcome::Failed { reason: why, .. } = &outcome {
            tracing::error!(target: "curfew::agent", "target \"{target}\": could not end {}: {why}", squatter.describe());
        }
        let squatted = SquatOutcome {
            result: outcome.result().to_owned(),
            reason: said,
            detail: SquatEnding {
                lock_holder_pid: squatter.pid,
            },
        };
        let _ = complete_all(shared, vec![(intent, squatted)]).await;
    }
    Ok(ended)
}

/// Poll until the signalled session is gone, for at most `wait`.
async fn confirm_gone<B: Backend>(
    lock: &mut B,
    guard: &EndRequest,
    wait: Duration,
) -> Result<Outcome, BackendError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let gone = lock.exited(&[guard.session]).await?;
        if let Some(Some(at)) = gone.first() {
            return Ok(Outcome::Ended {
                at: *at,
                confirmed_at: *at,
            });
        }
        if started.elapsed() >= wait {
            return Ok(Outcome::Failed {
                reason: format!("signalled, but still there after {}s", wait.as_secs()),
                code: None,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(application: Option<String>) -> LockHolder {
        LockHolder {
            pid: 7,
            client_addr: None,
            backend_start: None,
            database: Some("postgres".to_owned()),
            application,
            role: Some("curfew_agent".to_owned()),
            own_role: true,
            granted: true,
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_a_replica_announcing_this_policy_enforces_it() {
        assert_eq!(
            judge_leader(&holder(Some(Announcement::text(false, SHA))), SHA),
            Ok(())
        );
        let dry = judge_leader(&holder(Some(Announcement::text(true, SHA))), SHA);
        assert!(dry.unwrap_err().contains("dry run"));
        let other = judge_leader(
            &holder(Some(Announcement::text(false, &"f".repeat(64)))),
            SHA,
        );
        assert!(other.unwrap_err().contains("another policy"));
        let silent = judge_leader(&holder(Some("psql".to_owned())), SHA);
        assert!(silent.unwrap_err().contains("does not announce"));
    }
}
