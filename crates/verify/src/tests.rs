//! Planning and evaluation on hand-written policies.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use curfew_policy::{Policy, parse_policy};
use jiff::Timestamp;

use crate::{Activity, Options, Planned, RuleResult, Status, evaluate_rule, plan};

fn policy(text: &str) -> Policy {
    parse_policy("t.toml", text, jiff::tz::db()).unwrap().policy
}

/// A Monday, 10:00 in New York.
fn monday_morning() -> Timestamp {
    "2026-11-23T15:00:00Z".parse().unwrap()
}

fn five_minutes() -> curfew_policy::Limit {
    curfew_policy::Limit::from_secs(300).unwrap()
}

fn options() -> Options {
    Options {
        max_wait: five_minutes(),
        full: false,
    }
}

fn planned(text: &str) -> Vec<Planned> {
    plan(&policy(text), options(), monday_morning(), "t0k")
}

#[test]
fn a_short_idle_rule_over_a_role_pattern_is_tested_live_with_a_created_role() {
    let plans = planned(
        r#"
[[rule]]
name = "inactivity"
idle = "2s"
roles = ["analyst_*"]
member_of = ["humans"]
databases = ["sales"]
applications = ["psql*"]
"#,
    );
    let Planned::Live { canary, limit, .. } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert_eq!(canary.role, "analyst_curfew_canary_0_t0k");
    assert_eq!(canary.groups, ["humans"]);
    assert_eq!(canary.database.as_deref(), Some("sales"));
    assert_eq!(canary.application, "psqlcurfew_canary_0_t0k");
    assert_eq!(canary.activity, Activity::Idle);
    assert_eq!(limit.to_std(), Duration::from_secs(2));
}

#[test]
fn each_kind_of_rule_gets_a_method_and_none_is_passed_silently() {
    let plans = planned(
        r#"
[[rule]]
name = "named-roles"
idle = "2s"
roles = ["alice"]

[[rule]]
name = "long"
idle = "15m"

[[rule]]
name = "tx"
idle_in_transaction = "3s"

[[rule]]
name = "life"
lifetime = "4s"
roles = ["life_*"]

[[rule]]
name = "hours"
allow = ["Mon-Fri 07:00-19:00"]
timezone = "America/New_York"

[[rule]]
name = "cap"
max_sessions = 2

[[rule]]
name = "staged"
idle = "2s"
action = "report"

[[rule]]
name = "probing"
action = "report"
violations = { sqlstates = ["42501"], count = 3, within = "10m" }
"#,
    );
    let why = |p: &Planned| match p {
        Planned::Evaluate { why } | Planned::NotTested { why } => why.clone(),
        _ => String::new(),
    };
    assert!(matches!(&plans[0], Planned::Evaluate { .. }));
    assert!(why(&plans[0]).contains("\"alice\""), "{}", why(&plans[0]));
    assert!(why(&plans[1]).contains("--max-wait"), "{}", why(&plans[1]));
    assert!(
        matches!(&plans[2], Planned::Live { canary, .. } if canary.activity == Activity::IdleInTransaction)
    );
    assert!(matches!(&plans[3], Planned::Live { canary, .. } if canary.activity == Activity::Busy));
    assert!(matches!(&plans[4], Planned::Edge), "{:?}", plans[4]);
    assert!(
        matches!(&plans[5], Planned::Cap { cap: 2, .. }),
        "{:?}",
        plans[5]
    );
    assert!(matches!(&plans[6], Planned::NotTested { .. }));
    assert!(why(&plans[6]).contains("report-only"));
    assert!(matches!(&plans[7], Planned::NotTested { .. }));
    assert!(why(&plans[7]).contains("gateway"));
}

