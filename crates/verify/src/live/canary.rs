//! One live control test: a canary session in a rule's scope, left to the agent, then used.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Activity, Canary, Method, RuleResult, Status};
use curfew_policy::{Limit, Policy};
use jiff::Timestamp;

use super::target::{CanaryConnection, CanaryTarget};

/// What a live test needs from its surroundings.
pub(super) struct Bench<'a, T: CanaryTarget> {
    /// The enforcement point under test (creates, drops and watches canaries).
    pub(super) target: &'a T,
    /// The policy under test.
    pub(super) policy: &'a Policy,
    /// The agent's audit log, where its record must appear.
    pub(super) audit_log: Option<&'a Path>,
    /// Canary roles created so far (dropped at the end, whatever happens).
    pub(super) created: &'a Mutex<Vec<String>>,
    /// Makes evaluation fallbacks' sample names unique to this run.
    pub(super) token: &'a str,
    /// `--max-wait`, for the hints of status lines.
    pub(super) max_wait: Limit,
    /// Roles verify has an incident lock on: released before the roles are dropped.
    pub(super) locked: &'a Mutex<Vec<T::LockedRole>>,
}

/// When the agent must end a canary session.
#[derive(Debug, Clone, Copy)]
pub(super) enum Due {
    /// Once it has waited this long (an idle-type rule).
    After(Limit),
    /// At this instant on the server's clock (a window edge), not before.
    At(Timestamp),
}

/// How long an audit record may take to appear after the session ended.
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// Run the live test of idle-type rule `index`; a canary that cannot be made or is not in scope
/// from this host falls back to evaluation, saying why.
pub(super) async fn test<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    index: usize,
    canary: &Canary,
    limit: Limit,
) -> RuleResult {
    let rule = &bench.policy.rules[index];
    match open(bench, index, canary, Due::After(limit)).await {
        Ok(opened) => {
            let mut result = watch(bench, index, opened).await;
            let own = rule.condition.limit().unwrap_or(limit);
            if limit < own {
                // The canary was held to the test limit: the rule's own limit is checked by
                // evaluation, in the same result.
                let probes =
                    crate::evaluate_rule(bench.policy, index, Timestamp::now(), bench.token);
                if probes.iter().any(|p| !p.ok) {
                    result.status = Status::Fail;
                }
                result.evidence = format!(
                    "The policy's [verify] test_limit ({limit}) stood in for the rule's {own} for this canary only (roles named *{}*); the {own} itself is checked by evaluation below. {}",
                    curfew_policy::CANARY_MARK,
                    result.evidence
                );
                result.probes = probes;
                result.held_to_test_limit(limit, own, bench.max_wait);
            }
            result
        }
        Err(fallback) => fallback.result(bench.policy, index, Timestamp::now(), bench.token),
    }
}

/// Why a rule is not tested live after all.
pub(super) enum Fallback {
    /// No canary session this rule ends can be had here (a standby; an address outside the
    /// scope, an exemption): the rule is checked by evaluation instead.
    Evaluate(String),
    /// The test could not be run (no agent, privileges, authentication): a failure to fix.
    Fail(String),
}

impl From<String> for Fallback {
    fn from(why: String) -> Self {
        Fallback::Fail(why)
    }
}

impl Fallback {
    /// The result of a mechanism's test (the login lock) that cannot run.
    pub(super) fn mechanism(&self, subject: &str) -> RuleResult {
        match self {
            Fallback::Evaluate(why) => RuleResult::about(
                subject,
                "login_lock",
                Method::NotTested,
                Status::NotTested,
                format!("Not tested: {why}."),
            ),
            Fallback::Fail(why) => RuleResult::about(
                subject,
                "login_lock",
                Method::Live,
                Status::Fail,
                why.clone(),
            ),
        }
    }

    /// The result of rule `index` (evaluated around `now`).
    pub(super) fn result(
        &self,
        policy: &Policy,
        index: usize,
        now: Timestamp,
        token: &str,
    ) -> RuleResult {
        match self {
            Fallback::Evaluate(why) => crate::by_evaluation(policy, index, why, now, token),
            Fallback::Fail(why) => RuleResult::new(
                &policy.rules[index],
                Method::Live,
                Status::Fail,
                why.clone(),
            ),
        }
    }
}

/// How long a canary is given to be ended: its limit, two agent intervals, and a margin.
pub(super) fn wait_for(policy: &Policy, limit: Limit) -> Duration {
    limit.to_std() + 2 * policy.agent.interval.to_std() + Duration::from_secs(10)
}

