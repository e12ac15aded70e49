#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use curfew_backend::GatewayClient;
use curfew_policy::{BackendType, Engine, Plan, Policy, Session, SessionKey, SessionState};
use jiff::{SignedDuration, Timestamp};

use super::*;

const RULES: &str = r#"
[agent]
gateway_grace = "5s"

[[rule]]
name = "inactivity"
idle = "10m"
roles = ["kim", "lee"]

[[rule]]
name = "contractors"
idle = "1m"
member_of = ["contractor"]

[[rule]]
name = "one_each"
max_sessions = 1
roles = ["ann"]
"#;

fn policy() -> Policy {
    curfew_policy::parse_policy("t.toml", RULES, jiff::tz::db())
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

fn start() -> Timestamp {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

fn session(pid: i64, role: &str, member_of: &[&str], idle_since: Timestamp) -> Session {
    Session {
        pid,
        backend_start: start(),
        xact_start: None,
        state: SessionState::Idle,
        state_change: Some(idle_since),
        role: Arc::from(role),
        member_of: Arc::from(
            member_of
                .iter()
                .map(|m| (*m).to_owned())
                .collect::<Vec<_>>(),
        ),
        database: Arc::from("app"),
        client_addr: None.into(),
        application: Arc::from("psql"),
        backend_type: BackendType::ClientBackend,
    }
}

fn client() -> GatewayClient {
    GatewayClient {
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        port: 50123,
        gateway: "gw1:4242".to_owned(),
    }
}

fn plan(policy: &Policy, sessions: &[Session], now: Timestamp) -> Plan {
    Engine::new().evaluate_ahead(policy, sessions, now, SignedDuration::from_secs(60))
}

fn registered(keys: &[SessionKey]) -> BTreeMap<SessionKey, GatewayClient> {
    keys.iter().map(|k| (*k, client())).collect()
}

#[test]
fn the_grace_setting_defaults_to_ten_seconds_and_reads_from_agent() {
    assert_eq!(
        policy().agent.gateway_grace.get(),
        SignedDuration::from_secs(5)
    );
    let default = curfew_policy::parse_policy("t.toml", "", jiff::tz::db()).unwrap();
    assert_eq!(
        default.policy.agent.gateway_grace.get(),
        SignedDuration::from_secs(10)
    );
    let bad = curfew_policy::parse_policy(
        "t.toml",
        "[agent]\ngateway_grace = \"soon\"\n",
        jiff::tz::db(),
    );
    let Err(e) = bad else {
        panic!("a bad gateway_grace was accepted")
    };
    assert!(e.to_string().contains("gateway_grace"), "{e}");
}

#[test]
fn a_gateway_session_is_left_to_the_gateway_until_the_grace_runs_out() {
    let policy = policy();
    let grace = policy.agent.gateway_grace.get();
    let via_gateway = session(1, "kim", &[], start());
    let direct = session(2, "lee", &[], start());
    let sessions = [via_gateway.clone(), direct.clone()];
    let gateway = registered(&[via_gateway.key()]);
    let deadline = start() + SignedDuration::from_mins(10);

    // At the deadline: the direct session ends now; the gateway's is deferred to deadline + grace.
    let mut due = plan(&policy, &sessions, deadline);
    let left = leave_to_gateway(&policy, &gateway, grace, deadline, &mut due);
    let ended: Vec<_> = due.terminations.iter().map(|d| d.session).collect();
    assert_eq!(ended, [direct.key()]);
    assert!(left.missed.is_empty());
    assert_eq!(left.deferred.len(), 1);
    assert_eq!(left.deferred[0].at, deadline + grace);
    assert_eq!(left.deferred[0].decision.deadline, deadline);
    assert!(left.sessions.contains(&via_gateway.key()));

    // Ahead of the deadline: upcoming, and deferred the same way.
    let before = deadline - SignedDuration::from_secs(30);
    let mut ahead = plan(&policy, &sessions, before);
    let left = leave_to_gateway(&policy, &gateway, grace, before, &mut ahead);
    let upcoming: Vec<_> = ahead.upcoming.iter().map(|d| d.session).collect();
    assert_eq!(upcoming, [direct.key()]);
    assert_eq!(left.deferred[0].at, deadline + grace);

    // A millisecond before the grace runs out: still the gateway's.
    let almost = deadline + grace - SignedDuration::from_millis(1);
    let mut late = plan(&policy, &sessions, almost);
    let left = leave_to_gateway(&policy, &gateway, grace, almost, &mut late);
    assert_eq!(late.terminations.len(), 1);
    assert!(left.missed.is_empty());

    // The grace ran out: the agent ends it, marked missed.
    let after = deadline + grace;
    let mut missed = plan(&policy, &sessions, after);
    let left = leave_to_gateway(&policy, &gateway, grace, after, &mut missed);
    let ended: Vec<_> = missed.terminations.iter().map(|d| d.session).collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.contains(&via_gateway.key()));
    assert!(left.missed.contains(&via_gateway.key()));
    assert!(!left.missed.contains(&direct.key()));
    assert!(left.deferred.is_empty());
}

#[test]
fn session_caps_get_no_grace_and_member_of_rules_do() {
    let policy = policy();
    let grace = policy.agent.gateway_grace.get();
    // A member_of rule: the gateway reads memberships at login and ends it itself.
    let contractor = session(1, "zed", &["contractor"], start());
    // A session cap: counted across sessions, the agent's.
    let ann_old = session(2, "ann", &[], start());
    let mut ann_new = session(3, "ann", &[], start());
    ann_new.backend_start = start() + SignedDuration::from_secs(1);
    let sessions = [contractor.clone(), ann_old, ann_new.clone()];
    let gateway = registered(&[contractor.key(), ann_new.key()]);
    let now = start() + SignedDuration::from_mins(1) + SignedDuration::from_secs(1);
    let mut due = plan(&policy, &sessions, now);
    assert_eq!(due.terminations.len(), 2, "{:?}", due.terminations);
    let left = leave_to_gateway(&policy, &gateway, grace, now, &mut due);
    let ended: Vec<_> = due.terminations.iter().map(|d| d.session).collect();
    assert_eq!(ended, vec![ann_new.key()], "the cap stays the agent's");
    assert_eq!(left.deferred.len(), 1, "{left:?}");
    assert_eq!(left.deferred[0].decision.session, contractor.key());
    assert!(left.missed.is_empty());
}

#[test]
fn warnings_of_deferred_rules_are_the_gateways() {
    let text = "[[rule]]\nname = \"inactivity\"\nidle = \"10m\"\nwarn = \"2m\"\n";
    let policy = curfew_policy::parse_policy("t.toml", text, jiff::tz::db())
        .unwrap()
        .policy;
    let grace = policy.agent.gateway_grace.get();
    let via_gateway = session(1, "kim", &[], start());
    let direct = session(2, "lee", &[], start());
    let sessions = [via_gateway.clone(), direct.clone()];
    let now = start() + SignedDuration::from_mins(9);
    let mut warned = plan(&policy, &sessions, now);
    assert_eq!(warned.warnings.len(), 2);
    let left = leave_to_gateway(
        &policy,
        &registered(&[via_gateway.key()]),
        grace,
        now,
        &mut warned,
    );
    let warnings: Vec<_> = warned.warnings.iter().map(|d| d.session).collect();
    assert_eq!(warnings, [direct.key()]);
    assert!(left.sessions.contains(&via_gateway.key()));
}

#[test]
fn without_gateway_sessions_the_plan_is_untouched() {
    let policy = policy();
    let sessions = [session(1, "kim", &[], start())];
    let now = start() + SignedDuration::from_mins(10);
    let mut due = plan(&policy, &sessions, now);
    let before = due.clone();
    let left = leave_to_gateway(
        &policy,
        &BTreeMap::new(),
        SignedDuration::ZERO,
        now,
        &mut due,
    );
    assert_eq!(due, before);
    assert_eq!(left, Left::default());
}
