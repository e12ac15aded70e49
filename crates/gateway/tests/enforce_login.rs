//! Logins refused by the policy at the gateway (issue 17): a deny window open now refuses an
//! authenticated login with 28000, the rule and when logins open again, the same over TLS and
//! plaintext; a wrong password still fails as before (nothing about the policy is told);
//! `login_refused` is audited.

mod common;

use std::sync::Arc;

use common::policy::{audit_text_when, refused_alike};
use common::{ALICE_PASSWORD, Harness, Setup, login_error};

/// A deny window from this UTC hour to two hours later: open now.
fn deny_now() -> Arc<curfew_policy::Policy> {
    common::policy::deny_now("maintenance", "")
}

#[tokio::test]
async fn a_deny_window_refuses_an_authenticated_login_with_28000_over_tls_and_plaintext() {
    let harness = Harness::start(
        "enforce-login",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    // Before the policy is enforced, alice logs in.
    harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("a login with no policy");
    harness.gateway.enforce(deny_now());

    let (plain_code, plain_message) = refused_alike(&harness, "alice", ALICE_PASSWORD).await;
    assert_eq!(plain_code, "28000", "{plain_message}");
    assert!(
        plain_message.starts_with("logins for role alice are closed by rule maintenance until "),
        "{plain_message}"
    );
    assert!(
        plain_message.contains(" UTC (deny window "),
        "{plain_message}"
    );

    // A wrong password learns nothing of the policy: the password failure, as before.
    let (code, message) = login_error(harness.plain("alice", "wrong").await);
    assert_eq!(code, "28P01", "{message}");
    assert!(!message.contains("maintenance"), "{message}");

    let path = harness.audit_log.clone().expect("an audit log");
    let text = audit_text_when(&path, |text| text.matches("\"login_refused\"").count() >= 2).await;
    let refused: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("\"login_refused\""))
        .collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert!(refused[0].contains("\"maintenance\""), "{}", refused[0]);
    assert!(refused[0].contains("\"alice\""), "{}", refused[0]);
    curfew_audit::verify(&path).expect("the audit log verifies");
}
