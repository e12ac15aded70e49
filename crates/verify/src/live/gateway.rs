//! The live test through the curfew gateway (issue 17): each planned rule gets a canary role
//! with a SCRAM password, which logs in through the gateway's listen address as a client would
//! and is left idle, or idle in a transaction, or made to raise the rule's errors; the result
//! is the FATAL (and any WARNING) the client received, judged by [`crate::judge_fatal`]. The
//! canary roles are dropped whatever happens; their passwords live only in this process.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use curfew_policy::{Gateway, Policy};
use curfew_postgres::{Connection, GatewaySession, Password, RunError};
use jiff::Timestamp;

use super::LiveError;
use super::gateway_bench::{Bench, failed, result, run_error};
use crate::gateway::{GATEWAY_ENDED, GatewayPlanned, received_text};
use crate::{Activity, Canary, Options, RuleResult, Status};

/// What was tested through the gateway, for one target.
#[derive(Debug, serde::Serialize)]
pub struct ThroughGateway {
    /// The enforcement point these results are for: `gateway`.
    pub enforcement_point: &'static str,
    /// The address the canaries connected to.
    pub address: String,
    /// How they connected.
    pub connection: &'static str,
    /// One result per rule that ends sessions.
    pub results: Vec<RuleResult>,
    /// Problems removing what verify created.
    pub cleanup: Vec<String>,
}

/// How the canaries connect to the gateway, as said in evidence.
const CONNECTION: &str = "plaintext TCP (verify's gateway canary does not use TLS yet)";

/// The gateway's results when the target could not be reached: every rule planned live FAILs
/// (no canary role could be made), the rest say why they are not tested.
pub(super) fn unreachable(
    policy: &Policy,
    gateway: &Gateway,
    options: Options,
    now: Timestamp,
    token: &str,
) -> ThroughGateway {
    let results = crate::plan_gateway(policy, gateway, options, now, token)
        .into_iter()
        .map(|(index, planned)| {
            let rule = &policy.rules[index];
            match planned {
                GatewayPlanned::NotTested { why } => RuleResult::not_tested(rule, &why),
                _ => failed(
                    rule,
                    "The target could not be reached, so no canary role could be created for the gateway's test.".to_owned(),
                    &[],
                ),
            }
        })
        .collect();
    ThroughGateway {
        enforcement_point: "gateway",
        address: crate::gateway_address(gateway).map_or_else(String::new, |a| a.to_string()),
        connection: CONNECTION,
        results,
        cleanup: Vec::new(),
    }
}

