//! The per-session API and the batch engine agree, over random policies, sessions and instants
//! (across 2026, so DST changes are crossed). What is proved, precisely:
//!
//! 1. **Next event = batch end.** For every client session of a random set, with the
//!    overrides the agent builds (canary edges): unless the batch ends it by a session cap
//!    (caps rank a role's sessions against each other; the per-session API judges them at
//!    admission), the batch's terminating decision for it, now or at any later instant (an
//!    unbounded horizon), is exactly `next_event`'s decision (rule index, rule id, deadline,
//!    cause), or both are absent. The batch warns it now exactly when `next_event`'s `warn_at`
//!    has come and its end has not; a report-only rule due now is the same in both (for a session
//!    the batch does not end now: it reports only those).
//! 2. **Admit = ended at once.** For a login alone (no other live session of its role, no
//!    incident lock), under any policy (window rules with and without `lock_logins`, time
//!    limits, caps, report-only rules), `admit` refuses exactly when the batch engine, given
//!    that login as a session started at `now`, ends it at `now`; the refusal names the
//!    batch's rule (index and id) and cause. A report-only refusal matches the batch's report.
//!    When a window refusal gives a time to retry, the same rule does not refuse then.
//! 3. **Admit = the cap's ranking.** With older live sessions of the role (each in its own
//!    database, application and address, active) under caps of random scopes (databases,
//!    applications, addresses), an exemption by application and now and then a deny window on
//!    one database, `admit` given those sessions refuses exactly when the batch ends the new
//!    session, naming the same rule.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::net::IpAddr;

use curfew_policy::{
    Admission, BackendType, Cause, Decision, Engine, Login, Overrides, Plan, Policy, RoleSession,
    Session, SessionState, admit, next_event, next_report, parse_policy,
};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const ROLES: [&str; 5] = ["kim", "lee", "appuser", "postgres", "analyst_x"];
const APPS: [&str; 3] = ["psql", "batch-1", "orders-api"];
const ADDRS: [Option<&str>; 3] = [None, Some("10.1.0.5"), Some("192.168.1.9")];
const ZONES: [&str; 3] = ["UTC", "America/New_York", "Europe/Berlin"];
const WEEKLY: [&str; 6] = [
    "Mon-Fri 07:00-19:00",
    "Sat 08:00-12:00",
    "daily 22:00-06:00",
    "weekends 00:00-24:00",
    "daily 01:30-02:30",
    "Sun 00:30-03:00",
];

/// Far enough to list every future end (the batch's `upcoming`).
const FOREVER: SignedDuration = SignedDuration::from_hours(24 * 365 * 50);

fn rule_text() -> impl Strategy<Value = String> {
    let minutes = 1u32..180;
    let window_scope = prop_oneof![
        Just(String::new()),
        prop::sample::subsequence(ROLES.to_vec(), 1..3).prop_map(|r| format!("roles = {r:?}\n")),
        Just("member_of = [\"humans\"]\n".to_owned()),
    ];
    let any_scope = prop_oneof![
        Just(String::new()),
        prop::sample::subsequence(ROLES.to_vec(), 1..3).prop_map(|r| format!("roles = {r:?}\n")),
        Just("member_of = [\"humans\"]\n".to_owned()),
        Just("roles = [\"a*\"]\ndatabases = [\"app\"]\n".to_owned()),
        Just("addresses = [\"10.0.0.0/8\"]\n".to_owned()),
    ];
    let windows = (
        prop::sample::subsequence(WEEKLY.to_vec(), 1..3),
        prop::sample::select(ZONES.to_vec()),
        any::<bool>(),
        prop::option::of(1u32..60),
        window_scope,
    )
        .prop_map(|(w, z, deny, warn, scope)| {
            // `lock_logins` only with a role scope; `warn` as the generator likes.
            let lock = if scope.contains("databases") {
                ""
            } else {
                "lock_logins = true\n"
            };
            let warn = warn
                .map(|w| format!("warn = \"{w}m\"\n"))
                .unwrap_or_default();
            let key = if deny { "deny" } else { "allow" };
            format!("{key} = {w:?}\ntimezone = \"{z}\"\n{warn}{scope}")
                + if deny { "" } else { lock }
        });
    let timed = (
        prop_oneof![
            (minutes.clone(), prop::option::of(1u32..60)).prop_map(|(m, w)| {
                let warn = w
                    .filter(|w| *w < m)
                    .map(|w| format!("warn = \"{w}m\"\n"))
                    .unwrap_or_default();
                format!("idle = \"{m}m\"\n{warn}")
            }),
            minutes.prop_map(|m| format!("idle_in_transaction = \"{m}m\"\n")),
            (1u32..72).prop_map(|h| format!("lifetime = \"{h}h\"\n")),
            (1u32..4).prop_map(|n| format!("max_sessions = {n}\n")),
        ],
        any_scope,
    )
        .prop_map(|(c, s)| format!("{c}{s}"));
    let action = prop_oneof![4 => Just(""), 1 => Just("action = \"report\"\n")];
    (prop_oneof![windows, timed], action).prop_map(|(c, a)| format!("{c}{a}"))
}

