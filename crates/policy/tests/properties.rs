//! Properties of the engine over random policies, sessions and instants (across 2026, so DST
//! changes are crossed).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use curfew_policy::{
    BackendType, Cause, ClientAddr, Condition, Decision, Engine, Overrides, Plan, Policy, Session,
    SessionKey, SessionState, Verdict, assess_with, parse_policy,
};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const ROLES: [&str; 6] = [
    "kim",
    "lee",
    "appuser",
    "batch_runner",
    "postgres",
    "analyst_x",
];
const APPS: [&str; 4] = ["psql", "pg_dump", "batch-1", "orders-api"];
/// None is a socket; `name:` a TCP client the server showed by host name (no address).
const ADDRS: [Option<&str>; 6] = [
    None,
    Some("10.1.0.5"),
    Some("10.99.3.4"),
    Some("192.168.1.9"),
    Some("name:localhost"),
    Some("name:host.10.99.3.4.example"),
];

fn client_addr(text: Option<&str>) -> ClientAddr {
    match text {
        None => ClientAddr::Socket,
        Some(t) => match t.strip_prefix("name:") {
            Some(name) => ClientAddr::Unresolved(name.into()),
            None => ClientAddr::Ip(t.parse::<IpAddr>().unwrap()),
        },
    }
}
const ZONES: [&str; 3] = ["UTC", "America/New_York", "Europe/Berlin"];
const WEEKLY: [&str; 6] = [
    "Mon-Fri 07:00-19:00",
    "Sat 08:00-12:00",
    "daily 22:00-06:00",
    "weekends 00:00-24:00",
    "daily 01:30-02:30",
    "Sun 00:30-03:00",
];

/// Exemptions the generator may use, with an oracle written without the policy crate.
const EXEMPT_ROLES: [&str; 1] = ["postgres"];
fn exempt_by_oracle(s: &Session, exempt_apps: bool, exempt_addr: bool) -> bool {
    EXEMPT_ROLES.contains(&&*s.role)
        || (exempt_apps && s.application.starts_with("batch-"))
        || (exempt_addr
            && (s.client_addr == ClientAddr::Socket
                || s.client_addr
                    .ip()
                    .is_some_and(|a| a.to_string().starts_with("10.99."))))
}

#[derive(Debug, Clone)]
struct Case {
    policy_text: String,
    exempt_apps: bool,
    exempt_addr: bool,
    sessions: Vec<Session>,
    now: Timestamp,
}

fn rule_text() -> impl Strategy<Value = String> {
    let minutes = 1u32..180;
    let condition = prop_oneof![
        (minutes.clone(), prop::option::of(1u32..60)).prop_map(|(m, w)| {
            let warn = w
                .filter(|w| *w < m)
                .map(|w| format!("warn = \"{w}m\"\n"))
                .unwrap_or_default();
            format!("idle = \"{m}m\"\n{warn}")
        }),
        minutes
            .clone()
            .prop_map(|m| format!("idle_in_transaction = \"{m}m\"\n")),
        (1u32..72).prop_map(|h| format!("lifetime = \"{h}h\"\n")),
        (
            prop::sample::subsequence(WEEKLY.to_vec(), 1..3),
            prop::sample::select(ZONES.to_vec())
        )
            .prop_map(|(w, z)| format!("allow = {w:?}\ntimezone = \"{z}\"\n")),
        (
            prop::sample::subsequence(WEEKLY.to_vec(), 1..2),
            prop::sample::select(ZONES.to_vec())
        )
            .prop_map(|(w, z)| format!("deny = {w:?}\ntimezone = \"{z}\"\n")),
        (1u32..4).prop_map(|n| format!("max_sessions = {n}\n")),
    ];
    let scope = prop_oneof![
        Just(String::new()),
        prop::sample::subsequence(ROLES.to_vec(), 1..3).prop_map(|r| format!("roles = {r:?}\n")),
        Just("member_of = [\"humans\"]\n".to_owned()),
        Just("roles = [\"a*\"]\ndatabases = [\"app\"]\n".to_owned()),
        Just("addresses = [\"10.0.0.0/8\"]\n".to_owned()),
    ];
    let action = prop_oneof![4 => Just(""), 1 => Just("action = \"report\"\n")];
    (condition, scope, action).prop_map(|(c, s, a)| format!("{c}{s}{a}"))
}

