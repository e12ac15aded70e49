//! What the gateway logs: who and why, never a secret (password, verifier, proof, key).

mod common;

use common::logs::Captured;
use common::{ALICE_PASSWORD, Harness, Setup, login_error};
use tokio_postgres::config::ChannelBinding;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_roles_and_fixes_and_hold_no_secret() {
    let captured = Captured::install();

    let harness = Harness::start(
        "logs",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    let client = harness.plain("alice", ALICE_PASSWORD).await.expect("login");
    client.simple_query("SELECT 1").await.expect("query");
    drop(client);
    harness
        .tls("alice", ALICE_PASSWORD, ChannelBinding::Prefer)
        .await
        .expect("TLS login");
    login_error(harness.plain("alice", "a-wrong-password").await);
    login_error(harness.plain("md5_role", "md5-secret").await);
    login_error(harness.plain("nobody", "nobody-secret").await);
    let alice_verifier = harness
        .admin
        .secret("alice")
        .await
        .expect("lookup")
        .expect("a verifier");
    let md5_hash = harness
        .admin
        .client_secret_of("md5_role")
        .await
        .expect("md5 hash");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logged = captured.text();
    assert!(logged.contains("session started"), "{logged}");
    assert!(
        logged.contains("md5_role") && logged.contains("password_encryption = scram-sha-256"),
        "the MD5 role and its fix are not logged:\n{logged}"
    );
    let (_, keys) = alice_verifier.split_once('$').expect("verifier form");
    let (_, keys) = keys.split_once('$').expect("verifier keys");
    let (stored_key, server_key) = keys.split_once(':').expect("two keys");
    for secret in [
        ALICE_PASSWORD,
        "a-wrong-password",
        "md5-secret",
        "nobody-secret",
        "admin-secret",
        stored_key,
        server_key,
        md5_hash.as_str(),
    ] {
        assert!(!logged.contains(secret), "a secret was logged: {secret}");
    }
    // (The install's SQL, logged by tokio-postgres, names the prefix `SCRAM-SHA-256$`; a verifier
    // has its iteration count after it.)
    for forbidden in ["SCRAM-SHA-256$4096", ",p=", "c=biws"] {
        assert!(
            !logged.contains(forbidden),
            "a SCRAM message or verifier was logged ({forbidden})"
        );
    }
}
