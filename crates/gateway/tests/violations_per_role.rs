//! `per = "role"` violations counted across gateway instances (issue 17), through the real
//! session registry (`curfew.count_gateway_violation`): an error through gateway A and one
//! through gateway B make the role's count 2, so B's session gets the WARNING and the third,
//! through A, ends A's session with the FATAL; B's session lives on (only the session that
//! reaches the count is ended). A `per = "session"` rule is unchanged. When the shared count
//! fails, the gateway's own count decides, and the metric and the audit record say so.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::policy::{
    Watched, db, ended_with, fails, next_notice, terminated_record, until_count_is, watched_with,
};
use common::{ALICE_PASSWORD, Harness, Setup};
use curfew_policy::Policy;
use tokio_postgres::config::SslMode;

/// 42501 (insufficient_privilege) for any ordinary role.
const DENIED: &str = "SELECT rolpassword FROM pg_authid";

fn policy(per: &str) -> Arc<Policy> {
    common::policy::policy(&format!(
        "[[rule]]\nname = \"misbehaviour\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\", per = \"{per}\" }}\n[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n[gateway]\n"
    ))
}

async fn two_gateways(
    name: &str,
    per: &str,
) -> (Harness, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let harness = Harness::start(
        name,
        Setup {
            auth_function: true,
            audit_log: true,
            // Plaintext on the server leg: gateway B connects so.
            server_tls: false,
            ..Setup::default()
        },
    )
    .await;
    harness.gateway.enforce(policy(per));
    let (b, stop_b) = harness.another_gateway_enforcing(Some(policy(per))).await;
    (harness, b, stop_b)
}

/// A session of alice's through the gateway at `addr`, its notices collected.
async fn alice_at(addr: SocketAddr) -> Watched {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("alice")
        .password(ALICE_PASSWORD)
        .dbname("postgres")
        .ssl_mode(SslMode::Disable);
    watched_with(&config).await
}

/// The audit log's `session_terminated` line.
async fn terminated_line(harness: &Harness) -> String {
    let path = harness.audit_log.clone().expect("an audit log");
    let (text, line) = terminated_record(&path).await;
    assert!(!text.contains("pg_authid"), "a statement's text in the log");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roles_errors_through_two_gateways_add_up() {
    let (harness, b, _stop_b) = two_gateways("violations-per-role", "role").await;
    let via_a = alice_at(harness.addr).await;
    let mut via_b = alice_at(b).await;
    assert_eq!(fails(&via_a.client, DENIED).await, "42501");
    // A's error is counted in a task of its own, after the client has it: without this wait,
    // B's could be counted first on a loaded machine, and A's session get the warning.
    until_count_is(
        &harness,
        "SELECT count(*) FROM curfew.gateway_violations",
        1,
    )
    .await;
    assert_eq!(fails(&via_b.client, DENIED).await, "42501");
    // Two of the role's, one on each gateway: B, which alone saw one, warns.
    assert_eq!(
        next_notice(&mut via_b).await.expect("a WARNING through B"),
        "WARNING 01000 one more error with SQLSTATE 42501 within 10m ends this session (its role's errors on every gateway count): 2 counted; limit 3 (rule misbehaviour)"
    );
    // The third, through A (whose own count is 2): A's session ends.
    assert_eq!(fails(&via_a.client, DENIED).await, "42501");
    let error = ended_with(via_a.connection, Duration::from_secs(10)).await;
    let fatal = db(&error);
    assert_eq!((fatal.severity(), fatal.code().code()), ("FATAL", "57P01"));
    assert_eq!(
        fatal.message(),
        "terminating connection: 3 errors 42501 by its role's sessions on every gateway within 10m; limit 3 (rule misbehaviour)"
    );
    // The session that did not reach the count is not ended.
    via_b.lives().await;

    let line = terminated_line(&harness).await;
    assert!(line.contains("\"counted_by\":\"every_gateway\""), "{line}");
    assert!(
        line.contains("\"sqlstates_counted\":[\"42501\",\"42501\",\"42501\"]"),
        "{line}"
    );
    let metrics = harness.gateway.metrics_text();
    assert!(
        !metrics.contains("violation_count_fallbacks_total{"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_session_rule_still_counts_each_session_alone() {
    let (harness, b, _stop_b) = two_gateways("violations-per-session", "session").await;
    let via_a = alice_at(harness.addr).await;
    let via_b = alice_at(b).await;
    for _ in 0..2 {
        assert_eq!(fails(&via_a.client, DENIED).await, "42501");
        assert_eq!(fails(&via_b.client, DENIED).await, "42501");
    }
    via_a.lives().await;
    via_b.lives().await;
    let rows = harness
        .cluster
        .psql("SELECT count(*) FROM curfew.gateway_violations")
        .expect("the table");
    assert_eq!(rows.trim(), "0", "nothing recorded for a per-session rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shared_count_falls_back_to_the_gateways_own_and_says_so() {
    let (harness, _b, _stop_b) = two_gateways("violations-fallback", "role").await;
    harness
        .cluster
        .psql("REVOKE EXECUTE ON FUNCTION curfew.count_gateway_violation(text, text, text, int4, text) FROM curfew_gateway")
        .expect("revoke");
    let mut via_a = alice_at(harness.addr).await;
    assert_eq!(fails(&via_a.client, DENIED).await, "42501");
    assert_eq!(fails(&via_a.client, DENIED).await, "42501");
    assert!(
        next_notice(&mut via_a)
            .await
            .expect("a WARNING from the gateway's own count")
            .contains("2 counted; limit 3")
    );
    assert_eq!(fails(&via_a.client, DENIED).await, "42501");
    let error = ended_with(via_a.connection, Duration::from_secs(10)).await;
    assert_eq!(db(&error).code().code(), "57P01");
    // The third error: this gateway's own count is at the limit, which every gateway's can
    // only exceed, so the session ends without waiting for the database.
    let line = terminated_line(&harness).await;
    assert!(
        line.contains("\"counted_by\":\"this_gateway_first\""),
        "{line}"
    );
    assert!(line.contains("42501"), "{line}");
    let metrics = harness.gateway.metrics_text();
    assert!(
        metrics
            .contains("curfew_gateway_violation_count_fallbacks_total{rule=\"misbehaviour\"} 2\n"),
        "{metrics}"
    );
}
