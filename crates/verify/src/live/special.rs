//! The live tests of rules that are not waited out: a window rule at an edge a few seconds
//! ahead, and a session cap with one session more than it allows.

use std::time::{Duration, Instant};

use crate::{Canary, Method, RuleResult, Status};
use jiff::Timestamp;

use curfew_policy::Rule;

use super::canary::{
    Bench, Due, Fallback, create, find_record, find_record_of, format_secs, login, open, watch,
};
use super::target::{CanaryConnection, CanaryTarget};

/// Test window rule `index` live: a canary whose role name sets this rule's window to close
/// [`crate::EDGE_LEAD`] ahead (an override the agent's engine honours only to end such
/// a canary earlier), ended at that edge; the rule's own windows are evaluated alongside.
pub(super) async fn edge<T: CanaryTarget>(bench: &Bench<'_, T>, index: usize) -> RuleResult {
    let policy = bench.policy;
    let server_now = match bench.target.now().await {
        Ok(t) => t,
        Err(e) => {
            return Fallback::Fail(e).result(policy, index, Timestamp::now(), bench.token);
        }
    };
    // Whole seconds: the edge travels in the role name.
    let lead = crate::EDGE_LEAD.as_secs();
    let Ok(edge) = Timestamp::from_second(server_now.as_second() + lead + 1) else {
        return Fallback::Fail("the server's clock is out of range".to_owned()).result(
            policy,
            index,
            server_now,
            bench.token,
        );
    };
    let canary = match crate::edge_canary(policy, index, edge, bench.token) {
        Ok(c) => c,
        Err(why) => {
            return Fallback::Evaluate(format!("no canary can watch a window edge now: {why}"))
                .result(policy, index, server_now, bench.token);
        }
    };
    if let Some(why) = bench.target.cannot_make(&canary) {
        return RuleResult::not_tested(&policy.rules[index], why);
    }
    let mut result = match open(bench, index, &canary, Due::At(edge)).await {
        Ok(opened) => watch(bench, index, opened).await,
        Err(fallback) => return fallback.result(policy, index, Timestamp::now(), bench.token),
    };
    let probes = crate::evaluate_rule(policy, index, server_now, bench.token);
    if probes.iter().any(|p| !p.ok) {
        result.status = Status::Fail;
    }
    result.evidence = format!(
        "Its role name gave this rule's window an edge at {edge}, {}s after the server's clock read {} (an explicit override for verify's canaries, honoured by the agent's engine only to end such a canary earlier); the rule's own windows are evaluated below. {}",
        edge.duration_since(server_now).as_secs(),
        server_now
            .round(jiff::Unit::Millisecond)
            .unwrap_or(server_now),
        result.evidence
    );
    if let Some(lock) = lock_note(bench, index) {
        result.evidence.push(' ');
        result.evidence.push_str(&lock);
    }
    result.probes = probes;
    result.status_line = match result.status {
        Status::LivePass => format!(
            "LIVE PASS at a window edge set {lead}s ahead for a canary (the rule's own windows are evaluated, not waited)"
        ),
        _ => format!("FAIL: {}", first_failure(&result.evidence)),
    };
    result
}

/// For a `lock_logins` rule: what its window test does not show.
fn lock_note<T: CanaryTarget>(bench: &Bench<'_, T>, index: usize) -> Option<String> {
    bench.policy.rules[index].lock_logins.then(|| {
        "Its lock_logins (logins refused outside the windows) is not tested at the edge: the ledger mechanism it uses is tested by the login-lock test.".to_owned()
    })
}

/// The sentence of `evidence` that says what went wrong (the last one, where failures go).
fn first_failure(evidence: &str) -> &str {
    evidence
        .trim_end_matches('.')
        .rsplit(". ")
        .next()
        .unwrap_or(evidence)
}

/// Test session-cap rule `index` live: `cap` canary sessions, then one more; the agent must
/// end the newest and keep the others.
pub(super) async fn cap<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    index: usize,
    canary: &Canary,
    cap: u32,
) -> RuleResult {
    let policy = bench.policy;
    let rule = &policy.rules[index];
    let mut steps = Vec::new();
    let mut failures = Vec::new();
    let (sessions, ended_early) = match open_all(bench, index, canary, cap, &mut steps).await {
        Ok(s) => s,
        Err(fallback) => return fallback.result(policy, index, Timestamp::now(), bench.token),
    };
    if let Some(error) = ended_early {
        // The agent ended the newest before verify could read its pid: what remains to show
        // is that the older ones stay and that the record names a session of the canary.
        steps.push(format!(
            "The newest (session {} of the role) was ended while it was still logging in, before verify could read its pid: {error}.",
            cap + 1
        ));
        keep_and_record(
            bench,
            canary,
            &sessions,
            None,
            &rule.name,
            &mut steps,
            &mut failures,
        )
        .await;
        return finish(rule, cap, steps, failures);
    }
    let Some((newest, kept)) = sessions.split_last() else {
        return Fallback::Fail("no canary session was opened".to_owned()).result(
            policy,
            index,
            Timestamp::now(),
            bench.token,
        );
    };
    let started = Instant::now();
    let wait = super::canary::wait_for_edge(policy, Duration::ZERO);
    let mut gone = None;
    while started.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match bench.target.session_exists(newest).await {
            Ok(false) => {
                gone = Some(started.elapsed());
                break;
            }
            Ok(true) => {}
            Err(e) => {
                failures.push(format!("Watching the canary failed: {e}."));
                break;
            }
        }
    }
    match gone {
        Some(after) => steps.push(format!(
            "The newest ({}) was gone from {} {} after it logged in.",
            newest.numbered(),
            bench.target.session_list(),
            format_secs(after)
        )),
        None if failures.is_empty() => failures.push(format!(
            "The newest canary session ({}) still existed {} after it logged in: nothing ended it.",
            newest.numbered(),
            format_secs(wait)
        )),
        None => {}
    }
    if gone.is_some() {
        keep_and_record(
            bench,
            canary,
            kept,
            Some(newest),
            &rule.name,
            &mut steps,
            &mut failures,
        )
        .await;
    }
    finish(rule, cap, steps, failures)
}

