//! Checking a rule by evaluation: the engine's verdict on a synthetic session in the rule's
//! scope, just before and just after its limit, each window boundary, or its session cap —
//! what `curfew plan --at` would show at those instants.

use curfew_policy::{Condition, Policy, Session, Verdict};
use jiff::{SignedDuration, Timestamp};

use crate::canary::{Activity, Canary, describe, fill, sample_address, sample_session};

/// One verdict the engine was asked for, and whether it is the expected one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    /// The instant or situation, in words ("idle 14m59s", "Mon 2026-11-23 19:00:01 EST").
    pub at: String,
    /// What the rule must do then: "ended" or "kept".
    pub expected: &'static str,
    /// What the engine said.
    pub verdict: String,
    /// Whether that is what was expected.
    pub ok: bool,
}

/// Evaluate rule `index` on its own (other rules could end the sample first and hide it), with
/// the policy's exemptions and the rule's own limit (not `[verify] test_limit`), around `now`. Empty for rules the agent does not evaluate.
pub fn evaluate_rule(policy: &Policy, index: usize, now: Timestamp, token: &str) -> Vec<Probe> {
    let rule = &policy.rules[index];
    // The rule's own limits: the canaries' test limit does not apply to what is evaluated.
    let alone = Policy {
        rules: vec![rule.clone()],
        verify: curfew_policy::VerifySettings::default(),
        ..policy.clone()
    };
    let canary = sample(policy, index, token);
    match &rule.condition {
        Condition::Idle(limit)
        | Condition::IdleInTransaction(limit)
        | Condition::Lifetime(limit) => {
            let limit = limit.get();
            let margin = SignedDuration::from_secs(1).min(limit / 2);
            let session = sample_session(&canary, now);
            let what = match canary.activity {
                Activity::Idle => "idle",
                Activity::IdleInTransaction => "idle in transaction",
                Activity::Busy => "connected",
            };
            [(limit - margin, false), (limit + margin, true)]
                .into_iter()
                .map(|(age, ends)| {
                    let at = format!("{what} {}", curfew_policy::format_age(age));
                    probe(&alone, &session, now + age, at, ends)
                })
                .collect()
        }
        Condition::Allow(schedule) | Condition::Deny(schedule) => {
            let allow = matches!(rule.condition, Condition::Allow(_));
            let mut instants = vec![now];
            let mut from = now;
            for _ in 0..2 {
                let Some(boundary) = schedule.state_at(from).until else {
                    break;
                };
                instants.push(boundary - SignedDuration::from_secs(1));
                instants.push(boundary + SignedDuration::from_secs(1));
                from = boundary;
            }
            instants
                .into_iter()
                .map(|t| {
                    let session = sample_session(&canary, t - SignedDuration::from_secs(1));
                    let ends = schedule.inside(t) != allow;
                    let at = t
                        .to_zoned(schedule.zone().clone())
                        .strftime("%a %Y-%m-%d %H:%M:%S %Z")
                        .to_string();
                    probe(&alone, &session, t, at, ends)
                })
                .collect()
        }
        Condition::MaxSessions(cap) => {
            let count = cap.saturating_add(1);
            let sessions: Vec<Session> = (1..=count)
                .map(|i| {
                    let mut s = sample_session(
                        &canary,
                        now - SignedDuration::from_secs(i64::from(count - i) + 1),
                    );
                    s.pid = i64::from(i);
                    s
                })
                .collect();
            let verdicts = curfew_policy::assess(&alone, &sessions, now);
            let newest = verdicts.len().saturating_sub(1);
            verdicts
                .iter()
                .enumerate()
                .filter(|(i, _)| *i + 2 >= verdicts.len())
                .map(|(i, verdict)| {
                    let ends = i == newest;
                    let at = format!("session {} of {count} of one role, oldest first", i + 1);
                    judged(&alone, verdict, at, ends)
                })
                .collect()
        }
        Condition::Violations(_) => Vec::new(),
    }
}

fn probe(policy: &Policy, session: &Session, at: Timestamp, label: String, ends: bool) -> Probe {
    let verdict = curfew_policy::assess(policy, std::slice::from_ref(session), at)
        .pop()
        .unwrap_or(Verdict::Untouched);
    judged(policy, &verdict, label, ends)
}

fn judged(policy: &Policy, verdict: &Verdict, at: String, ends: bool) -> Probe {
    let ended = matches!(verdict, Verdict::Ends(_));
    Probe {
        at,
        expected: if ends { "ended" } else { "kept" },
        verdict: describe(policy, verdict),
        ok: ended == ends,
    }
}

/// A session in the rule's scope for evaluation: like a canary, but exact names will do (it is
/// never created).
fn sample(policy: &Policy, index: usize, token: &str) -> Canary {
    let rule = &policy.rules[index];
    let scope = &rule.scope;
    let fill = |g: &curfew_policy::Glob| fill(g, token);
    let role = scope
        .roles
        .first()
        .map_or_else(|| format!("{}{token}", curfew_policy::CANARY_MARK), fill);
    let groups = match scope.member_of.first() {
        Some(_) if scope.member_of.iter().any(|g| g.matches(&role)) => Vec::new(),
        Some(g) => vec![fill(g)],
        None => Vec::new(),
    };
    Canary {
        role,
        groups,
        database: scope.databases.first().map(fill),
        application: scope
            .applications
            .first()
            .map_or_else(|| "curfew-verify".to_owned(), fill),
        client_addr: sample_address(scope, &policy.exempt),
        activity: Activity::for_condition(&rule.condition),
    }
}