/// Test `policy`'s rules through `gateway` (a gateway in front of the target `admin` is
/// connected to, named `target`, whose database is `database`), and its refusal of a locked
/// role's login, until done or `stop`; the canary roles are dropped either way.
#[allow(clippy::too_many_arguments)] // each is one thing the caller decides
pub(super) async fn test(
    admin: &Connection,
    target: &str,
    policy: &Policy,
    gateway: &Gateway,
    database: &str,
    options: Options,
    now: Timestamp,
    token: &str,
    stop: impl Future<Output = ()>,
) -> Result<ThroughGateway, LiveError> {
    let Some(address) = crate::gateway_address(gateway) else {
        return Ok(ThroughGateway {
            enforcement_point: "gateway",
            address: String::new(),
            connection: CONNECTION,
            results: Vec::new(),
            cleanup: vec!["[gateway] has no listen address".to_owned()],
        });
    };
    let plans = crate::plan_gateway(policy, gateway, options, now, token);
    let created = Mutex::new(Vec::new());
    let locked = Mutex::new(Vec::new());
    let bench = Bench {
        admin,
        policy,
        address,
        database,
        created: &created,
        locked: &locked,
        serves_members_of: gateway.serve_members_of.clone(),
    };
    let tests = futures_util::future::join_all(plans.iter().map(|(index, planned)| {
        let bench = &bench;
        let rule = &policy.rules[*index];
        async move {
            match planned {
                GatewayPlanned::NotTested { why } => RuleResult::not_tested(rule, why),
                GatewayPlanned::Ended {
                    canary,
                    limit,
                    configured,
                    sqlstate,
                } => {
                    let mut r = ended(bench, rule, canary, *limit, sqlstate).await;
                    r.held_to_test_limit(*limit, *configured, options.max_wait);
                    r
                }
                GatewayPlanned::Violations {
                    canary,
                    count,
                    sqlstate,
                    per_role,
                } => violations(bench, rule, canary, *count, sqlstate, *per_role).await,
            }
        }
    }));
    // The lock test needs a login through the gateway, so not where it requires TLS.
    let lock_test = async {
        if gateway.require_tls || crate::gateway::off_loopback(gateway).is_some() {
            None
        } else {
            Some(super::gateway_lock::test(&bench, target, token).await)
        }
    };
    let results = tokio::select! {
        (mut results, lock) = futures_util::future::join(tests, lock_test) => {
            results.extend(lock);
            Some(results)
        }
        () = stop => None,
    };
    let mut cleanup = Vec::new();
    // A lock the lock test took and did not release (interrupted): released here.
    let oids = locked.lock().map(|l| l.clone()).unwrap_or_default();
    for oid in oids {
        if let Err(e) = admin
            .release_incident_lock(oid, "curfew verify (cleanup)")
            .await
        {
            cleanup.push(format!(
                "The canary's incident lock (role oid {oid}) could not be released ({e}); it expires by itself within 10 minutes."
            ));
        }
    }
    let roles = created.lock().map(|c| c.clone()).unwrap_or_default();
    for role in roles {
        if let Err(e) = admin.drop_canary(&role).await {
            cleanup.push(format!(
                "Canary role \"{role}\" could not be dropped ({e}); drop it by hand (it expires by itself)."
            ));
        }
    }
    let Some(results) = results else {
        return Err(LiveError::Interrupted);
    };
    Ok(ThroughGateway {
        enforcement_point: "gateway",
        address: address.to_string(),
        connection: CONNECTION,
        results,
        cleanup,
    })
}

/// Create `canary` and log it in through the gateway; the session, or why not (a sentence).
/// `connecting` is set to when the connection was started (a lifetime counts from there).
async fn login(
    bench: &Bench<'_>,
    canary: &Canary,
    wait: Duration,
    steps: &mut Vec<String>,
    connecting: &mut Instant,
) -> Result<GatewaySession, String> {
    let password = Password::random().map_err(|e| format!("No random password: {e}."))?;
    let expires = Timestamp::now() + wait + Duration::from_secs(300);
    bench
        .admin
        .create_canary(&canary.role, &password, &canary.groups, expires)
        .await
        .map_err(|e| {
            format!(
                "The canary role could not be created ({e}). curfew's role needs CREATEROLE{}.",
                if canary.groups.is_empty() {
                    String::new()
                } else {
                    format!(
                        " and, on PostgreSQL 16 and later, ADMIN OPTION on {}",
                        canary.groups.join(", ")
                    )
                }
            )
        })?;
    if let Ok(mut created) = bench.created.lock() {
        created.push(canary.role.clone());
    }
    steps.push(format!(
        "Created role \"{}\"{} (LOGIN, a SCRAM password, expiring {}).",
        canary.role,
        if canary.groups.is_empty() {
            String::new()
        } else {
            format!(", member of {}", canary.groups.join(", "))
        },
        expires.round(jiff::Unit::Second).unwrap_or(expires)
    ));
    steps.push(match &bench.serves_members_of {
        Some(group) => format!(
            "The gateway serves members of \"{group}\" ([gateway] serve_members_of), which the canary was made; it is not a superuser."
        ),
        None => "The gateway serves every role but superusers (no serve_members_of); the canary is not a superuser.".to_owned(),
    });
    let database = canary.database.as_deref().unwrap_or(bench.database);
    *connecting = Instant::now();
    let session = GatewaySession::open(
        bench.address,
        &canary.role,
        &password,
        database,
        &canary.application,
    )
    .await
    .map_err(|e| {
        format!(
            "It could not log in through the gateway at {} ({}): is `curfew gateway` running, and does it serve this role?",
            bench.address,
            run_error(&e)
        )
    })?;
    steps.push(format!(
        "It logged in through the gateway at {} ({CONNECTION}) to database \"{}\" as application \"{}\".",
        bench.address, database, canary.application
    ));
    Ok(session)
}