#[test]
fn a_canary_that_would_be_exempt_or_ended_by_another_rule_is_not_used() {
    let plans = planned(
        r#"
[exempt]
applications = ["batch-*"]

[[rule]]
name = "batch-idle"
idle = "2s"
applications = ["batch-*"]

[[rule]]
name = "quick"
idle = "1s"

[[rule]]
name = "slow"
idle = "3s"
"#,
    );
    let Planned::Evaluate { why } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("exempt by [exempt] applications"), "{why}");
    assert!(matches!(&plans[1], Planned::Live { .. }));
    let Planned::Evaluate { why } = &plans[2] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("rule \"quick\""), "{why}");
}

#[test]
fn an_idle_rule_is_evaluated_on_either_side_of_its_limit() {
    let p = policy("[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\nroles = [\"alice\"]\n");
    let probes = evaluate_rule(&p, 0, monday_morning(), "t");
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(probes[0].at, "idle 14m59s");
    assert_eq!(probes[0].expected, "kept");
    assert_eq!(probes[1].at, "idle 15m01s");
    assert_eq!(probes[1].expected, "ended");
    assert!(probes.iter().all(|p| p.ok), "{probes:?}");
    let result = RuleResult::evaluated(&p.rules[0], "its limit is long", probes);
    // Evaluation alone is never a pass, and the status line says so.
    assert_eq!(result.status, Status::Evaluated);
    assert_eq!(
        result.status_line,
        "EVALUATED (not a live proof): not tested live: its limit is long"
    );
    assert!(
        result
            .evidence
            .starts_with("Not tested live: its limit is long.")
    );
}

#[test]
fn a_working_hours_rule_is_evaluated_at_its_next_two_boundaries_in_its_time_zone() {
    let p = policy(
        r#"
[[rule]]
name = "hours"
allow = ["Mon-Fri 07:00-19:00"]
timezone = "America/New_York"
"#,
    );
    let probes = evaluate_rule(&p, 0, monday_morning(), "t");
    let seen: Vec<(&str, &str)> = probes.iter().map(|p| (p.at.as_str(), p.expected)).collect();
    assert_eq!(
        seen,
        [
            ("Mon 2026-11-23 10:00:00 EST", "kept"),
            ("Mon 2026-11-23 18:59:59 EST", "kept"),
            ("Mon 2026-11-23 19:00:01 EST", "ended"),
            ("Tue 2026-11-24 06:59:59 EST", "ended"),
            ("Tue 2026-11-24 07:00:01 EST", "kept"),
        ]
    );
    assert!(probes.iter().all(|p| p.ok), "{probes:?}");
}

#[test]
fn a_session_cap_is_evaluated_on_the_newest_session_beyond_it() {
    let p = policy("[[rule]]\nname = \"cap\"\nmax_sessions = 2\n");
    let probes = evaluate_rule(&p, 0, monday_morning(), "t");
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(probes[0].expected, "kept");
    assert_eq!(probes[1].expected, "ended");
    assert!(probes[1].at.starts_with("session 3 of 3"));
    assert!(probes.iter().all(|p| p.ok), "{probes:?}");
}

#[test]
fn a_rule_whose_whole_scope_is_exempt_fails_its_evaluation() {
    let p = policy(
        r#"
[exempt]
roles = ["app_*"]

[[rule]]
name = "app-idle"
idle = "1h"
roles = ["app_*"]
"#,
    );
    let probes = evaluate_rule(&p, 0, monday_morning(), "t");
    assert!(!probes[1].ok);
    assert!(probes[1].verdict.contains("exempt"), "{probes:?}");
    let result = RuleResult::evaluated(&p.rules[0], "why", probes);
    assert_eq!(result.status, Status::Fail);
    assert!(
        result.evidence.contains("expected ended"),
        "{}",
        result.evidence
    );
}

#[test]
fn a_test_limit_lets_a_long_rule_be_tested_live_and_keeps_its_own_limit_for_evaluation() {
    let p = policy(
        "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n\n[verify]\ntest_limit = \"3s\"\n",
    );
    let plans = plan(&p, options(), monday_morning(), "t0k");
    let Planned::Live { limit, .. } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert_eq!(limit.to_std(), Duration::from_secs(3));
    let probes = evaluate_rule(&p, 0, monday_morning(), "t0k");
    assert_eq!(probes[0].at, "idle 14m59s");
    assert!(probes.iter().all(|p| p.ok), "{probes:?}");
    // Without it, the long rule is evaluated, and the why says what would help.
    let plans = planned("[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n");
    let Planned::Evaluate { why } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("[verify] test_limit"), "{why}");
}

