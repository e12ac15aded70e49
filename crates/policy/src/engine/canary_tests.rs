//! The window-edge override for `curfew verify` canaries (built by the caller from the role
//! names, see `Overrides::canary_edges`): it ends a window rule's canary at the edge its role
//! name gives, and can never exempt, delay, or reach anything else.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::test_support::{now, policy};
use super::*;
use crate::session::{BackendType, SessionState};

fn session(pid: i64, role: &str) -> Session {
    Session {
        pid,
        backend_start: now() - SignedDuration::from_secs(60),
        xact_start: None,
        state: SessionState::Active,
        state_change: Some(now() - SignedDuration::from_secs(60)),
        role: role.into(),
        member_of: Arc::from(Vec::<String>::new()),
        database: "app".into(),
        client_addr: crate::ClientAddr::Ip("10.1.2.3".parse().unwrap()),
        application: "psql".into(),
        backend_type: BackendType::ClientBackend,
    }
}

/// Open in New York now (Monday 10:00), closing at 19:00; rule 1 is a deny window far ahead.
const WINDOWS: &str = r#"
[[rule]]
name = "hours"
allow = ["Mon-Fri 07:00-19:00"]
timezone = "America/New_York"
roles = ["analyst_*"]

[[rule]]
name = "year-end"
deny = ["2026-12-31 22:00 - 2027-01-01 02:00"]
timezone = "UTC"

[[rule]]
name = "idle"
idle = "1h"
"#;

fn edge_in(secs: i64) -> (Timestamp, i64) {
    let edge = now() + SignedDuration::from_secs(secs);
    (edge, edge.as_second())
}

/// The verdict with the overrides the agent builds from the canaries' role names.
fn verdict(p: &Policy, s: Session, at: Timestamp) -> Verdict {
    let sessions = [s];
    let overrides = Overrides::canary_edges(p, &sessions);
    assess_with(p, &sessions, at, &overrides).pop().unwrap()
}

#[test]
fn a_window_rules_canary_ends_at_the_edge_in_its_name() {
    let p = policy(WINDOWS);
    let (edge, secs) = edge_in(5);
    for (rule, role) in [
        (0, format!("analyst_curfew_canary_0_ab12_e{secs}")),
        (1, format!("curfew_canary_1_ab12_e{secs}")),
    ] {
        let s = session(1, &role);
        match verdict(&p, s.clone(), now()) {
            Verdict::Scheduled(d) => {
                assert_eq!((d.rule, d.deadline), (rule, edge), "{role}");
                assert_eq!(d.cause, Cause::CanaryEdge { edge });
            }
            other => panic!("{role}: {other:?}"),
        }
        let sessions = std::slice::from_ref(&s);
        let overrides = Overrides::canary_edges(&p, sessions);
        let plan =
            Engine::new().evaluate_with(&p, sessions, now(), SignedDuration::ZERO, &overrides);
        assert_eq!(
            plan.next_wake,
            Some(edge),
            "{role}: the agent wakes at the edge"
        );
        let Verdict::Ends(d) = verdict(&p, s, edge) else {
            panic!("{role}: not ended at the edge")
        };
        assert_eq!(d.rule, rule);
        assert!(
            d.reason(&p, edge).contains("test edge of this window rule"),
            "{}",
            d.reason(&p, edge)
        );
    }
}

#[test]
fn the_edge_is_honoured_only_for_the_window_rule_the_canary_tests() {
    let p = policy(WINDOWS);
    let (_, secs) = edge_in(5);
    let later = now() + SignedDuration::from_secs(30);
    for role in [
        // Rule 2 is an idle rule: no edge there.
        format!("curfew_canary_2_ab12_e{secs}"),
        // Rule 0 is "hours", but this role is not in its scope; rule 1 is not the one tested.
        format!("curfew_canary_0_ab12_e{secs}"),
        // Not a canary: the mark is missing, or the edge is not in the segment after the run.
        format!("kim_e{secs}"),
        format!("curfew_canary_1_e{secs}"),
        format!("curfew_canary_1_ab12_x_e{secs}"),
    ] {
        let v = verdict(&p, session(1, &role), later);
        assert!(!matches!(v, Verdict::Ends(_)), "{role}: {v:?}");
    }
}

#[test]
fn the_edge_never_delays_an_end_nor_exempts_a_session() {
    // Outside the windows now (Monday 20:00 in New York): ended now, whatever edge it names.
    let p = policy(WINDOWS);
    let evening: Timestamp = "2026-11-24T01:00:00Z".parse().unwrap();
    let far = (evening + SignedDuration::from_hours(5)).as_second();
    let s = session(1, &format!("analyst_curfew_canary_0_ab12_e{far}"));
    let Verdict::Ends(d) = verdict(&p, s, evening) else {
        panic!("delayed")
    };
    assert!(matches!(d.cause, Cause::OutsideWindows { .. }), "{d:?}");
    // Inside the deny window: ended, however far the edge.
    let midnight: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    let far = (midnight + SignedDuration::from_hours(5)).as_second();
    let s = session(1, &format!("curfew_canary_1_ab12_e{far}"));
    assert!(matches!(verdict(&p, s, midnight), Verdict::Ends(_)));
    // An edge after the window's own close: the window's close wins.
    let close: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
    let after = (close + SignedDuration::from_hours(1)).as_second();
    let s = session(1, &format!("analyst_curfew_canary_0_ab12_e{after}"));
    let Verdict::Scheduled(d) = verdict(&p, s, now()) else {
        panic!("not scheduled")
    };
    assert_eq!(d.deadline, close);
    // An exempt canary stays exempt.
    let exempt = policy(&format!("[exempt]\nroles = [\"analyst_*\"]\n{WINDOWS}"));
    let (edge, secs) = edge_in(5);
    let s = session(1, &format!("analyst_curfew_canary_0_ab12_e{secs}"));
    assert!(matches!(
        verdict(&exempt, s, edge + SignedDuration::from_secs(1)),
        Verdict::Exempt { .. }
    ));
}

#[test]
fn the_edge_is_read_from_the_segment_after_the_run_token() {
    assert_eq!(
        crate::canary_edge("analyst_curfew_canary_3_ab12_e1795000000_x"),
        Some(Timestamp::from_second(1_795_000_000).unwrap())
    );
    for role in [
        "curfew_canary_3_ab12",
        "curfew_canary_3_ab12_e",
        "curfew_canary_3_ab12_e12x",
        "curfew_canary_x_ab12_e1795000000",
        "curfew_canary_3_ab12_e99999999999999",
        "kim",
    ] {
        assert_eq!(crate::canary_edge(role), None, "{role}");
    }
}