fn policy_text() -> impl Strategy<Value = String> {
    (prop::collection::vec(rule_text(), 0..6), any::<bool>()).prop_map(|(rules, exempt_apps)| {
        let mut text = "[[exempt]]\nroles = [\"postgres\"]\n".to_owned();
        if exempt_apps {
            text.push_str("applications = [\"batch-*\"]\n");
        }
        for (i, r) in rules.iter().enumerate() {
            text.push_str(&format!("\n[[rule]]\nname = \"r{i}\"\n{r}"));
        }
        text
    })
}

fn instant() -> impl Strategy<Value = Timestamp> {
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    (0i64..365 * 86_400).prop_map(move |s| start + SignedDuration::from_secs(s))
}

/// Who logs in (or who a session is): role, application, address, database.
#[derive(Debug, Clone)]
struct Who {
    role: &'static str,
    app: &'static str,
    addr: Option<IpAddr>,
    database: &'static str,
    member_of: Vec<String>,
}

fn who() -> impl Strategy<Value = Who> {
    (
        prop::sample::select(ROLES.to_vec()),
        prop::sample::select(APPS.to_vec()),
        prop::sample::select(ADDRS.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(role, app, addr, db)| Who {
            role,
            app,
            addr: addr.map(|a| a.parse().unwrap()),
            database: if db { "app" } else { "postgres" },
            member_of: if matches!(role, "kim" | "lee" | "analyst_x") {
                vec!["humans".to_owned()]
            } else {
                Vec::new()
            },
        })
}

impl Who {
    fn login(&self) -> Login<'_> {
        Login {
            role: self.role,
            member_of: &self.member_of,
            database: self.database,
            application: self.app,
            client_addr: self.addr,
        }
    }
}

fn sessions(now: Timestamp) -> impl Strategy<Value = Vec<Session>> {
    prop::collection::vec(
        (
            who(),
            0i64..(48 * 3600),
            0.0f64..1.0,
            0usize..5,
            prop::bool::weighted(0.95),
            // Now and then a verify canary of rule 0..3 with an edge within an hour.
            prop::option::weighted(0.15, (0usize..3, -3600i64..3600)),
        ),
        0..20,
    )
    .prop_map(move |list| {
        list.into_iter()
            .enumerate()
            .map(|(i, (who, age, idle_frac, st, client, canary))| {
                let mut s = who
                    .login()
                    .as_session(now - SignedDuration::from_secs(age + 1));
                if let Some((rule, offset)) = canary {
                    let edge = (now + SignedDuration::from_secs(offset)).as_second();
                    s.role = format!("analyst_curfew_canary_{rule}_ab12_e{edge}").into();
                }
                s.pid = 100 + i64::try_from(i).unwrap();
                s.state = [
                    SessionState::Idle,
                    SessionState::Active,
                    SessionState::IdleInTransaction,
                    SessionState::IdleInTransactionAborted,
                    SessionState::Unknown,
                ][st];
                let idle_for = (age as f64 * idle_frac) as i64;
                s.state_change = Some(now - SignedDuration::from_secs(idle_for));
                if !client {
                    s.backend_type = BackendType::Other("walsender".into());
                }
                s
            })
            .collect()
    })
}

fn parse(text: &str) -> Policy {
    parse_policy("gen.toml", text, jiff::tz::db())
        .unwrap_or_else(|e| panic!("generated policy did not parse: {e}\n{text}"))
        .policy
}

fn find<'p>(list: &'p [Decision], s: &Session) -> Option<&'p Decision> {
    list.iter().find(|d| d.session == s.key())
}

fn is_cap(d: Option<&Decision>) -> bool {
    d.is_some_and(|d| matches!(d.cause, Cause::OverSessionLimit { .. }))
}

