//! The per-session API: admit, next event, violations per error, and decisions by stable id.

use jiff::{SignedDuration, Timestamp};

use super::test_support::{ago, client_session, now, policy};
use super::*;
use crate::model::{Action, RuleId};
use crate::parse_policy;
use crate::session::{BackendType, ClientAddr, SessionState};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn login(role: &str) -> Login<'_> {
    Login {
        role,
        member_of: &[],
        database: "app",
        application: "psql",
        client_addr: Some("10.1.2.3".parse().unwrap()),
    }
}

/// `n` other sessions of the role where [`login`] logs in from.
fn alike(n: usize) -> Vec<RoleSession> {
    vec![
        RoleSession {
            database: "app".to_owned(),
            application: "psql".to_owned(),
            client_addr: ClientAddr::Ip("10.1.2.3".parse().unwrap()),
        };
        n
    ]
}

fn session(pid: i64, role: &str) -> Session {
    client_session(pid, role, SessionState::Active)
}

fn refused(a: Admission) -> Refusal {
    match a {
        Admission::Refused(r) => r,
        other => panic!("admitted: {other:?}"),
    }
}

const HOURS: &str = r#"
[[rule]]
name = "hours"
allow = ["Mon-Fri 07:00-09:00"]
timezone = "America/New_York"
roles = ["analyst_*"]
lock_logins = true

[[rule]]
name = "maint"
deny = ["2026-11-23 14:30 - 2026-11-23 16:00"]
timezone = "UTC"
roles = ["ops_*"]

[[rule]]
name = "one"
max_sessions = 1
roles = ["kim"]
"#;

#[test]
fn admit_refuses_outside_an_allow_window_until_it_opens() {
    let p = policy(HOURS);
    // 10:00 New York: the 07:00-09:00 window closed; it opens again tomorrow 07:00 (12:00Z).
    let r = refused(admit(&p, &login("analyst_kim"), now(), &[], &[]));
    assert_eq!(r.rule, RuleId::new("hours"));
    assert_eq!(r.rule_index, Some(0));
    assert_eq!(r.retry_at, Some(at("2026-11-24T12:00:00Z")));
    assert!(
        matches!(r.cause, Some(Cause::OutsideWindows { .. })),
        "{r:?}"
    );
    assert_eq!(
        r.reason,
        "outside the allowed windows (Mon-Fri 07:00-09:00 America/New_York) since 2026-11-23 09:00 EST"
    );
    // Inside the window: allowed.
    let eight = at("2026-11-23T13:00:00Z");
    assert_eq!(
        admit(&p, &login("analyst_kim"), eight, &[], &[]),
        Admission::Allowed { reported: None }
    );
    // Not in scope: allowed.
    assert_eq!(
        admit(&p, &login("appuser"), now(), &[], &[]),
        Admission::Allowed { reported: None }
    );
}

#[test]
fn admit_refuses_inside_a_deny_window_until_its_end() {
    let p = policy(HOURS);
    let r = refused(admit(&p, &login("ops_ann"), now(), &[], &[]));
    assert_eq!((r.rule.as_str(), r.rule_index), ("maint", Some(1)));
    assert_eq!(r.retry_at, Some(at("2026-11-23T16:00:00Z")));
    assert!(matches!(r.cause, Some(Cause::InsideDenyWindow { .. })));
    // Before the window: allowed.
    assert!(matches!(
        admit(&p, &login("ops_ann"), ago(3_600), &[], &[]),
        Admission::Allowed { .. }
    ));
}

#[test]
fn admit_refuses_beyond_a_session_cap_until_a_session_frees_up() {
    let p = policy(HOURS);
    assert!(matches!(
        admit(&p, &login("kim"), now(), &[], &[]),
        Admission::Allowed { reported: None }
    ));
    let r = refused(admit(&p, &login("kim"), now(), &alike(1), &[]));
    assert_eq!((r.rule.as_str(), r.retry_at), ("one", None));
    assert_eq!(
        r.reason,
        "session 2 of 2 of its role, oldest first; limit 1 per role"
    );
    // The batch engine agrees: with the live session, the new one would be ended at once.
    let live = session(1, "kim");
    let new = login("kim").as_session(now());
    let plan = evaluate(&p, &[live, new.clone()], now());
    assert_eq!(plan.terminations.len(), 1);
    assert_eq!(plan.terminations[0].session, new.key());
    assert_eq!(plan.terminations[0].rule_id, r.rule);
}