fn session_strategy(now: Timestamp) -> impl Strategy<Value = Session> {
    (
        0usize..ROLES.len(),
        0usize..APPS.len(),
        0usize..ADDRS.len(),
        0i64..(48 * 3600),
        0.0f64..1.0,
        0usize..6,
        prop::bool::weighted(0.95),
        prop::bool::ANY,
        // Now and then a `curfew verify` canary of rule 0, 1 or 2, with a window edge in its
        // name within an hour of `now` (see `curfew_policy::canary_edge`).
        prop::option::weighted(0.15, (0usize..3, -3600i64..3600)),
    )
        .prop_map(move |(r, a, ad, age, idle_frac, st, client, db, canary)| {
            let canary = canary.map(|(rule, offset)| {
                format!(
                    "analyst_curfew_canary_{rule}_ab12_e{}",
                    (now + SignedDuration::from_secs(offset)).as_second()
                )
            });
            let role = canary.as_deref().unwrap_or(ROLES[r]);
            let backend_start = now - SignedDuration::from_secs(age + 1);
            let idle_for = (age as f64 * idle_frac) as i64;
            let state = [
                SessionState::Idle,
                SessionState::Active,
                SessionState::IdleInTransaction,
                SessionState::IdleInTransactionAborted,
                SessionState::Idle,
                SessionState::Unknown,
            ][st];
            let humans = matches!(role, "kim" | "lee" | "analyst_x");
            Session {
                pid: 0, // assigned uniquely below
                backend_start,
                xact_start: None,
                state,
                state_change: Some(now - SignedDuration::from_secs(idle_for)),
                role: role.into(),
                member_of: Arc::from(if humans {
                    vec!["humans".to_owned()]
                } else {
                    vec![]
                }),
                database: if db { "app" } else { "postgres" }.into(),
                client_addr: client_addr(ADDRS[ad]),
                application: APPS[a].into(),
                backend_type: if client {
                    BackendType::ClientBackend
                } else {
                    BackendType::Other("walsender".into())
                },
            }
        })
}