fn plan(policy: &Policy, sessions: &[Session], now: Timestamp, o: &Overrides) -> Plan {
    Engine::new().evaluate_with(policy, sessions, now, FOREVER, o)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_next_event_is_the_batch_end_of_each_session(
        text in policy_text(),
        (now, sessions) in instant().prop_flat_map(|now| (Just(now), sessions(now))),
    ) {
        let policy = parse(&text);
        let overrides = Overrides::canary_edges(&policy, &sessions);
        let plan = plan(&policy, &sessions, now, &overrides);
        for s in &sessions {
            let batch = find(&plan.terminations, s).or_else(|| find(&plan.upcoming, s));
            if is_cap(batch) {
                continue;
            }
            let per = next_event(&policy, s, now, &overrides);
            prop_assert_eq!(batch, per.as_ref().map(|e| &e.decision), "{:?}", s);
            let warned_now = per
                .as_ref()
                .is_some_and(|e| e.decision.deadline > now && e.warn_at.is_some_and(|w| w <= now));
            prop_assert_eq!(find(&plan.warnings, s).is_some(), warned_now, "{:?}", s);
            if let Some(e) = &per
                && let Some(lead) = policy.rules[e.decision.rule].warn
            {
                prop_assert_eq!(e.warn_at, Some(e.decision.deadline - lead.get()));
            }
            // The batch reports a session only when it does not end it now.
            let reported = find(&plan.reports, s);
            if !is_cap(reported) && find(&plan.terminations, s).is_none() {
                let per = next_report(&policy, s, now, &overrides).filter(|d| d.deadline <= now);
                prop_assert_eq!(reported, per.as_ref());
            }
        }
    }

    #[test]
    fn admit_refuses_exactly_when_the_batch_ends_the_new_session_at_once(
        text in policy_text(),
        now in instant(),
        who in who(),
    ) {
        let policy = parse(&text);
        let login = who.login();
        let new = login.as_session(now);
        let plan = plan(&policy, std::slice::from_ref(&new), now, &Overrides::none());
        let ended = find(&plan.terminations, &new);
        match admit(&policy, &login, now, &[], &[]) {
            Admission::Refused(r) => {
                let d = ended.unwrap();
                prop_assert_eq!(r.rule_index, Some(d.rule));
                prop_assert_eq!(&r.rule, &d.rule_id);
                prop_assert_eq!(r.cause, Some(d.cause));
                if let Some(retry) = r.retry_at {
                    prop_assert!(retry > now);
                    let again = admit(&policy, &login, retry, &[], &[]);
                    let same = matches!(&again, Admission::Refused(a) if a.rule == r.rule);
                    prop_assert!(!same, "{:?} still refuses at {}", r.rule, retry);
                }
            }
            Admission::Allowed { reported } => {
                prop_assert!(ended.is_none(), "the batch ends it: {:?}", ended);
                let batch = find(&plan.reports, &new);
                prop_assert_eq!(
                    reported.as_ref().map(|r| (&r.rule, r.cause)),
                    batch.map(|d| (&d.rule_id, Some(d.cause)))
                );
            }
        }
    }

    #[test]
    fn admit_refuses_beyond_a_cap_exactly_when_the_batch_ranks_the_new_session_out(
        caps in prop::collection::vec((1u32..4, 0usize..CAP_SCOPES.len()), 1..3),
        exempt_apps in any::<bool>(),
        closed_db in any::<bool>(),
        older in prop::collection::vec(who(), 0..7),
        now in instant(),
        who in who(),
    ) {
        let mut text = "[[exempt]]\nroles = [\"postgres\"]\n".to_owned();
        if exempt_apps {
            text.push_str("\n[[exempt]]\napplications = [\"batch-*\"]\n");
        }
        if closed_db {
            text.push_str("\n[[rule]]\nname = \"closed\"\ndeny = [\"00:00-24:00\"]\ntimezone = \"UTC\"\ndatabases = [\"postgres\"]\n");
        }
        for (i, (limit, scope)) in caps.iter().enumerate() {
            let scope = CAP_SCOPES[*scope].replace("ROLE", who.role);
            text.push_str(&format!("\n[[rule]]\nname = \"cap{i}\"\nmax_sessions = {limit}\n{scope}"));
        }
        let policy = parse(&text);
        let login = who.login();
        // The role's other sessions: its own role and memberships, anything else theirs.
        let others: Vec<RoleSession> = older
            .iter()
            .map(|o| RoleSession {
                database: o.database.to_owned(),
                application: o.app.to_owned(),
                client_addr: o.addr.into(),
            })
            .collect();
        let mut sessions: Vec<Session> = others
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut s = login.as_session(now - SignedDuration::from_secs(i as i64 + 1));
                s.pid = 100 + i as i64;
                s.database = o.database.as_str().into();
                s.application = o.application.as_str().into();
                s.client_addr = o.client_addr.clone();
                s
            })
            .collect();
        let mut new = login.as_session(now);
        new.pid = 1_000;
        sessions.push(new.clone());
        let plan = plan(&policy, &sessions, now, &Overrides::none());
        let ended = find(&plan.terminations, &new);
        match admit(&policy, &login, now, &others, &[]) {
            Admission::Refused(r) => {
                let d = ended.unwrap();
                prop_assert_eq!(&r.rule, &d.rule_id);
                prop_assert_eq!(r.cause, Some(d.cause));
            }
            Admission::Allowed { .. } => prop_assert!(ended.is_none(), "{:?}", ended),
        }
    }
}

/// Cap scopes: the whole role, the login's role, a database, applications, an address block.
const CAP_SCOPES: [&str; 5] = [
    "",
    "roles = [\"ROLE\"]\n",
    "databases = [\"app\"]\n",
    "applications = [\"psql\", \"orders-*\"]\n",
    "addresses = [\"10.0.0.0/8\"]\n",
];
