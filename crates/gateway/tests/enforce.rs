//! The policy enforced in the gateway (issue 17): an idle rule ends an idle session with
//! PostgreSQL's own 57P05, the rule and the reason, and a HINT; a statement before the
//! deadline keeps the session; idle in a transaction is 25P03; a running statement is never
//! idle; the audit log records the end and verifies.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::policy::{audit_text_when, db, ended_with, terminated_record};
use common::{ALICE_PASSWORD, Harness, Setup};
use curfew_policy::Policy;

fn policy(rule: &str) -> Arc<Policy> {
    common::policy::policy(&format!("[[rule]]\nname = \"inactivity\"\n{rule}\n"))
}

#[tokio::test]
async fn an_idle_session_is_ended_with_57p05_the_rule_the_reason_and_a_hint() {
    let harness = Harness::start(
        "enforce-idle",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    harness.gateway.enforce(policy("idle = \"2s\""));
    let alice = harness.watched("alice", ALICE_PASSWORD).await;
    let (client, connection) = (alice.client, alice.connection);
    let started = Instant::now();
    client.simple_query("SELECT 1").await.expect("a query");
    let error = ended_with(connection, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    let db = db(&error);
    assert_eq!(db.code().code(), "57P05", "{db:?}");
    assert_eq!(db.severity(), "FATAL");
    assert!(
        db.message().contains("(rule inactivity)"),
        "{}",
        db.message()
    );
    assert!(db.message().contains("idle for 2"), "{}", db.message());
    assert!(db.message().contains("limit 2s"), "{}", db.message());
    assert_eq!(db.hint(), Some("reconnect to continue"));
    drop(client);
    let metrics = harness.gateway.metrics_text();
    assert!(
        metrics.contains("curfew_gateway_policy_sessions_ended_total{rule=\"inactivity\"} 1\n"),
        "{metrics}"
    );

    // The audit log has the end with its rule and reason, and verifies.
    let path = harness.audit_log.clone().expect("an audit log");
    let (_, line) = terminated_record(&path).await;
    let line = line.as_str();
    assert!(line.contains("\"inactivity\""), "{line}");
    assert!(line.contains("idle for 2"), "{line}");
    assert!(line.contains("57P05"), "{line}");
    // The deadline and the lateness, as the agent's records have them (loosely: a loaded
    // machine may be late, never early).
    let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
    let detail = &record["detail"];
    assert!(detail["deadline"].is_string(), "{line}");
    let late = detail["lateness_ms"].as_f64().expect("lateness_ms");
    assert!((0.0..5_000.0).contains(&late), "{line}");
    curfew_audit::verify(&path).expect("the audit log verifies");
}

#[tokio::test]
async fn a_statement_before_the_deadline_keeps_the_session() {
    let harness = Harness::start("enforce-active", Setup::default()).await;
    harness.gateway.enforce(policy("idle = \"3s\""));
    let alice = harness.watched("alice", ALICE_PASSWORD).await;
    let (client, connection) = (alice.client, alice.connection);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client
            .simple_query("SELECT 1")
            .await
            .expect("the session lives");
    }
    assert!(!connection.is_finished());
}

#[tokio::test]
async fn idle_in_a_transaction_is_ended_with_25p03_and_the_rollback_is_said() {
    let harness = Harness::start("enforce-in-transaction", Setup::default()).await;
    harness
        .gateway
        .enforce(policy("idle_in_transaction = \"2s\""));
    let alice = harness.watched("alice", ALICE_PASSWORD).await;
    let (client, connection) = (alice.client, alice.connection);
    client.simple_query("BEGIN").await.expect("begin");
    let error = ended_with(connection, Duration::from_secs(10)).await;
    let db = db(&error);
    assert_eq!(db.code().code(), "25P03", "{db:?}");
    assert_eq!(
        db.hint(),
        Some("reconnect to continue; unsaved work in the open transaction was rolled back")
    );
}

#[tokio::test]
async fn a_running_statement_is_not_idle() {
    let harness = Harness::start("enforce-running", Setup::default()).await;
    harness.gateway.enforce(policy("idle = \"2s\""));
    let alice = harness.watched("alice", ALICE_PASSWORD).await;
    let (client, connection) = (alice.client, alice.connection);
    client
        .simple_query("SELECT pg_sleep(4)")
        .await
        .expect("the statement runs past the idle limit");
    assert!(!connection.is_finished());
    // Idle afterwards: ended then.
    let error = ended_with(connection, Duration::from_secs(10)).await;
    let db = db(&error);
    assert_eq!(db.code().code(), "57P05", "{db:?}");
}

#[tokio::test]
async fn a_warning_notice_arrives_before_the_end_and_is_recorded() {
    let harness = Harness::start(
        "enforce-warn",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    harness
        .gateway
        .enforce(policy("idle = \"4s\"\nwarn = \"2s\""));
    // Before the login: the idle clock starts at its ReadyForQuery, after this.
    let started = Instant::now();
    let mut alice = harness.watched("alice", ALICE_PASSWORD).await;
    let error = ended_with(alice.connection, Duration::from_secs(15)).await;
    let ended_at = started.elapsed();
    drop(alice.client);
    let db = db(&error);
    assert_eq!(db.code().code(), "57P05");
    let mut notices = Vec::new();
    while let Ok((notice, at)) = alice.notices.try_recv() {
        notices.push((notice, at.duration_since(started)));
    }
    assert_eq!(notices.len(), 1, "{notices:?}");
    let (notice, at) = &notices[0];
    assert_eq!(notice.severity(), "WARNING");
    assert!(
        notice.message().contains("rule inactivity"),
        "{}",
        notice.message()
    );
    assert!(
        notice.message().contains("will be ended in"),
        "{}",
        notice.message()
    );
    assert_eq!(notice.hint(), Some("run any statement to keep the session"));
    // Warned at 2 s, ended at 4 s of idle; loosely, as the test's task sees them.
    assert!(*at >= Duration::from_millis(1900), "{at:?}");
    assert!(ended_at >= Duration::from_millis(3900), "{ended_at:?}");
    assert!(
        *at + Duration::from_millis(1000) <= ended_at,
        "{at:?} {ended_at:?}"
    );
    let metrics = harness.gateway.metrics_text();
    assert!(
        metrics.contains("curfew_gateway_policy_warnings_total{rule=\"inactivity\"} 1\n"),
        "{metrics}"
    );

    let path = harness.audit_log.clone().expect("an audit log");
    let text = audit_text_when(&path, |text| text.contains("\"session_terminated\"")).await;
    let warned = text
        .lines()
        .find(|line| line.contains("\"session_warned\""))
        .unwrap_or_else(|| panic!("no session_warned in {text}"));
    assert!(warned.contains("\"inactivity\""), "{warned}");
    curfew_audit::verify(&path).expect("the audit log verifies");
}

/// COPY FROM STDIN over the extended protocol, as tokio-postgres (and libpq's
/// PQexecParams) send it, may carry Syncs the server ignores during the copy: the session is
/// idle once the copy is done, and an idle rule still ends it.
#[tokio::test]
async fn a_session_idle_after_a_copy_in_is_still_ended() {
    use futures_util::SinkExt;

    let harness = Harness::start("enforce-copy", Setup::default()).await;
    harness.gateway.enforce(policy("idle = \"2s\""));
    let alice = harness.watched("alice", ALICE_PASSWORD).await;
    let (client, connection) = (alice.client, alice.connection);
    client
        .batch_execute("CREATE TEMP TABLE copied (n int)")
        .await
        .expect("a temporary table");
    let sink = client
        .copy_in::<_, bytes::Bytes>("COPY copied FROM STDIN")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    for n in 0..100 {
        sink.send(bytes::Bytes::from(format!("{n}\n")))
            .await
            .expect("copy data");
    }
    assert_eq!(sink.finish().await.expect("copy done"), 100);
    let started = Instant::now();
    let error = ended_with(connection, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(db(&error).code().code(), "57P05", "{error}");
}