fn case() -> impl Strategy<Value = Case> {
    // Any second of 2026 (UTC): crosses both DST changes in New York and Berlin.
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    (
        0i64..365 * 86_400,
        prop::collection::vec(rule_text(), 0..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(move |(offset, rules, exempt_apps, exempt_addr)| {
            let now = start + SignedDuration::from_secs(offset);
            (
                Just(now),
                Just(rules),
                Just(exempt_apps),
                Just(exempt_addr),
                prop::collection::vec(session_strategy(now), 0..30),
            )
        })
        .prop_map(|(now, rules, exempt_apps, exempt_addr, mut sessions)| {
            for (i, s) in sessions.iter_mut().enumerate() {
                s.pid = 100 + i64::try_from(i).unwrap();
            }
            let mut text = format!("[exempt]\nroles = {EXEMPT_ROLES:?}\n");
            if exempt_apps {
                text.push_str("applications = [\"batch-*\"]\n");
            }
            if exempt_addr {
                text.push_str("addresses = [\"10.99.0.0/16\", \"local\"]\n");
            }
            for (i, r) in rules.iter().enumerate() {
                text.push_str(&format!("\n[[rule]]\nname = \"r{i}\"\n{r}"));
            }
            Case {
                policy_text: text,
                exempt_apps,
                exempt_addr,
                sessions,
                now,
            }
        })
}

fn parse(text: &str) -> Policy {
    parse_policy("gen.toml", text, jiff::tz::db())
        .unwrap_or_else(|e| panic!("generated policy did not parse: {e}\n{text}"))
        .policy
}

/// The plan the agent makes: with the window edges of the canaries among the sessions.
fn evaluate(policy: &Policy, sessions: &[Session], now: Timestamp) -> Plan {
    let overrides = Overrides::canary_edges(policy, sessions);
    Engine::new().evaluate_with(policy, sessions, now, SignedDuration::ZERO, &overrides)
}

/// The verdicts, with the same overrides.
fn assess(policy: &Policy, sessions: &[Session], now: Timestamp) -> Vec<Verdict> {
    assess_with(
        policy,
        sessions,
        now,
        &Overrides::canary_edges(policy, sessions),
    )
}

/// Everything the plan says, by session and rule, without reasons that quote `now`.
fn acts(plan: &Plan) -> BTreeSet<(&'static str, SessionKey, usize)> {
    let tag = |kind: &'static str, ds: &[Decision]| {
        ds.iter()
            .map(move |d| (kind, d.session, d.rule))
            .collect::<Vec<_>>()
    };
    tag("end", &plan.terminations)
        .into_iter()
        .chain(tag("report", &plan.reports))
        .chain(tag("warn", &plan.warnings))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn an_exempt_session_never_appears_in_a_plan(c in case()) {
        let policy = parse(&c.policy_text);
        let plan = evaluate(&policy, &c.sessions, c.now);
        for d in plan.terminations.iter().chain(&plan.reports).chain(&plan.warnings) {
            let s = c.sessions.iter().find(|s| s.key() == d.session).unwrap();
            prop_assert!(!exempt_by_oracle(s, c.exempt_apps, c.exempt_addr), "{s:?} is exempt");
            prop_assert_eq!(&s.backend_type, &BackendType::ClientBackend);
        }
        // ...and the engine exempts exactly the sessions the oracle does (a client shown by
        // host name meets no address exemption, `local` included).
        for (s, v) in c.sessions.iter().zip(assess(&policy, &c.sessions, c.now)) {
            if s.backend_type == BackendType::ClientBackend {
                let exempt = matches!(v, Verdict::Exempt { .. });
                prop_assert_eq!(exempt, exempt_by_oracle(s, c.exempt_apps, c.exempt_addr), "{:?}", s);
            }
        }
    }

    #[test]
    fn no_session_is_ended_before_its_deadline(c in case()) {
        let policy = parse(&c.policy_text);
        let plan = evaluate(&policy, &c.sessions, c.now);
        for d in &plan.terminations {
            let s = c.sessions.iter().find(|s| s.key() == d.session).unwrap();
            prop_assert!(d.deadline <= c.now);
            // Check the deadline against the session's own facts, not the engine's.
            let rule = &policy.rules[d.rule];
            match (&rule.condition, d.cause) {
                (Condition::Idle(limit), Cause::Idle { since, .. }) => {
                    prop_assert_eq!(s.state, SessionState::Idle);
                    prop_assert_eq!(Some(since), s.state_change);
                    prop_assert!(since + limit.get() <= c.now);
                }
                (Condition::IdleInTransaction(limit), Cause::IdleInTransaction { since, .. }) => {
                    prop_assert!(s.state.is_idle_in_transaction());
                    prop_assert!(since + limit.get() <= c.now);
                }
                (Condition::Lifetime(limit), Cause::Lifetime { .. }) => {
                    prop_assert!(s.backend_start + limit.get() <= c.now);
                }
                (Condition::Allow(schedule), Cause::OutsideWindows { .. }) => {
                    prop_assert!(!schedule.inside(c.now));
                }
                (Condition::Deny(schedule), Cause::InsideDenyWindow { .. }) => {
                    prop_assert!(schedule.inside(c.now));
                }
                // A verify canary's window edge (from its role name): never before the edge.
                (Condition::Allow(_) | Condition::Deny(_), Cause::CanaryEdge { edge }) => {
                    prop_assert!(edge <= c.now);
                    prop_assert!(s.role.contains(curfew_policy::CANARY_MARK));
                }
                (Condition::MaxSessions(limit), Cause::OverSessionLimit { rank, .. }) => {
                    prop_assert!(rank > *limit);
                    let same_role = c.sessions.iter().filter(|o| o.role == s.role).count();
                    prop_assert!(same_role > *limit as usize);
                }
                (condition, cause) => prop_assert!(false, "{condition:?} fired with {cause:?}"),
            }
        }
    }

    #[test]
    fn the_next_wake_is_never_later_than_the_earliest_future_deadline(c in case()) {
        let policy = parse(&c.policy_text);
        let plan = evaluate(&policy, &c.sessions, c.now);
        for v in assess(&policy, &c.sessions, c.now) {
            if let Verdict::Scheduled(d) = v {
                let wake = plan.next_wake;
                prop_assert!(wake.is_some_and(|w| w <= d.deadline), "wake {wake:?} after {d:?}");
            }
        }
        if let Some(wake) = plan.next_wake {
            prop_assert!(wake > c.now);
        }
    }

    #[test]
    fn nothing_changes_before_the_next_wake(c in case(), frac in 0.0f64..1.0) {
        let policy = parse(&c.policy_text);
        let plan = evaluate(&policy, &c.sessions, c.now);
        // Any instant strictly before the wake-up (or within a week, if there is none).
        let horizon = plan
            .next_wake
            .map_or(SignedDuration::from_hours(24 * 7), |w| w.duration_since(c.now));
        let step = SignedDuration::from_nanos((horizon.as_nanos() as f64 * frac) as i64);
        let later = (c.now + step).min(c.now + horizon - SignedDuration::from_nanos(1));
        let later_plan = evaluate(&policy, &c.sessions, later);
        prop_assert_eq!(acts(&plan), acts(&later_plan));
    }

    #[test]
    fn a_plan_does_not_depend_on_session_order(c in case(), seed in any::<u64>()) {
        let policy = parse(&c.policy_text);
        let plan = evaluate(&policy, &c.sessions, c.now);
        let mut shuffled = c.sessions.clone();
        // Fisher-Yates with a tiny LCG: deterministic per seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(plan, evaluate(&policy, &shuffled, c.now));
    }
}
