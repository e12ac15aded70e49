//! `violations` rules enforced in the gateway (issue 17), against a real server: the server's
//! ErrorResponses with a listed SQLSTATE are counted, a WARNING one before the count, and at
//! the count the session ends with FATAL 57P01 naming the rule and the errors counted, and a
//! `session_terminated` record listing the SQLSTATEs; other codes do not count; `per = "role"`
//! counts across the role's sessions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::policy::{Watched, db, ended_with, fails, next_notice, terminated_record};
use common::{ALICE_PASSWORD, Harness, Setup};
use curfew_policy::Policy;

/// 42501 (insufficient_privilege) for any ordinary role.
const DENIED: &str = "SELECT rolpassword FROM pg_authid";
/// 42P01 (undefined_table): not in the rule's list.
const MISSING: &str = "SELECT * FROM no_such_table_at_all";

fn policy(per: &str) -> Arc<Policy> {
    policy_with(per, "")
}

/// With `extra` lines in the rule (`message = ...`).
fn policy_with(per: &str, extra: &str) -> Arc<Policy> {
    common::policy::policy(&format!(
        "[[rule]]\nname = \"misbehaviour\"\n{extra}violations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\", per = \"{per}\" }}\n[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n[gateway]\n"
    ))
}

/// A session of alice's, its notices collected.
async fn alice(harness: &Harness) -> Watched {
    harness.watched("alice", ALICE_PASSWORD).await
}

