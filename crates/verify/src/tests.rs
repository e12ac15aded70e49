//! Planning and evaluation on hand-written policies.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use curfew_policy::{Policy, parse_policy};
use jiff::Timestamp;

use crate::{Activity, Planned, RuleResult, Status, evaluate_rule, plan};

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

fn planned(text: &str) -> Vec<Planned> {
    plan(&policy(text), five_minutes(), monday_morning(), "t0k")
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
    let Planned::Live { canary, limit } = &plans[0] else {
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
        Planned::Live { .. } => String::new(),
    };
    assert!(matches!(&plans[0], Planned::Evaluate { .. }));
    assert!(why(&plans[0]).contains("\"alice\""), "{}", why(&plans[0]));
    assert!(why(&plans[1]).contains("--max-wait"), "{}", why(&plans[1]));
    assert!(
        matches!(&plans[2], Planned::Live { canary, .. } if canary.activity == Activity::IdleInTransaction)
    );
    assert!(matches!(&plans[3], Planned::Live { canary, .. } if canary.activity == Activity::Busy));
    assert!(matches!(&plans[4], Planned::Evaluate { .. }));
    assert!(matches!(&plans[5], Planned::Evaluate { .. }));
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
    assert_eq!(result.status, Status::Pass);
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
    let plans = plan(&p, five_minutes(), monday_morning(), "t0k");
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
        five_minutes(),
        monday_morning(),
        "t",
    );
    assert!(matches!(&plans[0], Planned::Live { .. }), "{plans:?}");
}