/// A canary session in its waiting state.
pub(super) struct Opened<S> {
    pub(super) session: S,
    busy: Option<tokio::task::JoinHandle<Result<(), String>>>,
    pub(super) steps: Vec<String>,
    waiting_since: Instant,
    /// How long after `waiting_since` it must be gone by, at the latest.
    wait: Duration,
    /// For a window edge: the edge, as an instant on this host's clock.
    edge: Option<Instant>,
}

/// Create the canary's role (recorded in `created` at once, so that it is dropped whatever
/// happens) with a random password; the step that says so, and the password.
pub(super) async fn create<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    role: &str,
    groups: &[String],
) -> Result<(T::Secret, String), Fallback> {
    let server_now = bench.target.now().await?;
    // Longer than any test: the longest wait verify allows, and an hour.
    let valid_until = server_now + jiff::SignedDuration::from_secs(3600) + bench.max_wait.get();
    let password = bench
        .target
        .create_canary(role, groups, valid_until)
        .await?;
    lock(bench.created).push(role.to_owned());
    let step = bench.target.created_step(role, groups, valid_until);
    Ok((password, step))
}

/// Log in as a canary role (created by [`create`]) and switch the database's own timeouts off
/// for the session, so that only curfew can end it; the steps, in words.
pub(super) async fn login<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    canary: &Canary,
    password: &T::Secret,
    steps: &mut Vec<String>,
) -> Result<T::Session, Fallback> {
    let (session, step) = bench.target.login(canary, password).await?;
    steps.push(step);
    let switch_off = bench.target.switch_off_own_limits(&session).await?;
    steps.push(format!(
        "It tried to switch the control off for itself: {switch_off}."
    ));
    Ok(session)
}

/// Create a canary, log in, put the session in its waiting state, and make sure that the engine
/// ends it by rule `index` when `due`, as the session really is.
pub(super) async fn open<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    index: usize,
    canary: &Canary,
    due: Due,
) -> Result<Opened<T::Session>, Fallback> {
    let (password, step) = create(bench, &canary.role, &canary.groups).await?;
    let mut steps = vec![step];
    let session = login(bench, canary, &password, &mut steps).await?;
    let wait_cap = bench.max_wait.to_std() + Duration::from_secs(60);
    let busy = match canary.activity {
        Activity::Idle => {
            session.run("SELECT 1").await.map_err(|e| e.to_string())?;
            steps.push("It ran SELECT 1 and went idle.".to_owned());
            None
        }
        Activity::IdleInTransaction => {
            let begin = bench.target.open_transaction();
            session.run(begin).await.map_err(|e| e.to_string())?;
            steps.push(format!(
                "It opened a transaction ({begin}) and left it idle."
            ));
            None
        }
        Activity::Busy => {
            steps.push(format!(
                "It started {} and kept running it.",
                bench.target.sleep_statement(wait_cap.as_secs())
            ));
            Some(session.sleep(wait_cap.as_secs_f64()))
        }
    };
    let waiting_since = Instant::now();
    // The server's clock once the canary waits: its idleness (or its statement) began just
    // before.
    let server_now = bench.target.now().await?;
    // The engine must name this rule for the session as it really is (its address, for one,
    // is only known now).
    let mut seen = crate::sample_session(canary, server_now);
    session.place(&mut seen);
    let (checked, wait, edge) = match due {
        Due::After(limit) => (
            crate::expect_ended_by(
                bench.policy,
                index,
                &seen,
                server_now + limit.get() + jiff::SignedDuration::from_millis(1),
            ),
            wait_for(bench.policy, limit),
            None,
        ),
        Due::At(edge) => {
            let ahead = Duration::try_from(edge.duration_since(server_now)).unwrap_or_default();
            (
                crate::expect_edge(bench.policy, index, &seen, server_now, edge),
                wait_for_edge(bench.policy, ahead),
                Some(waiting_since + ahead),
            )
        }
    };
    checked.map_err(|what| {
        Fallback::Evaluate(format!("from this host the canary session would be {what}"))
    })?;
    Ok(Opened {
        session,
        busy,
        steps,
        waiting_since,
        wait,
        edge,
    })
}

/// How long a window canary is given: to its edge, two agent intervals, and a generous margin
/// (a loaded host or server must not fail the test; only an end that does not come does).
pub(super) fn wait_for_edge(policy: &Policy, ahead: Duration) -> Duration {
    ahead + 2 * policy.agent.interval.to_std() + Duration::from_secs(15)
}

/// How early before its edge a window canary may be seen gone (the two clocks are read a few
/// milliseconds apart), and how late after it.
fn edge_tolerance(policy: &Policy) -> (Duration, Duration) {
    (
        Duration::from_millis(750),
        2 * policy.agent.interval.to_std() + Duration::from_secs(10),
    )
}

