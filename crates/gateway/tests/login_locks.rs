//! Login locks at the gateway (issue 17), through the real auth function: a role whose login
//! curfew disabled for an incident lock in force is authenticated and then refused with 28000
//! naming the lock, over TLS and plaintext alike; a lock recorded but not applied yet (the role
//! still LOGIN) refuses too; a role NOLOGIN for any other reason fails exactly like a wrong
//! password; a wrong password learns nothing of the lock; each refusal is audited.

mod common;

use std::sync::Arc;

use common::policy::{audit_text_when, lock_incident, refused_alike};
use common::{ALICE_PASSWORD, Harness, Setup, login_error};

/// A deny window from this UTC hour to two hours later, for bob alone: open now.
fn deny_bob_now() -> Arc<curfew_policy::Policy> {
    common::policy::deny_now("maintenance", "roles = [\"bob\"]")
}

#[tokio::test]
async fn locked_roles_are_refused_with_the_lock_after_authentication_and_others_learn_nothing() {
    let harness = Harness::start(
        "login-locks",
        Setup {
            auth_function: true,
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    harness
        .cluster
        .psql(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE bob LOGIN PASSWORD 'bob-secret';
             CREATE ROLE carol LOGIN PASSWORD 'carol-secret';",
        )
        .expect("roles");
    harness.gateway.enforce(deny_bob_now());
    harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("alice before the lock");

    // An incident lock applied: alice is NOLOGIN because curfew made her so.
    lock_incident(&harness, "alice", "laptop stolen");
    let (plain_code, plain_message) = refused_alike(&harness, "alice", ALICE_PASSWORD).await;
    assert_eq!(plain_code, "28000", "{plain_message}");
    assert_eq!(
        plain_message,
        "logins for role alice are closed by an incident lock until 2099-01-01 12:00 UTC \
         (reason: laptop stolen)"
    );
    // A wrong password learns nothing of the lock.
    let (code, message) = login_error(harness.plain("alice", "wrong").await);
    assert_eq!(code, "28P01", "{message}");
    assert!(!message.contains("lock"), "{message}");

    // A deny window of the policy, over TLS and plaintext.
    let (code, message) = refused_alike(&harness, "bob", "bob-secret").await;
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.starts_with("logins for role bob are closed by rule maintenance until "),
        "{message}"
    );

    // A window lock recorded but not applied yet: carol is still LOGIN.
    harness
        .cluster
        .psql(
            "INSERT INTO curfew.lock (role_oid, role_name, kind, rule, reason, created_by)
               SELECT oid, rolname, 'window', 'after-hours', 'outside mon-fri 07:00-19:00',
                      'agent' FROM pg_roles WHERE rolname = 'carol';",
        )
        .expect("the window lock");
    let (code, message) = login_error(harness.plain("carol", "carol-secret").await);
    assert_eq!(code, "28000", "{message}");
    assert_eq!(
        message,
        "logins for role carol are closed by rule after-hours (a window lock curfew's agent \
         recorded: outside mon-fri 07:00-19:00)"
    );

    // NOLOGIN for another reason: the right password fails as a wrong one does.
    let right = login_error(harness.plain("nologin_role", "nologin-secret").await);
    let wrong = login_error(harness.plain("nologin_role", "not-it").await);
    assert_eq!(right, wrong);
    assert_eq!(right.0, "28P01", "{}", right.1);
    // And so does a role curfew disabled whose lock is no longer in force.
    harness
        .cluster
        .psql("UPDATE curfew.lock SET released_at = now(), released_by = 'test' WHERE role_name = 'alice';")
        .expect("release");
    let right = login_error(harness.plain("alice", ALICE_PASSWORD).await);
    let wrong = login_error(harness.plain("alice", "not-it").await);
    assert_eq!(right, wrong);
    assert_eq!(right.0, "28P01", "{}", right.1);
    // Restored, alice logs in again.
    harness
        .cluster
        .psql("DELETE FROM curfew.disabled_login; ALTER ROLE alice LOGIN;")
        .expect("restore");
    harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("alice after the lock");

    let path = harness.audit_log.clone().expect("an audit log");
    let text = audit_text_when(&path, |text| text.matches("\"login_refused\"").count() >= 5).await;
    let refused: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("\"login_refused\""))
        .collect();
    assert_eq!(refused.len(), 5, "{text}");
    assert!(refused[0].contains("\"login-lock\""), "{}", refused[0]);
    assert!(refused[0].contains("laptop stolen"), "{}", refused[0]);
    assert!(refused[2].contains("\"maintenance\""), "{}", refused[2]);
    assert!(refused[4].contains("\"after-hours\""), "{}", refused[4]);
    curfew_audit::verify(&path).expect("the audit log verifies");
}