/// With `local` exempt, every sample of the example policy was exempt: a Unix socket was the
/// only address tried, and each evaluation failed.
#[test]
fn an_exempt_unix_socket_does_not_hide_a_rule_with_no_address_scope() {
    let p = policy(
        "[exempt]\naddresses = [\"local\", \"10.0.0.0/8\"]\n\n[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n",
    );
    let probes = evaluate_rule(&p, 0, monday_morning(), "t");
    assert!(probes.iter().all(|p| p.ok), "{probes:?}");
    let plans = plan(
        &policy("[exempt]\naddresses = [\"local\"]\n\n[[rule]]\nname = \"quick\"\nidle = \"2s\"\n"),
        options(),
        monday_morning(),
        "t",
    );
    assert!(matches!(&plans[0], Planned::Live { .. }), "{plans:?}");
}

/// A Monday 20:00 in New York: outside "Mon-Fri 07:00-19:00".
fn monday_evening() -> Timestamp {
    "2026-11-24T01:00:00Z".parse().unwrap()
}

const HOURS: &str = r#"
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
name = "one-each"
max_sessions = 1
roles = ["analyst_*"]
"#;

#[test]
fn a_window_rule_is_watched_at_an_edge_only_while_its_window_lets_the_canary_in() {
    let p = policy(HOURS);
    let plans = plan(&p, options(), monday_morning(), "t0k");
    assert!(matches!(plans[0], Planned::Edge), "{plans:?}");
    assert!(matches!(plans[1], Planned::Edge), "{plans:?}");
    // The edge is in the canary's name, and the engine the agent runs ends it there, by this
    // rule and not before.
    let edge = monday_morning() + crate::EDGE_LEAD;
    let canary = crate::edge_canary(&p, 0, edge, "t0k").unwrap();
    assert_eq!(
        canary.role,
        format!("analyst_curfew_canary_0_t0k_e{}", edge.as_second())
    );
    assert_eq!(curfew_policy::canary_edge(&canary.role), Some(edge));
    // In the evening the window is closed: no edge to watch, and the cap's canaries would be
    // ended by the window rule, so both are evaluated, saying why.
    let plans = plan(&p, options(), monday_evening(), "t0k");
    let Planned::Evaluate { why } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("window is closed now"), "{why}");
    assert!(matches!(plans[1], Planned::Edge), "{plans:?}");
    let Planned::Evaluate { why } = &plans[2] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("rule \"hours\""), "{why}");
}

#[test]
fn a_session_cap_is_tested_with_one_session_more_than_it_allows() {
    let plans = planned(HOURS);
    let Planned::Cap { canary, cap } = &plans[2] else {
        panic!("{plans:?}")
    };
    assert_eq!(*cap, 1);
    assert_eq!(canary.role, "analyst_curfew_canary_2_t0k");
    assert_eq!(canary.activity, Activity::Idle);
    // A cap too large for a test, and one whose sessions an idle rule ends within the test.
    let plans = planned(
        "[[rule]]\nname = \"big\"\nmax_sessions = 50\n\n[[rule]]\nname = \"cap\"\nmax_sessions = 1\nroles = [\"a_*\"]\n\n[[rule]]\nname = \"quick\"\nidle = \"5s\"\nroles = [\"a_*\"]\n",
    );
    let Planned::Evaluate { why } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("51 canary sessions"), "{why}");
    let Planned::Evaluate { why } = &plans[1] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("ended by rule \"quick\""), "{why}");
}