/// After the newest is gone: the older sessions must still be there and usable two looks by
/// the agent later, the newest unusable, and the agent's record must name the rule.
async fn keep_and_record<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    canary: &Canary,
    kept: &[T::Session],
    newest: Option<&T::Session>,
    rule: &str,
    steps: &mut Vec<String>,
    failures: &mut Vec<String>,
) {
    let started = Instant::now();
    tokio::time::sleep(2 * bench.policy.agent.interval.to_std() + Duration::from_millis(500)).await;
    let mut alive = 0;
    for s in kept {
        match bench.target.session_exists(s).await {
            Ok(true) if s.run("SELECT 1").await.is_ok() => alive += 1,
            Ok(_) => failures.push(format!(
                "The older canary session {} was ended too, or could not be used: the cap ends only sessions beyond it.",
                s.numbered()
            )),
            Err(e) => failures.push(format!("Looking for {} failed: {e}.", s.numbered())),
        }
    }
    if alive == kept.len() {
        steps.push(format!(
            "The {alive} older session{} still there and usable {} later.",
            if alive == 1 { " was" } else { "s were" },
            format_secs(started.elapsed())
        ));
    }
    let found = match newest {
        Some(newest) => {
            match newest.run("SELECT 1").await {
                Err(error) => steps.push(format!(
                    "Using the newest then failed, as it should: {error}."
                )),
                Ok(()) => failures
                    .push("Using the newest canary session afterwards still worked.".to_owned()),
            }
            find_record(bench.audit_log, newest, rule).await
        }
        None => {
            let kept_pids: Vec<i64> = kept.iter().map(CanaryConnection::number).collect();
            let described = format!(
                "a session of role \"{}\" other than pids {kept_pids:?}",
                canary.role
            );
            find_record_of(
                bench.audit_log,
                |s| s.role == canary.role && !kept_pids.contains(&s.pid),
                &described,
                rule,
            )
            .await
        }
    };
    match found {
        Ok(found) => steps.push(found),
        Err(missing) => failures.push(missing),
    }
}

fn finish(rule: &Rule, cap: u32, mut steps: Vec<String>, failures: Vec<String>) -> RuleResult {
    let status = if failures.is_empty() {
        Status::LivePass
    } else {
        Status::Fail
    };
    steps.extend(failures);
    let mut result = RuleResult::new(rule, Method::Live, status, steps.join(" "));
    if status == Status::LivePass {
        result.status_line = format!(
            "LIVE PASS with {} canary sessions of one role: the newest ended, the {cap} older kept",
            cap + 1
        );
    }
    result
}

/// Create the cap canary and open `cap + 1` sessions, oldest first; check that the engine,
/// on the sessions as they really are, ends the newest by rule `index` and keeps the others.
async fn open_all<T: CanaryTarget>(
    bench: &Bench<'_, T>,
    index: usize,
    canary: &Canary,
    cap: u32,
    steps: &mut Vec<String>,
) -> Result<(Vec<T::Session>, Option<String>), Fallback> {
    let (password, step) = create(bench, &canary.role, &canary.groups).await?;
    steps.push(step);
    let mut sessions = Vec::new();
    for n in 0..=cap {
        let mut said = Vec::new();
        let opened = match login(bench, canary, &password, &mut said).await {
            Ok(session) => match session.run("SELECT 1").await {
                Ok(()) => Ok(session),
                Err(e) => Err(Fallback::Fail(e)),
            },
            Err(e) => Err(e),
        };
        let session = match opened {
            Ok(session) => session,
            // The one beyond the cap may be ended by the agent before its first query is
            // answered (the agent is quick, or this host slow): the older ones logged in the
            // same way, so this is the agent's doing, which its record must confirm.
            Err(Fallback::Fail(e)) if n == cap && cap > 0 => {
                return Ok((sessions, Some(e)));
            }
            Err(other) => return Err(other),
        };
        if sessions.is_empty() {
            steps.extend(said);
        }
        sessions.push(session);
    }
    steps.push(format!(
        "{} sessions of it logged in one after the other (pids {}), each ran SELECT 1 and went idle.",
        cap + 1,
        sessions
            .iter()
            .map(|s| s.number().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let server_now = bench.target.now().await?;
    let seen: Vec<curfew_policy::Session> = sessions
        .iter()
        .map(|s| {
            let mut seen = crate::sample_session(canary, server_now);
            s.place(&mut seen);
            seen
        })
        .collect();
    crate::expect_cap(bench.policy, index, &seen, server_now).map_err(|what| {
        Fallback::Evaluate(format!(
            "from this host the canary sessions would not test the cap: {what}"
        ))
    })?;
    Ok((sessions, None))
}
