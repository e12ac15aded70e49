//! The gateway's login refusal under an incident lock, tested live: a canary role is locked
//! through the ledger as `curfew lock` records it, a login through the gateway must be refused
//! with FATAL 28000 naming the lock, then the lock is released (the role is dropped with the
//! other canaries). The refusal's text as the client received it is the evidence.

use std::time::Duration;

use curfew_postgres::{GatewaySession, LedgerProblem as _, Password, RunError};
use jiff::Timestamp;

use super::gateway_bench::{Bench, about, failed_about, run_error};
use crate::{Method, RuleResult, Status, received_text};

/// What the result is named, as the agent's login-lock test is.
pub(super) const SUBJECT: &str = "login locks (curfew lock) through the gateway";

/// How long the lock may outlive an interrupted run.
const LOCK_EXPIRY: Duration = Duration::from_secs(600);

/// The test; `target` names the target in a ledger problem's sentence.
pub(super) async fn test(bench: &Bench<'_>, target: &str, token: &str) -> RuleResult {
    let not_tested = |why: String| {
        RuleResult::about(
            SUBJECT,
            "login_lock",
            Method::NotTested,
            Status::NotTested,
            format!("Not tested through the gateway: {why}."),
        )
    };
    let operator = bench.admin.info.role.clone();
    match bench.admin.ledger_status().await {
        Ok(status) => {
            if let Some(why) = status.problem(target, &operator, true) {
                return not_tested(why);
            }
        }
        Err(e) => return not_tested(e.to_string()),
    }
    let fail = |why: String, steps: &[String]| failed_about(SUBJECT, "login_lock", why, steps);
    let role = format!("{}lock_{token}g", curfew_policy::CANARY_MARK);
    let groups: Vec<String> = bench.serves_members_of.iter().cloned().collect();
    let mut steps = Vec::new();
    let password = match Password::random() {
        Ok(p) => p,
        Err(e) => return fail(format!("No random password: {e}."), &steps),
    };
    let until = Timestamp::now() + LOCK_EXPIRY;
    if let Err(e) = bench
        .admin
        .create_canary(&role, &password, &groups, until)
        .await
    {
        return fail(
            format!("The canary role could not be created ({e})."),
            &steps,
        );
    }
    if let Ok(mut created) = bench.created.lock() {
        created.push(role.clone());
    }
    steps.push(format!(
        "Created role \"{role}\" (LOGIN, a SCRAM password)."
    ));
    let info = match bench
        .admin
        .roles()
        .await
        .map(|roles| roles.into_iter().find(|r| r.name == role))
    {
        Ok(Some(info)) => info,
        Ok(None) => return fail(format!("Role \"{role}\" is not in pg_roles."), &steps),
        Err(e) => return fail(e.to_string(), &steps),
    };
    if let Err(e) = bench
        .admin
        .create_incident_lock(
            &info,
            "curfew verify: the gateway's login refusal",
            &operator,
            Some(until),
        )
        .await
    {
        return fail(
            format!("The incident lock could not be recorded: {e}."),
            &steps,
        );
    }
    if let Ok(mut locked) = bench.locked.lock() {
        locked.push(info.oid);
    }
    steps.push(format!(
        "An incident lock on it was recorded in the ledger as `curfew lock` does (by {operator}, expiring in 10 minutes)."
    ));
    let refused = GatewaySession::open(
        bench.address,
        &role,
        &password,
        bench.database,
        "curfew-verify",
    )
    .await;
    // Released before judging, whatever the login did.
    let released = bench
        .admin
        .release_incident_lock(info.oid, "curfew verify (cleanup)")
        .await;
    let outcome = match refused {
        Err(RunError::Server(r)) if r.code == "28000" && r.message.contains("incident lock") => {
            steps.push(format!(
                "Its login through the gateway at {} was refused: the client received {}.",
                bench.address,
                received_text(&r)
            ));
            Ok(())
        }
        Err(e) => Err(format!(
            "The login through the gateway was refused, but not for the lock: {}.",
            run_error(&e)
        )),
        Ok(_) => {
            Err("The login through the gateway succeeded while the role was locked.".to_owned())
        }
    };
    if released.is_ok()
        && let Ok(mut locked) = bench.locked.lock()
    {
        locked.retain(|oid| *oid != info.oid);
    }
    match released {
        Ok(_) => steps.push("The lock was released.".to_owned()),
        Err(e) => {
            return fail(
                format!(
                    "The lock could not be released ({e}); it expires by itself within 10 minutes."
                ),
                &steps,
            );
        }
    }
    match outcome {
        Ok(()) => about(SUBJECT, "login_lock", Status::LivePass, &steps),
        Err(why) => fail(why, &steps),
    }
}
