//! Canaries for the rules that are not waited out: a window rule's edge, a session cap, and the
//! login lock.

use curfew_policy::{CANARY_EDGE_MARK, CANARY_MARK, Policy, Session, Verdict};
use jiff::{SignedDuration, Timestamp};

use crate::canary::{Activity, Canary, describe, expect_ended_by, in_scope, sample_session};

/// How far ahead verify sets a window canary's edge: time to create the role, log in and
/// settle, short enough to keep verify quick.
pub const EDGE_LEAD: SignedDuration = SignedDuration::from_secs(6);

/// The most sessions a session-cap test opens (a cap of 20 needs 21).
pub const MAX_CAP_SESSIONS: u32 = 21;

/// How long the sessions a cap keeps must stay untouched for the cap test (from their start).
pub const CAP_HORIZON: SignedDuration = SignedDuration::from_secs(40);

/// The canary that tests window rule `index` at `edge`: its role name carries the edge (see
/// [`curfew_policy::canary_edge`]), so the agent's engine must end its session at the edge,
/// by this rule. Made at `edge - EDGE_LEAD` or later; an error says why no edge can be watched
/// (the window is closed now, another rule ends it first, it is exempt, ...).
pub fn edge_canary(
    policy: &Policy,
    index: usize,
    edge: Timestamp,
    token: &str,
) -> Result<Canary, String> {
    let secs = edge.as_second();
    let mut canary = in_scope(
        policy,
        index,
        &format!("{index}_{token}_{CANARY_EDGE_MARK}{secs}"),
    )?;
    // A window rule ends a session in any state; an idle one risks no idle rule's end.
    canary.activity = Activity::Busy;
    let edge = Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    let start = edge - EDGE_LEAD;
    let session = sample_session(&canary, start);
    expect_edge(policy, index, &session, start, edge)?;
    Ok(canary)
}

/// Whether the engine, at `now`, keeps `session` until `edge` and then ends it by rule
/// `index`; if not, what it does instead.
pub fn expect_edge(
    policy: &Policy,
    index: usize,
    session: &Session,
    now: Timestamp,
    edge: Timestamp,
) -> Result<(), String> {
    // With the overrides the agent builds from canary role names (a window edge).
    let sessions = std::slice::from_ref(session);
    let overrides = curfew_policy::Overrides::canary_edges(policy, sessions);
    let verdict = curfew_policy::assess_with(policy, sessions, now, &overrides)
        .pop()
        .unwrap_or(Verdict::Untouched);
    match verdict {
        Verdict::Scheduled(d) if d.rule == index && d.deadline == edge => {}
        Verdict::Ends(d) if d.rule == index => {
            return Err(format!(
                "the rule's window is closed now ({}), so no window edge comes to be watched",
                d.reason(policy, now)
            ));
        }
        other => return Err(describe(policy, &other)),
    }
    expect_ended_by(
        policy,
        index,
        session,
        edge + SignedDuration::from_millis(1),
    )
}

/// The canary role whose `cap + 1` sessions test session-cap rule `index`, or why none can be
/// used: the engine, at `now` and up to [`CAP_HORIZON`] later, must keep the oldest `cap` and
/// end the newest by this rule.
pub fn cap_canary(
    policy: &Policy,
    index: usize,
    cap: u32,
    now: Timestamp,
    token: &str,
) -> Result<Canary, String> {
    let count = cap.saturating_add(1);
    if count > MAX_CAP_SESSIONS {
        return Err(format!(
            "a cap of {cap} would need {count} canary sessions; verify opens at most {MAX_CAP_SESSIONS}"
        ));
    }
    let mut canary = in_scope(policy, index, &format!("{index}_{token}"))?;
    canary.activity = Activity::Idle;
    let sessions = cap_sessions(&canary, count, now);
    expect_cap(policy, index, &sessions, now)?;
    Ok(canary)
}

/// `count` sessions of `canary`, oldest first, one second apart, the newest starting at `now`.
pub fn cap_sessions(canary: &Canary, count: u32, now: Timestamp) -> Vec<Session> {
    (1..=count)
        .map(|i| {
            let mut s = sample_session(
                canary,
                now - SignedDuration::from_secs(i64::from(count - i)),
            );
            s.pid = i64::from(i);
            s
        })
        .collect()
}

/// Whether the engine keeps all of `sessions` but the newest through [`CAP_HORIZON`] after
/// `now`, and ends the newest by rule `index`; if not, what it does instead.
pub fn expect_cap(
    policy: &Policy,
    index: usize,
    sessions: &[Session],
    now: Timestamp,
) -> Result<(), String> {
    for at in [now, now + CAP_HORIZON] {
        let verdicts = curfew_policy::assess(policy, sessions, at);
        let Some((newest, kept)) = verdicts.split_last() else {
            return Err("no sessions".to_owned());
        };
        match newest {
            Verdict::Ends(d) if d.rule == index => {}
            other => {
                return Err(format!(
                    "the newest canary session would be {}",
                    describe(policy, other)
                ));
            }
        }
        if let Some(v) = kept.iter().find(|v| matches!(v, Verdict::Ends(_))) {
            return Err(format!(
                "the canary sessions within the cap would not be kept for the test: one would be {}",
                describe(policy, v)
            ));
        }
    }
    Ok(())
}

/// The role the login-lock test creates, locks and unlocks. It names no rule, so no rule's
/// canary override reaches it.
pub fn lock_canary_role(token: &str) -> String {
    format!("{CANARY_MARK}lock_{token}")
}

/// The rules whose login locks go through the ledger the login-lock test exercises (enforcing
/// `lock_logins` rules).
pub fn lock_rules(policy: &Policy) -> Vec<&str> {
    policy
        .rules
        .iter()
        .filter(|r| r.lock_logins && r.action == curfew_policy::Action::Terminate)
        .map(|r| r.name.as_str())
        .collect()
}