/// An idle-type rule: the canary waits, the gateway must end it with `sqlstate`.
async fn ended(
    bench: &Bench<'_>,
    rule: &curfew_policy::Rule,
    canary: &Canary,
    limit: curfew_policy::Limit,
    sqlstate: &str,
) -> RuleResult {
    let limit = limit.to_std();
    let wait = limit + 2 * bench.policy.agent.interval.to_std() + Duration::from_secs(10);
    let mut steps = Vec::new();
    // A lifetime counts from the login, the others from when the canary went idle.
    let lifetime = matches!(rule.condition, curfew_policy::Condition::Lifetime(_));
    let mut login_started = Instant::now();
    let mut session = match login(bench, canary, wait, &mut steps, &mut login_started).await {
        Ok(s) => s,
        Err(why) => return failed(rule, why, &steps),
    };
    // The server's own timeouts must not end it first (they use the same SQLSTATEs).
    let switch_off = "SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0";
    if let Err(e) = session.run(switch_off).await {
        return failed(
            rule,
            format!(
                "The canary could not set its own timeouts ({}).",
                run_error(&e)
            ),
            &steps,
        );
    }
    let statement = if canary.activity == Activity::IdleInTransaction {
        "BEGIN; SELECT 1"
    } else {
        "SELECT 1"
    };
    // Timed from just before the statement is sent: the gateway's idle clock starts at the
    // server's ReadyForQuery, which cannot come earlier, so an end sooner than the limit after
    // this instant is the gateway's early end and never this process being scheduled late
    // (CI: a loaded machine read the clock 0.3s after the answer and called a correct end early).
    let since = Instant::now();
    if let Err(e) = session.run(statement).await {
        return failed(
            rule,
            format!("`{statement}` failed ({}).", run_error(&e)),
            &steps,
        );
    }
    steps.push(format!(
        "It ran `{switch_off}`, then `{statement}`, and was left {} (limit {:.1}s).",
        match (&rule.condition, canary.activity) {
            (_, Activity::IdleInTransaction) => {
                "idle in a transaction (times below count from sending the statement)"
            }
            (curfew_policy::Condition::Lifetime(_), _) => {
                "idle (a lifetime rule ends it whatever it does; times below count from the login)"
            }
            _ => "idle (times below count from sending the statement)",
        },
        limit.as_secs_f64()
    ));
    let since = if lifetime { login_started } else { since };
    let end = session.ended(wait).await;
    let elapsed = since.elapsed();
    for (notice, at) in session.take_notices() {
        steps.push(format!(
            "Before that, after {:.1}s, it received {}.",
            at.saturating_duration_since(since).as_secs_f64(),
            received_text(&notice)
        ));
    }
    match crate::judge_fatal(rule, sqlstate, end.as_ref(), elapsed, limit) {
        Ok(seen) => {
            steps.push(seen);
            result(rule, Status::LivePass, &steps)
        }
        Err(why) => failed(rule, why, &steps),
    }
}