#[test]
fn admit_refuses_an_incident_locked_role_even_when_exempt() {
    let p = policy(&format!("[exempt]\nroles = [\"kim\"]\n{HOURS}"));
    assert!(matches!(
        admit(&p, &login("kim"), now(), &alike(5), &[]),
        Admission::Allowed { reported: None }
    ));
    let until = now() + SignedDuration::from_hours(1);
    let locks = [
        IncidentLock {
            reason: "compromised".to_owned(),
            until: Some(until),
        },
        IncidentLock {
            reason: "audit".to_owned(),
            until: Some(until - SignedDuration::from_mins(5)),
        },
    ];
    let r = refused(admit(&p, &login("kim"), now(), &[], &locks));
    assert_eq!(r.rule.as_str(), LOGIN_LOCK_RULE);
    assert_eq!((r.rule_index, r.cause), (None, None));
    assert_eq!(r.retry_at, Some(until), "free when the last lock expires");
    assert_eq!(
        r.reason,
        "role \"kim\" is locked: incident lock: compromised; audit"
    );
    let forever = [IncidentLock {
        reason: "x".to_owned(),
        until: None,
    }];
    assert_eq!(
        refused(admit(&p, &login("kim"), now(), &[], &forever)).retry_at,
        None
    );
}

#[test]
fn admit_never_refuses_for_a_report_only_rule_but_says_so() {
    let p = policy(
        "[[rule]]\nname = \"staged\"\nallow = [\"Mon-Fri 07:00-09:00\"]\ntimezone = \"America/New_York\"\naction = \"report\"\n",
    );
    match admit(&p, &login("kim"), now(), &[], &[]) {
        Admission::Allowed { reported: Some(r) } => assert_eq!(r.rule.as_str(), "staged"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn time_limits_never_refuse_a_login() {
    let p = policy(
        "[[rule]]\nname = \"idle\"\nidle = \"1m\"\n\n[[rule]]\nname = \"life\"\nlifetime = \"1h\"\n",
    );
    assert_eq!(
        admit(&p, &login("kim"), now(), &alike(100), &[]),
        Admission::Allowed { reported: None }
    );
}

const IDLE_15M: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\nwarn = \"2m\"\n";

#[test]
fn next_event_is_the_end_with_its_warning_ahead() {
    let p = policy(IDLE_15M);
    let mut s = session(1, "kim");
    s.state = SessionState::Idle;
    s.state_change = Some(ago(300));
    let e = next_event(&p, &s, now(), &Overrides::none()).unwrap();
    let end = ago(300) + SignedDuration::from_mins(15);
    assert_eq!(e.decision.deadline, end);
    assert_eq!(e.decision.rule_id.as_str(), "inactivity");
    assert_eq!(e.warn_at, Some(end - SignedDuration::from_mins(2)));
    assert_eq!(e.reason, "idle for 15m00s; limit 15m");
    // Running a statement: nothing pending.
    s.state = SessionState::Active;
    assert_eq!(next_event(&p, &s, now(), &Overrides::none()), None);
}

#[test]
fn next_event_without_warn_has_no_warning_and_skips_exempt_and_non_clients() {
    let p = policy(
        "[exempt]\nroles = [\"postgres\"]\n\n[[rule]]\nname = \"life\"\nlifetime = \"2h\"\n",
    );
    let s = session(1, "kim");
    let e = next_event(&p, &s, now(), &Overrides::none()).unwrap();
    assert_eq!(
        e.decision.deadline,
        ago(3_600) + SignedDuration::from_hours(2)
    );
    assert_eq!(e.warn_at, None);
    assert_eq!(
        next_event(&p, &session(2, "postgres"), now(), &Overrides::none()),
        None
    );
    let mut walsender = session(3, "kim");
    walsender.backend_type = BackendType::Other("walsender".to_owned());
    assert_eq!(next_event(&p, &walsender, now(), &Overrides::none()), None);
}

#[test]
fn next_event_of_a_window_rule_is_its_close_and_honours_an_edge_override() {
    let p = policy(
        "[[rule]]\nname = \"hours\"\nallow = [\"Mon-Fri 07:00-19:00\"]\ntimezone = \"America/New_York\"\nwarn = \"10m\"\n",
    );
    let s = session(1, "kim");
    let e = next_event(&p, &s, now(), &Overrides::none()).unwrap();
    let close = at("2026-11-24T00:00:00Z");
    assert_eq!(e.decision.deadline, close);
    assert_eq!(e.warn_at, Some(close - SignedDuration::from_mins(10)));
    // An edge only ever brings the end earlier.
    let edge = now() + SignedDuration::from_secs(5);
    let mut overrides = Overrides::none();
    overrides.set_edge(s.key(), RuleId::new("hours"), edge);
    let e = next_event(&p, &s, now(), &overrides).unwrap();
    assert_eq!(e.decision.deadline, edge);
    assert_eq!(e.decision.cause, Cause::CanaryEdge { edge });
    let mut late = Overrides::none();
    late.set_edge(
        s.key(),
        RuleId::new("hours"),
        close + SignedDuration::from_hours(1),
    );
    assert_eq!(
        next_event(&p, &s, now(), &late).unwrap().decision.deadline,
        close
    );
}

#[test]
fn next_report_is_kept_apart_from_the_end() {
    let p = policy(
        "[[rule]]\nname = \"staged\"\nlifetime = \"1h30m\"\naction = \"report\"\n\n[[rule]]\nname = \"real\"\nlifetime = \"2h\"\n",
    );
    let s = session(1, "kim");
    let end = next_event(&p, &s, now(), &Overrides::none()).unwrap();
    assert_eq!(end.decision.rule_id.as_str(), "real");
    let report = next_report(&p, &s, now(), &Overrides::none()).unwrap();
    assert_eq!(report.rule_id.as_str(), "staged");
    assert_eq!(report.deadline, now() + SignedDuration::from_mins(30));
}

const PROBING: &str = r#"
[[rule]]
name = "probing"
action = "report"
violations = { sqlstates = ["42501", "42P01"], count = 3, within = "10m" }
"#;

fn secs(n: i64) -> Timestamp {
    now() + SignedDuration::from_secs(n)
}

#[test]
fn violations_count_to_a_warning_then_an_end_within_the_window() {
    let p = policy(PROBING);
    let s = session(1, "kim");
    let mut counter = ViolationCounter::new();
    assert_eq!(
        counter.on_error(&p, &s, "42501", secs(0)),
        ErrorVerdict::Nothing
    );
    // Another code: not counted.
    assert_eq!(
        counter.on_error(&p, &s, "23505", secs(1)),
        ErrorVerdict::Nothing
    );
    match counter.on_error(&p, &s, "42P01", secs(2)) {
        ErrorVerdict::Warn {
            rule,
            counted,
            limit,
            action,
        } => {
            assert_eq!((rule.as_str(), counted, limit), ("probing", 2, 3));
            assert_eq!(action, Action::Report);
        }
        other => panic!("{other:?}"),
    }
    match counter.on_error(&p, &s, "42501", secs(3)) {
        ErrorVerdict::End {
            rule,
            codes,
            reason,
            ..
        } => {
            assert_eq!(rule.as_str(), "probing");
            assert_eq!(codes, ["42501", "42P01", "42501"]);
            assert_eq!(
                reason,
                "3 errors 42501, 42P01 by this session within 10m; limit 3"
            );
        }
        other => panic!("{other:?}"),
    }
    // Counted afresh after an end.
    assert_eq!(
        counter.on_error(&p, &s, "42501", secs(4)),
        ErrorVerdict::Nothing
    );
}

#[test]
fn violations_older_than_the_window_are_forgotten() {
    let p = policy(PROBING);
    let s = session(1, "kim");
    let mut counter = ViolationCounter::new();
    counter.on_error(&p, &s, "42501", secs(0));
    counter.on_error(&p, &s, "42501", secs(60));
    // Exactly 10m after the first: the first has left the window, so two are counted.
    assert!(matches!(
        counter.on_error(&p, &s, "42501", secs(600)),
        ErrorVerdict::Warn { counted: 2, .. }
    ));
    assert!(matches!(
        counter.on_error(&p, &s, "42501", secs(601)),
        ErrorVerdict::End { .. }
    ));
}

#[test]
fn violations_are_counted_per_session_unless_per_role() {
    let per_session = policy(PROBING);
    let per_role = policy(&PROBING.replace("within = \"10m\"", "within = \"10m\", per = \"role\""));
    let (a, b, other) = (session(1, "kim"), session(2, "kim"), session(3, "lee"));
    let mut counter = ViolationCounter::new();
    counter.on_error(&per_session, &a, "42501", secs(0));
    counter.on_error(&per_session, &b, "42501", secs(1));
    assert!(matches!(
        counter.on_error(&per_session, &b, "42501", secs(2)),
        ErrorVerdict::Warn { counted: 2, .. }
    ));
    let mut counter = ViolationCounter::new();
    counter.on_error(&per_role, &a, "42501", secs(0));
    counter.on_error(&per_role, &other, "42501", secs(1));
    assert!(matches!(
        counter.on_error(&per_role, &b, "42501", secs(2)),
        ErrorVerdict::Warn { counted: 2, .. }
    ));
    match counter.on_error(&per_role, &b, "42501", secs(3)) {
        ErrorVerdict::End { reason, .. } => assert!(reason.contains("its role's sessions")),
        v => panic!("{v:?}"),
    }
    // Forgetting a session keeps its role's count.
    counter.on_error(&per_role, &a, "42501", secs(4));
    counter.forget_session(&a.key());
    assert!(matches!(
        counter.on_error(&per_role, &b, "42501", secs(5)),
        ErrorVerdict::Warn { counted: 2, .. }
    ));
}

#[test]
fn violations_respect_scope_and_exemptions() {
    let p = policy(&format!(
        "[exempt]\nroles = [\"postgres\"]\n{}",
        PROBING.replace("action", "roles = [\"k*\", \"postgres\"]\naction")
    ));
    let mut counter = ViolationCounter::new();
    for (role, counts) in [("kim", true), ("lee", false), ("postgres", false)] {
        let s = session(1, role);
        counter.on_error(&p, &s, "42501", secs(0));
        let v = counter.on_error(&p, &s, "42501", secs(1));
        assert_eq!(
            matches!(v, ErrorVerdict::Warn { .. }),
            counts,
            "{role}: {v:?}"
        );
    }
}

#[test]
fn per_must_be_session_or_role() {
    let e = parse_policy(
        "t.toml",
        &PROBING.replace("within = \"10m\"", "within = \"10m\", per = \"database\""),
        jiff::tz::db(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("`per` in `violations` of"), "{e}");
}

#[test]
fn a_decision_names_the_same_rule_after_the_rules_are_reordered() {
    let a = "[[rule]]\nname = \"life\"\nlifetime = \"1h\"\n";
    let b = "[[rule]]\nname = \"idle\"\nidle = \"10m\"\nwarn = \"1m\"\n";
    let c = "[[rule]]\nname = \"one\"\nmax_sessions = 1\n";
    let mut idle = session(1, "kim");
    idle.state = SessionState::Idle;
    idle.state_change = Some(ago(120));
    idle.backend_start = ago(600);
    let mut second = session(2, "kim");
    second.backend_start = ago(60);
    let sessions = [idle.clone(), second];
    let by_id = |p: &Policy| {
        let plan =
            Engine::new().evaluate_ahead(p, &sessions, now(), SignedDuration::from_hours(48));
        let mut ends: Vec<_> = plan
            .terminations
            .iter()
            .chain(&plan.upcoming)
            .map(|d| (d.session, d.rule_id.clone(), d.deadline))
            .collect();
        ends.sort();
        let next = next_event(p, &idle, now(), &Overrides::none()).map(|e| e.decision.rule_id);
        (ends, next)
    };
    let first = policy(&format!("{a}{b}{c}"));
    let reordered = policy(&format!("{b}{c}{a}"));
    assert_ne!(
        first.rule_index(&RuleId::new("idle")),
        reordered.rule_index(&RuleId::new("idle"))
    );
    assert_eq!(by_id(&first), by_id(&reordered));
    assert_eq!(by_id(&first).1, Some(RuleId::new("idle")));
    // A refusal too.
    assert_eq!(
        refused(admit(&first, &login("kim"), now(), &alike(1), &[])).rule,
        refused(admit(&reordered, &login("kim"), now(), &alike(1), &[])).rule
    );
    // And a decision made before a reload finds its rule in the reloaded policy.
    let d = &evaluate(&first, &sessions, now()).terminations[0];
    let index = reordered.rule_index(&d.rule_id).unwrap();
    assert_eq!(reordered.rules[index].name, first.rules[d.rule].name);
}

#[test]
fn the_rules_that_counted_an_error_are_told() {
    let p = policy(PROBING);
    let s = session(1, "kim");
    let mut counter = ViolationCounter::new();
    counter.on_error(&p, &s, "42501", secs(1));
    let names: Vec<&str> = counter.counted_by().iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["probing"]);
    counter.on_error(&p, &s, "22012", secs(2));
    assert!(counter.counted_by().is_empty());
}
