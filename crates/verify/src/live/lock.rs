//! The live test of login locks: a canary role locked the way `curfew lock` does it (an
//! incident lock in the ledger, applied by the leading agent), a login attempt refused, the
//! lock released, a login that works again.

use std::time::{Duration, Instant};

use crate::{Activity, Canary, Method, RuleResult, Status};

use super::canary::{Bench, Fallback, create, format_secs, lock, login};
use super::target::{CanaryConnection, CanaryTarget, LockState};

/// What the test is called in results (it tests a mechanism, not one rule).
pub(super) const SUBJECT: &str = "login locks (curfew lock)";

/// How long the incident lock lasts at most: it lifts itself even if verify is killed.
const LOCK_EXPIRY: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

/// Run the login-lock test on the target.
pub(super) async fn test<T: CanaryTarget>(bench: &Bench<'_, T>, target: &str) -> RuleResult {
    let lock_rules = crate::lock_rules(bench.policy);
    let about = |status, evidence: String| {
        RuleResult::about(SUBJECT, "login_lock", Method::Live, status, evidence)
    };
    // Without the ledger no login lock works: a failure when the policy relies on one.
    let problem = bench.target.lock_problem(target).await;
    if let Some(problem) = problem {
        return if lock_rules.is_empty() {
            let mut r = about(Status::NotTested, format!("Not tested: {problem}."));
            r.method = Method::NotTested;
            r
        } else {
            about(
                Status::Fail,
                format!(
                    "The policy locks logins (rule{} {}), but they cannot be locked here: {problem}.",
                    if lock_rules.len() == 1 { "" } else { "s" },
                    lock_rules
                        .iter()
                        .map(|r| format!("\"{r}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        };
    }
    let mut steps = Vec::new();
    match run(bench, &mut steps).await {
        Ok(()) => {
            let mut r = about(Status::LivePass, steps.join(" "));
            r.status_line = "LIVE PASS: a canary role locked through the ledger could not log in, and could again once unlocked".to_owned();
            if !lock_rules.is_empty() {
                r.evidence.push_str(&format!(
                    " The policy's lock_logins rules ({}) go through the same ledger and agent; when each locks is evaluated with its windows.",
                    lock_rules.join(", ")
                ));
            }
            r
        }
        Err(Fallback::Fail(why) | Fallback::Evaluate(why)) => {
            steps.push(why);
            about(Status::Fail, steps.join(" "))
        }
    }
}

async fn run<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    steps: &mut Vec<String>,
) -> Result<(), Fallback> {
    let target = bench.target;
    let canary = Canary {
        role: crate::lock_canary_role(bench.token),
        groups: Vec::new(),
        database: None,
        application: "curfew-verify".to_owned(),
        client_addr: None,
        activity: Activity::Idle,
    };
    let (password, step) = create(bench, &canary.role, &[]).await?;
    steps.push(step);
    let session = login(bench, &canary, &password, steps).await?;
    session.run("SELECT 1").await.map_err(|e| e.to_string())?;
    let by = format!("curfew verify (as {})", target.operator());
    let until = target.now().await? + LOCK_EXPIRY;
    let (role, lock_id) = target
        .lock_role(&canary.role, "curfew verify: login-lock test", &by, until)
        .await?;
    lock(bench.locked).push(role);
    steps.push(format!(
        "Locked it as `curfew lock` does: incident lock {} in the ledger (expiring by itself at {}).",
        lock_id,
        until.round(jiff::Unit::Second).unwrap_or(until)
    ));
    let wait = super::canary::wait_for_edge(bench.policy, Duration::ZERO);
    let applied = progress(target, role, lock_id, wait, |p| {
        p.announced && !p.can_login && p.sessions == 0
    })
    .await?;
    let applied = applied.map_err(|(p, after)| {
        format!(
            "The agent did not apply the lock within {} (login {}, {} session{} open).",
            format_secs(after),
            if p.can_login {
                "still enabled"
            } else {
                "disabled"
            },
            p.sessions,
            if p.sessions == 1 { "" } else { "s" }
        )
    })?;
    steps.push(format!(
        "The agent applied it within {}: login disabled, and its open session ({}) ended.",
        format_secs(applied),
        session.numbered()
    ));
    drop(session);
    let mut refused = Vec::new();
    match login(bench, &canary, &password, &mut refused).await {
        Ok(_) => {
            return Err(Fallback::Fail(
                "A login as the locked role still worked.".to_owned(),
            ));
        }
        Err(Fallback::Fail(why) | Fallback::Evaluate(why))
            if why.contains(target.locked_login_refusal()) =>
        {
            steps.push(format!(
                "A new login as it was refused: \"{}\".",
                target.locked_login_refusal()
            ));
        }
        Err(Fallback::Fail(why) | Fallback::Evaluate(why)) => {
            return Err(Fallback::Fail(format!(
                "A new login as the locked role failed, but not because of the lock: {why}"
            )));
        }
    }
    target
        .unlock_role(role, &by)
        .await
        .map_err(|e| format!("The lock could not be released: {e}."))?;
    lock(bench.locked).retain(|o| *o != role);
    let restored = progress(target, role, lock_id, wait, |p| p.announced && p.can_login)
        .await?
        .map_err(|(_, after)| {
            format!(
                "Released in the ledger, but the agent did not restore the login within {}.",
                format_secs(after)
            )
        })?;
    steps.push(format!(
        "Released the lock; the agent restored the login within {}.",
        format_secs(restored)
    ));
    let mut said = Vec::new();
    let again = login(bench, &canary, &password, &mut said)
        .await
        .map_err(|f| match f {
            Fallback::Fail(why) | Fallback::Evaluate(why) => {
                format!("Logging in after the unlock failed: {why}")
            }
        })?;
    again
        .run("SELECT 1")
        .await
        .map_err(|e| format!("The session after the unlock could not be used: {e}."))?;
    steps.push(format!(
        "A new login then worked ({}) and ran SELECT 1.",
        again.numbered()
    ));
    Ok(())
}

/// Poll the lock's progress until `done`, up to `limit`: how long it took, or where it stood.
async fn progress<T: CanaryTarget>(
    target: &T,
    role: T::LockedRole,
    lock_id: i64,
    limit: Duration,
    done: impl Fn(&LockState) -> bool,
) -> Result<Result<Duration, (LockState, Duration)>, Fallback> {
    let started = Instant::now();
    loop {
        let p = target.lock_state(role, lock_id).await?;
        if done(&p) {
            return Ok(Ok(started.elapsed()));
        }
        if started.elapsed() >= limit {
            return Ok(Err((p, started.elapsed())));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