/// A violations rule: `count - 1` errors must bring the WARNING and leave the session usable,
/// the `count`th the FATAL 57P01.
async fn violations(
    bench: &Bench<'_>,
    rule: &curfew_policy::Rule,
    canary: &Canary,
    count: u32,
    sqlstate: &str,
    per_role: bool,
) -> RuleResult {
    let mut steps = Vec::new();
    let mut connecting = Instant::now();
    let mut session = match login(
        bench,
        canary,
        Duration::from_secs(60),
        &mut steps,
        &mut connecting,
    )
    .await
    {
        Ok(s) => s,
        Err(why) => return failed(rule, why, &steps),
    };
    if per_role {
        steps.push(
            "The rule counts a role's sessions together (per = \"role\"); the canary role is fresh, so the count is its own.".to_owned(),
        );
        if count == 1 {
            steps.push(
                "With a count of 1 there is no WARNING, so this test does not show the count across gateways.".to_owned(),
            );
        }
    }
    // A server ErrorResponse with the rule's SQLSTATE; nothing is really probed.
    let raise = format!(
        "DO $$BEGIN RAISE EXCEPTION 'curfew verify canary' USING ERRCODE = '{sqlstate}'; END$$"
    );
    let since = Instant::now();
    for n in 1..=count {
        match session.run(&raise).await {
            Err(RunError::Server(r)) if r.code == sqlstate => {}
            Err(e) => {
                return failed(
                    rule,
                    format!(
                        "Error {n} of {count}: `{raise}` answered {}, not {sqlstate}.",
                        run_error(&e)
                    ),
                    &steps,
                );
            }
            Ok(()) => {
                return failed(rule, format!("`{raise}` did not fail."), &steps);
            }
        }
        if n + 1 == count {
            // The gateway warns one error before the count, right after that error.
            let warned_by = Instant::now() + Duration::from_secs(3);
            let mut warning = None;
            while warning.is_none() && Instant::now() < warned_by {
                warning = session
                    .take_notices()
                    .into_iter()
                    .find(|(r, _)| r.severity == "WARNING");
                if warning.is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let Some((warning, at)) = warning else {
                return failed(
                    rule,
                    format!(
                        "After {n} errors {sqlstate} (one before the count) no WARNING came within 3s."
                    ),
                    &steps,
                );
            };
            steps.push(format!(
                "It ran `{raise}` {n} times (each answered ERROR {sqlstate}); after {:.1}s it received {}.",
                at.saturating_duration_since(since).as_secs_f64(),
                received_text(&warning)
            ));
            if !warning.message.contains(&format!("(rule {})", rule.name)) {
                return failed(
                    rule,
                    format!("The WARNING does not name the rule ({}).", rule.name),
                    &steps,
                );
            }
            // The gateway's own count decides when the database's cannot (and says nothing
            // of "every gateway"): then the count across gateways is not working.
            if per_role {
                if !warning.message.contains("on every gateway") {
                    return failed(
                        rule,
                        "The WARNING came from the gateway's own count, not the count across gateways (curfew.count_gateway_violation did not answer: see the gateway's log, gateway_violation_count_fallback; run curfew init).".to_owned(),
                        &steps,
                    );
                }
                steps.push(
                    "The WARNING's count is the database's, across every gateway (curfew.count_gateway_violation answered)."
                        .to_owned(),
                );
            }
            if let Err(e) = session.run("SELECT 1").await {
                return failed(
                    rule,
                    format!(
                        "After {n} errors (one fewer than the count) the session was not usable: `SELECT 1` answered {}.",
                        run_error(&e)
                    ),
                    &steps,
                );
            }
            steps.push(
                "`SELECT 1` still worked: fewer errors than the count do not end the session."
                    .to_owned(),
            );
        }
    }
    steps.push(format!("Error {count} (the count) was raised."));
    let end = session.ended(Duration::from_secs(10)).await;
    match crate::judge_fatal(
        rule,
        GATEWAY_ENDED,
        end.as_ref(),
        since.elapsed(),
        Duration::ZERO,
    ) {
        Ok(seen) => {
            steps.push(seen);
            result(rule, Status::LivePass, &steps)
        }
        Err(why) => failed(rule, why, &steps),
    }
}
