//! Planning the gateway's tests and judging what the client received, without I/O.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use curfew_policy::{Policy, parse_policy};
use curfew_postgres::{Ended, Received};

use super::{GatewayPlanned, Through, gateway_address, judge_fatal, plan_gateway};
use crate::{Activity, Options};

const BASE: &str =
    "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@127.0.0.1/postgres\"\n\n";

fn policy(rules: &str, gateway: &str) -> Policy {
    let text = format!("{BASE}{rules}\n[gateway]\ntarget = \"db\"\n{gateway}");
    parse_policy("t.toml", &text, jiff::tz::db())
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

fn options() -> Options {
    Options {
        max_wait: curfew_policy::Limit::from_secs(300).unwrap(),
        full: false,
    }
}

fn planned(p: &Policy) -> Vec<(usize, GatewayPlanned)> {
    let now = "2026-11-23T15:00:00Z".parse().unwrap();
    plan_gateway(p, p.gateway.as_ref().unwrap(), options(), now, "t0k")
}

const RULES: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\nroles = [\"vq_*\"]\n\n\
[[rule]]\nname = \"open\"\nidle_in_transaction = \"5m\"\nroles = [\"vq_*\"]\n\n\
[[rule]]\nname = \"errors\"\nviolations = { sqlstates = [\"42501\", \"42P01\"], count = 3, within = \"10m\", per = \"role\" }\nroles = [\"vq_*\"]\n\n\
[[rule]]\nname = \"noted\"\nviolations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\naction = \"report\"\n\n\
[[rule]]\nname = \"connected\"\nlifetime = \"8h\"\nroles = [\"vq_*\"]\n\n\
[[rule]]\nname = \"nights\"\ndeny = [\"mon-sun 23:00-23:30\"]\ntimezone = \"UTC\"\nroles = [\"vq_*\"]\n\n\
[verify]\ntest_limit = \"3s\"\n";

#[test]
fn idle_rules_and_violations_are_planned_live_through_the_gateway_with_their_sqlstates() {
    let p = policy(RULES, "");
    let plans = planned(&p);
    // The report-only rule ends nothing, so it is not in the gateway's section.
    assert_eq!(
        plans.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 1, 2, 4, 5]
    );
    match &plans[0].1 {
        GatewayPlanned::Ended {
            canary,
            limit,
            sqlstate,
            ..
        } => {
            assert_eq!(*sqlstate, "57P05");
            assert_eq!(limit.to_string(), "3s");
            // The rule's index leads the name, so the test limit reaches the gateway too.
            assert_eq!(curfew_policy::canary_rule(&canary.role), Some(0));
            assert!(canary.role.starts_with("vq_") && canary.role.ends_with('g'));
            assert_eq!(canary.client_addr, Some([127, 0, 0, 1].into()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &plans[1].1,
        GatewayPlanned::Ended {
            sqlstate: "25P03",
            ..
        }
    ));
    match &plans[2].1 {
        GatewayPlanned::Violations {
            count,
            sqlstate,
            per_role,
            ..
        } => assert_eq!((*count, sqlstate.as_str(), *per_role), (3, "42501", true)),
        other => panic!("{other:?}"),
    }
    // A lifetime canary waits idle; the gateway ends it with 57P01.
    match &plans[3].1 {
        GatewayPlanned::Ended {
            canary, sqlstate, ..
        } => assert_eq!((canary.activity, *sqlstate), (Activity::Idle, "57P01")),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&plans[4].1, GatewayPlanned::NotTested { why } if why.contains("windows or session caps"))
    );
}

#[test]
fn a_gateway_serving_members_of_a_group_gets_canaries_in_that_group() {
    let p = policy(RULES, "serve_members_of = \"gateway_users\"\n");
    for (_, plan) in planned(&p) {
        match plan {
            GatewayPlanned::Ended { canary, .. } | GatewayPlanned::Violations { canary, .. } => {
                assert_eq!(canary.groups, vec!["gateway_users".to_owned()]);
            }
            GatewayPlanned::NotTested { .. } => {}
        }
    }
}

#[test]
fn a_gateway_requiring_tls_is_not_tested_and_says_why() {
    let p = policy(
        RULES,
        "require_tls = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    );
    for (_, plan) in planned(&p) {
        assert!(
            matches!(&plan, GatewayPlanned::NotTested { why } if why.contains("require_tls")),
            "{plan:?}"
        );
    }
}

#[test]
fn a_gateway_off_loopback_is_not_tested_in_plaintext_and_says_why() {
    let p = policy(
        RULES,
        "listen = \"10.1.2.3:6432\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    );
    for (_, plan) in planned(&p) {
        assert!(
            matches!(&plan, GatewayPlanned::NotTested { why } if why.contains("10.1.2.3:6432 is not on loopback")),
            "{plan:?}"
        );
    }
}

#[test]
fn a_limit_longer_than_max_wait_is_not_waited_through_the_gateway() {
    let p = policy(
        "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\nroles = [\"vq_*\"]\n",
        "",
    );
    let plans = planned(&p);
    assert!(
        matches!(&plans[0].1, GatewayPlanned::NotTested { why } if why.contains("--max-wait")),
        "{plans:?}"
    );
}

#[test]
fn an_unspecified_listen_address_is_reached_on_loopback() {
    let p = policy(
        RULES,
        "listen = \"0.0.0.0:7432\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    );
    assert_eq!(
        gateway_address(p.gateway.as_ref().unwrap())
            .unwrap()
            .to_string(),
        "127.0.0.1:7432"
    );
}

#[test]
fn through_says_which_enforcement_points_run() {
    assert!(Through::Both.direct() && Through::Both.gateway());
    assert!(Through::Direct.direct() && !Through::Direct.gateway());
    assert!(!Through::Gateway.direct() && Through::Gateway.gateway());
}

fn fatal(code: &str, message: &str) -> Ended {
    Ended::Error(Received {
        severity: "FATAL".to_owned(),
        code: code.to_owned(),
        message: message.to_owned(),
        detail: None,
        hint: Some("reconnect to continue".to_owned()),
    })
}

#[test]
fn only_the_gateways_fatal_naming_the_rule_at_the_limit_passes() {
    let p = policy(RULES, "");
    let rule = &p.rules[0];
    let limit = Duration::from_secs(3);
    let at = Duration::from_millis(3100);
    let gateway = fatal(
        "57P05",
        "terminating connection: idle for 3.0s; limit 3s (rule inactivity)",
    );
    let seen = judge_fatal(rule, "57P05", Some(&gateway), at, limit).unwrap();
    assert!(seen.contains("HINT: \"reconnect to continue\""), "{seen}");

    // PostgreSQL's own idle_session_timeout: the same SQLSTATE, not the rule.
    let own = fatal(
        "57P05",
        "terminating connection due to idle-session timeout",
    );
    assert!(
        judge_fatal(rule, "57P05", Some(&own), at, limit)
            .unwrap_err()
            .contains("does not name rule")
    );
    // The agent's termination.
    let agent = fatal(
        "57P01",
        "terminating connection due to administrator command",
    );
    assert!(
        judge_fatal(rule, "57P05", Some(&agent), at, limit)
            .unwrap_err()
            .contains("the agent")
    );
    // Another SQLSTATE, a bare close, nothing, or too early.
    assert!(judge_fatal(rule, "25P03", Some(&gateway), at, limit).is_err());
    let closed = Ended::Closed("the connection was closed".to_owned());
    assert!(
        judge_fatal(rule, "57P05", Some(&closed), at, limit)
            .unwrap_err()
            .contains("without the gateway's FATAL")
    );
    assert!(
        judge_fatal(rule, "57P05", None, at, limit)
            .unwrap_err()
            .contains("not ended")
    );
    assert!(
        judge_fatal(rule, "57P05", Some(&gateway), Duration::from_secs(1), limit)
            .unwrap_err()
            .contains("early")
    );
}