#[test]
fn with_full_an_idle_rule_waits_its_configured_limit_under_a_name_no_override_reaches() {
    let p =
        policy("[[rule]]\nname = \"inactivity\"\nidle = \"2m\"\n\n[verify]\ntest_limit = \"3s\"\n");
    let full = Options {
        full: true,
        ..options()
    };
    let Planned::Live {
        canary,
        limit,
        configured,
    } = &plan(&p, full, monday_morning(), "t0k")[0]
    else {
        panic!()
    };
    assert_eq!(
        (limit.to_std(), configured.to_std()),
        (Duration::from_secs(120), Duration::from_secs(120))
    );
    assert_eq!(
        curfew_policy::canary_rule(&canary.role),
        None,
        "{}",
        canary.role
    );
    // Without --full the test limit is waited, and a live pass says so in its status line.
    let Planned::Live {
        limit, configured, ..
    } = &plan(&p, options(), monday_morning(), "t0k")[0]
    else {
        panic!()
    };
    assert_eq!(limit.to_std(), Duration::from_secs(3));
    let mut r = RuleResult::new(
        &p.rules[0],
        crate::Method::Live,
        Status::LivePass,
        "Created role.".into(),
    );
    assert_eq!(r.status_line, "LIVE PASS");
    r.held_to_test_limit(*limit, *configured, five_minutes());
    assert_eq!(
        r.status_line,
        "LIVE PASS at the test limit 3s; the configured 2m was not waited — run with --full"
    );
    // A failed one keeps its failure, and a limit over --max-wait is named in the hint.
    let mut f = RuleResult::new(
        &p.rules[0],
        crate::Method::Live,
        Status::Fail,
        "Nothing ended it. More.".into(),
    );
    f.held_to_test_limit(*limit, *configured, five_minutes());
    assert_eq!(f.status_line, "FAIL: Nothing ended it");
    r.held_to_test_limit(
        *limit,
        curfew_policy::Limit::from_secs(900).unwrap(),
        five_minutes(),
    );
    assert!(
        r.status_line.ends_with("run with --full --max-wait 15m"),
        "{}",
        r.status_line
    );
}

#[test]
fn the_summary_counts_each_status_and_evaluation_is_never_a_pass() {
    let p = policy(
        "[[rule]]\nname = \"a\"\nidle = \"2s\"\nroles = [\"kim\"]\n\n[[rule]]\nname = \"b\"\naction = \"report\"\nviolations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\n",
    );
    let plans = plan(&p, options(), monday_morning(), "t");
    let Planned::Evaluate { why } = &plans[0] else {
        panic!("{plans:?}")
    };
    let results = vec![
        crate::by_evaluation(&p, 0, why, monday_morning(), "t"),
        RuleResult::not_tested(&p.rules[1], "NOT ENFORCED: nothing running sees errors"),
    ];
    assert_eq!(results[0].status, Status::Evaluated);
    assert!(
        results[0].status_line.contains("names its roles exactly"),
        "{}",
        results[0].status_line
    );
    assert_eq!(
        results[1].status_line,
        "NOT TESTED: NOT ENFORCED: nothing running sees errors"
    );
    assert_eq!(
        crate::summary(&results),
        "0 LIVE PASS, 1 EVALUATED (not live proofs), 1 NOT TESTED, 0 FAIL"
    );
    assert_eq!(crate::counts(&results)["evaluated"], 1);
    assert!(results.iter().all(|r| r.status != Status::LivePass));
}

#[test]
fn a_window_edge_that_another_rule_would_beat_is_evaluated_and_says_which() {
    let p = policy(&format!(
        "{HOURS}\n[[rule]]\nname = \"short-life\"\nlifetime = \"3s\"\nroles = [\"analyst_*\"]\n"
    ));
    let plans = plan(&p, options(), monday_morning(), "t0k");
    let Planned::Evaluate { why } = &plans[0] else {
        panic!("{plans:?}")
    };
    assert!(why.contains("rule \"short-life\""), "{why}");
    // The deny rule's canary is not an analyst: its edge is still watched.
    assert!(matches!(plans[1], Planned::Edge), "{plans:?}");
}