#[tokio::test]
async fn three_permission_errors_end_the_session_with_the_reason_after_a_warning() {
    let harness = Harness::start(
        "violations-end",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    harness.gateway.enforce(policy("session"));
    let mut alice = alice(&harness).await;
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    // The warning follows the second error.
    let notice = next_notice(&mut alice)
        .await
        .expect("a WARNING after the second error");
    assert_eq!(
        notice,
        "WARNING 01000 one more error with SQLSTATE 42501 within 10m ends this session: 2 counted; limit 3 (rule misbehaviour)"
    );
    // The third ends the session: the client sees its statement's error, then the FATAL.
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    let error = ended_with(alice.connection, Duration::from_secs(10)).await;
    let db = db(&error);
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(db.code().code(), "57P01", "{db:?}");
    assert_eq!(
        db.message(),
        "terminating connection: 3 errors 42501 by this session within 10m; limit 3 (rule misbehaviour)"
    );
    assert_eq!(db.hint(), Some("reconnect to continue"));

    // /metrics counts the warning, the end, and the errors by rule and SQLSTATE.
    let metrics = harness.gateway.metrics_text();
    for line in [
        "curfew_gateway_policy_warnings_total{rule=\"misbehaviour\"} 1\n",
        "curfew_gateway_policy_sessions_ended_total{rule=\"misbehaviour\"} 1\n",
        "curfew_gateway_violations_total{rule=\"misbehaviour\",sqlstate=\"42501\"} 3\n",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }

    // The audit record names the rule and the codes counted, not the statements.
    let path = harness.audit_log.clone().expect("an audit log");
    let (text, line) = terminated_record(&path).await;
    let line = line.as_str();
    assert!(line.contains("\"misbehaviour\""), "{line}");
    assert!(
        line.contains("\"sqlstates_counted\":[\"42501\",\"42501\",\"42501\"]"),
        "{line}"
    );
    assert!(!text.contains("pg_authid"), "a statement's text in the log");
    // The warning at count - 1 is recorded too: no deadline, the errors counted.
    let warned = text
        .lines()
        .find(|line| line.contains("\"session_warned\""))
        .unwrap_or_else(|| panic!("no session_warned in {text}"));
    let record: serde_json::Value = serde_json::from_str(warned).expect("a JSON record");
    assert_eq!(record["rule"], "misbehaviour", "{warned}");
    assert_eq!(record["detail"]["errors_counted"], 2, "{warned}");
    assert_eq!(record["detail"]["limit"], 3, "{warned}");
    assert!(record["detail"].get("deadline").is_none(), "{warned}");
    curfew_audit::verify(&path).expect("the audit log verifies");
}

#[tokio::test]
async fn two_errors_and_errors_of_other_codes_do_not_end_the_session() {
    let harness = Harness::start("violations-two", Setup::default()).await;
    harness.gateway.enforce(policy("session"));
    let mut alice = alice(&harness).await;
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    for _ in 0..5 {
        assert_eq!(fails(&alice.client, MISSING).await, "42P01");
    }
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    assert!(next_notice(&mut alice).await.is_some());
    for _ in 0..3 {
        alice.lives().await;
    }
    // Errors of other codes are not counted, nor is any session ended.
    let metrics = harness.gateway.metrics_text();
    assert!(
        metrics.contains(
            "curfew_gateway_violations_total{rule=\"misbehaviour\",sqlstate=\"42501\"} 2\n"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("42P01"), "{metrics}");
    assert!(
        !metrics.contains("curfew_gateway_policy_sessions_ended_total{"),
        "{metrics}"
    );
}

#[tokio::test]
async fn per_role_counts_across_the_roles_sessions() {
    let harness = Harness::start("violations-role", Setup::default()).await;
    harness.gateway.enforce(policy("role"));
    let first = alice(&harness).await;
    let second = alice(&harness).await;
    assert_eq!(fails(&first.client, DENIED).await, "42501");
    assert_eq!(fails(&second.client, DENIED).await, "42501");
    // The third of the role's, in the first session: that session ends.
    assert_eq!(fails(&first.client, DENIED).await, "42501");
    let error = ended_with(first.connection, Duration::from_secs(10)).await;
    let db = db(&error);
    assert_eq!(db.code().code(), "57P01", "{db:?}");
    assert!(
        db.message().contains("by its role's sessions"),
        "{}",
        db.message()
    );
    // The other session lives on, its count started afresh.
    second.lives().await;
}

#[tokio::test]
async fn without_the_policy_errors_are_only_forwarded() {
    let harness = Harness::start("violations-none", Setup::default()).await;
    let alice = alice(&harness).await;
    for _ in 0..4 {
        assert_eq!(fails(&alice.client, DENIED).await, "42501");
    }
    alice.lives().await;
}

#[tokio::test]
async fn a_rules_message_is_what_the_client_reads_and_the_detail_names_the_rule() {
    let harness = Harness::start("violations-message", Setup::default()).await;
    harness.gateway.enforce(policy_with(
        "session",
        "message = \"Session closed under ACME policy 4.2; call the service desk\"\n",
    ));
    let alice = alice(&harness).await;
    for _ in 0..3 {
        assert_eq!(fails(&alice.client, DENIED).await, "42501");
    }
    let error = ended_with(alice.connection, Duration::from_secs(10)).await;
    let db = db(&error);
    assert_eq!(db.code().code(), "57P01", "{db:?}");
    assert_eq!(
        db.message(),
        "Session closed under ACME policy 4.2; call the service desk"
    );
    assert_eq!(
        db.detail(),
        Some(
            "terminating connection: 3 errors 42501 by this session within 10m; limit 3 (rule misbehaviour)"
        )
    );
}

#[tokio::test]
async fn with_include_statement_the_end_quotes_the_statements_counted_simple_and_extended() {
    let harness = Harness::start(
        "violations-quoted",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    harness.gateway.enforce(common::policy::policy(
        "[[rule]]\nname = \"misbehaviour\"\nviolations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\n[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n[gateway]\n[audit]\ninclude_statement = true\n",
    ));
    let alice = alice(&harness).await;
    let extended = "SELECT rolpassword FROM pg_authid WHERE rolname = $1";
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    // Not counted: not quoted.
    assert_eq!(fails(&alice.client, MISSING).await, "42P01");
    // The extended protocol (Parse, Bind, Execute, Sync), as most drivers send.
    let error = alice
        .client
        .query(extended, &[&"alice"])
        .await
        .expect_err("denied");
    assert_eq!(db(&error).code().code(), "42501");
    assert_eq!(fails(&alice.client, DENIED).await, "42501");
    ended_with(alice.connection, Duration::from_secs(10)).await;

    let path = harness.audit_log.clone().expect("an audit log");
    let (_, line) = terminated_record(&path).await;
    let line = line.as_str();
    let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
    let quoted: Vec<(String, String)> = record["detail"]["statements"]
        .as_array()
        .unwrap_or_else(|| panic!("no statements in {line}"))
        .iter()
        .map(|s| {
            (
                s["sqlstate"].as_str().unwrap_or_default().to_owned(),
                s["statement"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [DENIED, extended, DENIED]
        .iter()
        .map(|s| ("42501".to_owned(), (*s).to_owned()))
        .collect();
    assert_eq!(quoted, want, "{line}");
    assert!(!line.contains("no_such_table"), "{line}");
    curfew_audit::verify(&path).expect("the audit log verifies");
}
