//! The worker loop and sessions curfew gateway registered, on the in-memory backend and tokio's
//! paused clock: the agent leaves them to the gateway for the rules the gateway enforces until
//! `[agent] gateway_grace` past the deadline, then ends them itself and says the gateway did
//! not; a direct session gets no grace.

#![allow(clippy::unwrap_used)]

mod memory_loop;

use std::net::{IpAddr, Ipv4Addr};

use curfew_backend::GatewayClient;
use curfew_backend::memory::MemoryServer;
use jiff::SignedDuration;
use memory_loop::{Agent, about, at, ends_of, intent_and_outcome, run_until, start_time};

const RULES: &str = "[[rule]]\nname = \"idle\"\nidle = \"30s\"\nroles = [\"kim\", \"lee\"]\n\n[[rule]]\nname = \"contractors\"\nidle = \"20s\"\nmember_of = [\"contractor\"]\n";

/// The loop's policy for `db1` (as `memory_loop::policy`), with a 5 s gateway grace.
fn gateway_policy(interval: &str) -> curfew_policy::LoadedPolicy {
    let text = format!(
        "[agent]\ninterval = \"{interval}\"\ngateway_grace = \"5s\"\n\n[[target]]\nname = \"db1\"\nurl = \"postgresql://curfew_agent@127.0.0.1:5432/postgres\"\n\n{RULES}"
    );
    curfew_policy::LoadedPolicy::from_bytes("loop.toml", text.into_bytes()).unwrap()
}

fn client(port: u16) -> GatewayClient {
    GatewayClient {
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        port,
        gateway: "gw1:4242".to_owned(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_gateway_session_the_gateway_ends_is_never_signalled_by_the_agent() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    server.register_gateway(kim, client(50001));
    let lee = server.login("lee", "app");
    let agent = Agent::start(&server, gateway_policy("1m"), "gateway-ends").await;

    // The direct session is ended at its deadline; the gateway's is left alone.
    run_until(&server, 30.5).await;
    assert!(
        server.session(lee).is_none(),
        "the direct session was not ended"
    );
    assert!(server.session(kim).is_some());
    assert!(
        ends_of(&server, kim).is_empty(),
        "the agent raced the gateway"
    );
    // The gateway ends it 3 ms after the deadline (its FATAL, its record).
    run_until(&server, 30.503).await;
    server.remove(kim);
    run_until(&server, 40.0).await;
    assert!(ends_of(&server, kim).is_empty());

    let records = agent.stop_verified().await;
    assert!(about(&records, "termination_intent", kim).is_empty());
    assert_eq!(about(&records, "session_terminated", lee).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_gateway_that_misses_the_deadline_is_no_exemption() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    server.register_gateway(kim, client(50002));
    let agent = Agent::start(&server, gateway_policy("1m"), "gateway-misses").await;
    let deadline = at(30.0);

    run_until(&server, 34.9).await;
    assert!(ends_of(&server, kim).is_empty(), "ended inside the grace");
    run_until(&server, 36.0).await;
    assert!(server.session(kim).is_none(), "not ended after the grace");
    let signalled = server.signalled();
    assert_eq!(signalled.len(), 1);
    let (_, when) = signalled[0];
    let grace_end = deadline + SignedDuration::from_secs(5);
    assert!(
        when >= grace_end && when.duration_since(grace_end) <= SignedDuration::from_millis(5),
        "signalled at {when}, the grace ended at {grace_end}"
    );

    let records = agent.stop_verified().await;
    let (intent, outcome) = intent_and_outcome(&records, kim, "session_terminated");
    let reason = intent.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("curfew gateway gw1:4242 did not end it within 5s of the deadline"),
        "{reason}"
    );
    // The deadline is the rule's: the record shows how late the end was.
    assert_eq!(
        intent.detail.as_ref().unwrap()["deadline"],
        deadline.to_string()
    );
    let detail = outcome.detail.as_ref().unwrap();
    assert_eq!(detail["gateway_client"], "10.0.0.7:50002");
    assert!(detail["lateness_ms"].as_f64().unwrap() >= 5000.0);
}

#[tokio::test(start_paused = true)]
async fn a_member_of_rule_is_left_to_the_gateway_too() {
    // The gateway reads memberships at login: a member_of rule is its to enforce, and the
    // agent's only once the grace has passed.
    let server = MemoryServer::new("db1", start_time());
    server.add_role("zed", false, &["contractor"]);
    let zed = server.login("zed", "app");
    server.register_gateway(zed, client(50003));
    let agent = Agent::start(&server, gateway_policy("1m"), "gateway-member-of").await;

    run_until(&server, 24.5).await;
    assert!(
        server.session(zed).is_some(),
        "a member_of rule did not wait for the gateway"
    );
    run_until(&server, 25.5).await;
    assert!(server.session(zed).is_none(), "not ended after the grace");
    let records = agent.stop_verified().await;
    let (intent, _) = intent_and_outcome(&records, zed, "session_terminated");
    assert_eq!(intent.rule.as_deref(), Some("contractors"));
    assert!(
        intent
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("gateway"),
        "{:?}",
        intent.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_inside_the_grace_does_not_end_it_early() {
    // Snapshots every second through the grace: each sees the session due and leaves it.
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    server.register_gateway(kim, client(50004));
    let agent = Agent::start(&server, gateway_policy("1s"), "gateway-snapshots").await;
    run_until(&server, 34.9).await;
    assert!(ends_of(&server, kim).is_empty(), "ended inside the grace");
    run_until(&server, 35.5).await;
    assert!(server.session(kim).is_none());
    let records = agent.stop_verified().await;
    assert_eq!(about(&records, "termination_intent", kim).len(), 1);
}