/// Wait for the agent to end the canary session, then use it, and find the agent's record.
pub(super) async fn watch<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    index: usize,
    opened: Opened<T::Session>,
) -> RuleResult {
    let rule = &bench.policy.rules[index];
    let Opened {
        session,
        busy,
        mut steps,
        waiting_since,
        wait,
        edge,
    } = opened;
    let mut failures = Vec::new();
    let mut gone_after = None;
    while waiting_since.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match bench.target.session_exists(&session).await {
            Ok(false) => {
                gone_after = Some(waiting_since.elapsed());
                break;
            }
            Ok(true) => {}
            Err(e) => {
                failures.push(format!("watching the canary failed: {e}"));
                break;
            }
        }
    }
    match (gone_after, edge) {
        (Some(after), None) => steps.push(format!(
            "Its session was gone from {} {} after it began to wait.",
            bench.target.session_list(),
            format_secs(after)
        )),
        (Some(after), Some(edge)) => {
            let gone = waiting_since + after;
            let (early, late) = edge_tolerance(bench.policy);
            let (word, by) = if gone >= edge {
                ("after", gone - edge)
            } else {
                ("before", edge - gone)
            };
            let text = format!(
                "Its session was gone from {} {} {word} the edge (seen within 0.2s).",
                bench.target.session_list(),
                format_secs(by)
            );
            if (gone < edge && by > early) || (gone >= edge && by > late) {
                failures.push(format!(
                    "{text} That is outside the tolerance ({} before, {} after the edge).",
                    format_secs(early),
                    format_secs(late)
                ));
            } else {
                steps.push(text);
            }
        }
        (None, _) if failures.is_empty() => failures.push(format!(
            "The canary session still existed {} after it began to wait (agent interval {}): nothing ended it.",
            format_secs(wait),
            bench.policy.agent.interval
        )),
        (None, _) => {}
    }
    let used = match busy {
        Some(statement) => match tokio::time::timeout(Duration::from_secs(10), statement).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the statement's task failed: {e}")),
            Err(_) => Ok(()),
        },
        None => session.run("SELECT 1").await,
    };
    match used {
        Err(error) => steps.push(format!("Using it then failed, as it should: {error}.")),
        Ok(()) => failures.push("Using the canary session afterwards still worked.".to_owned()),
    }
    if gone_after.is_some() {
        match find_record(bench.audit_log, &session, &rule.name).await {
            Ok(found) => steps.push(found),
            Err(missing) => failures.push(missing),
        }
    }
    drop(session);
    let status = if failures.is_empty() {
        Status::LivePass
    } else {
        Status::Fail
    };
    steps.extend(failures);
    RuleResult::new(rule, Method::Live, status, steps.join(" "))
}

/// The agent's record of the canary's end: a `session_terminated` naming this session.
pub(super) async fn find_record(
    log: Option<&Path>,
    session: &impl CanaryConnection,
    rule: &str,
) -> Result<String, String> {
    find_record_of(log, |s| session.is(s), &session.describe(), rule).await
}

/// The `session_terminated` record of the first session `matches` picks, as [`find_record`].
pub(super) async fn find_record_of(
    log: Option<&Path>,
    matches: impl Fn(&curfew_audit::SessionInfo) -> bool,
    described: &str,
    rule: &str,
) -> Result<String, String> {
    let Some(path) = log else {
        return Err("No audit log to look for the agent's record in: set audit_log in [agent] or pass --audit-log.".to_owned());
    };
    let started = Instant::now();
    loop {
        let entries = curfew_audit::read(path)
            .map_err(|e| format!("The audit log could not be read: {e}."))?;
        let record = entries.into_iter().flatten().find(|e| {
            e.event == curfew_audit::Event::SessionTerminated.as_str()
                && e.session.as_ref().is_some_and(&matches)
        });
        if let Some(record) = record {
            let named = record.rule.as_deref().unwrap_or("");
            let text = format!(
                "The audit log {} has its record: seq {}, session_terminated, rule \"{named}\", \"{}\" (hash {}).",
                path.display(),
                record.seq,
                record.reason.as_deref().unwrap_or(""),
                record.hash.get(..12).unwrap_or(&record.hash)
            );
            return if named == rule {
                Ok(text)
            } else {
                Err(format!("{text} It names another rule than \"{rule}\"."))
            };
        }
        if started.elapsed() > RECORD_WAIT {
            return Err(format!(
                "The audit log {} has no session_terminated record for {described}.",
                path.display(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(super) fn format_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub(super) fn lock<T>(created: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    created
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
