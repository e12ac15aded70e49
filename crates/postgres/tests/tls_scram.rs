//! Connecting over TLS with SCRAM: certificate checks per sslmode, passwords, password files.
#![allow(clippy::unwrap_used)]

mod common;

use curfew_postgres::{PgError, connect};
use curfew_sandbox::{Auth, Cluster, Options, TestPki};

use common::{TempDir, spec};

const PASSWORD: &str = "correct horse";

/// A SCRAM cluster requiring TLS with a certificate for "localhost" only, the agent role, and
/// the CA written to `<dir>/ca.pem`.
fn tls_cluster(dir: &TempDir) -> Cluster {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        tls: Some(pki.server.clone()),
        ..Options::default()
    })
    .unwrap();
    cluster
        .psql(&format!(
            "CREATE ROLE curfew_agent LOGIN PASSWORD '{PASSWORD}';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;"
        ))
        .unwrap();
    dir.write("ca.pem", &pki.ca_pem, 0o644);
    cluster
}

fn url(host: &str, port: u16, params: &str) -> String {
    format!("postgresql://curfew_agent@{host}:{port}/postgres?{params}")
}

fn ca(dir: &TempDir) -> String {
    dir.path().join("ca.pem").display().to_string()
}

/// The error's text, checked never to hold the password (or `also_secret`).
fn error_text(result: Result<curfew_postgres::Connected, PgError>, also_secret: &str) -> String {
    let error = match result {
        Ok(_) => panic!("expected the connection to fail"),
        Err(e) => e,
    };
    let text = error.to_string();
    for secret in [PASSWORD, also_secret] {
        assert!(!text.contains(secret), "error shows a password: {text}");
        assert!(
            !format!("{error:?}").contains(secret),
            "Debug shows a password: {error:?}"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_right_ca_and_password_connects_over_tls() {
    let dir = TempDir::new("pg-it", "tls-ok");
    let cluster = tls_cluster(&dir);
    let target = spec(
        &url(
            "localhost",
            cluster.port(),
            &format!("sslmode=verify-full&sslrootcert={}", ca(&dir)),
        ),
        Some(dir.password_file(PASSWORD)),
    );
    let connected = connect(&target).await.unwrap();
    assert!(connected.warnings.is_empty(), "{:?}", connected.warnings);
    let connection = connected.connection;
    assert_eq!(connection.info.role, "curfew_agent");
    assert!(!connection.info.superuser);
    assert!(!connection.info.in_recovery);
    assert!(connection.info.version_num >= 140_000);
    let row = connection
        .client()
        .query_one(
            "select ssl, pg_backend_pid() from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the session is not encrypted");
    assert_eq!(row.get::<_, i32>(1), connection.info.backend_pid);
    // curfew's own session is shielded from the server's idle timeouts.
    let timeout: String = connection
        .client()
        .query_one("show idle_session_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let dir = TempDir::new("pg-it", "tls-other-ca");
    let cluster = tls_cluster(&dir);
    let other = TestPki::generate(&["localhost"]).unwrap();
    let other_ca = dir.write("other-ca.pem", &other.ca_pem, 0o644);
    let target = spec(
        &url(
            "localhost",
            cluster.port(),
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        ),
        Some(dir.password_file(PASSWORD)),
    );
    let result = connect(&target).await;
    assert!(matches!(result, Err(PgError::Connect { .. })), "{result:?}");
    let text = error_text(result, PASSWORD);
    assert!(
        text.contains("not signed by a CA in sslrootcert"),
        "unexpected error: {text}"
    );
    assert!(text.starts_with("cannot connect to target \"t\""), "{text}");

    // A CA under another name entirely (the issuer is not found at all) says the same.
    let unrelated = rcgen::generate_simple_self_signed(vec!["unrelated.example".to_owned()])
        .unwrap()
        .cert
        .pem();
    let unrelated_ca = dir.write("unrelated-ca.pem", &unrelated, 0o644);
    let target = spec(
        &url(
            "localhost",
            cluster.port(),
            &format!("sslmode=verify-ca&sslrootcert={}", unrelated_ca.display()),
        ),
        Some(dir.password_file(PASSWORD)),
    );
    let text = error_text(connect(&target).await, PASSWORD);
    assert!(
        text.contains("not signed by a CA in sslrootcert (unknown issuer)"),
        "unexpected error: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let dir = TempDir::new("pg-it", "tls-host");
    let cluster = tls_cluster(&dir);
    let password = dir.password_file(PASSWORD);
    let full = spec(
        &url(
            "127.0.0.1",
            cluster.port(),
            &format!("sslmode=verify-full&sslrootcert={}", ca(&dir)),
        ),
        Some(password.clone()),
    );
    let text = error_text(connect(&full).await, PASSWORD);
    assert!(
        text.contains("not valid for host \"127.0.0.1\""),
        "unexpected error: {text}"
    );

    let chain_only = spec(
        &url(
            "127.0.0.1",
            cluster.port(),
            &format!("sslmode=verify-ca&sslrootcert={}", ca(&dir)),
        ),
        Some(password),
    );
    let connected = connect(&chain_only).await.unwrap();
    assert!(connected.warnings.is_empty(), "{:?}", connected.warnings);
    let ssl: bool = connected
        .connection
        .client()
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_without_showing_it() {
    let dir = TempDir::new("pg-it", "tls-wrong-password");
    let cluster = tls_cluster(&dir);
    let wrong = "battery staple 0xDEADBEEF";
    let target = spec(
        &url(
            "localhost",
            cluster.port(),
            &format!("sslmode=verify-full&sslrootcert={}", ca(&dir)),
        ),
        Some(dir.password_file(wrong)),
    );
    let text = error_text(connect(&target).await, wrong);
    assert!(
        text.contains("password authentication failed for user \"curfew_agent\""),
        "unexpected error: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_without_a_ca_and_disable_is_rejected() {
    let dir = TempDir::new("pg-it", "tls-require");
    let cluster = tls_cluster(&dir);
    let password = dir.password_file(PASSWORD);
    let require = spec(
        &url("127.0.0.1", cluster.port(), "sslmode=require"),
        Some(password.clone()),
    );
    let connected = connect(&require).await.unwrap();
    let ssl: bool = connected
        .connection
        .client()
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "sslmode=require gave an unencrypted session");

    let disable = spec(
        &url("127.0.0.1", cluster.port(), "sslmode=disable"),
        Some(password),
    );
    let result = connect(&disable).await;
    assert!(matches!(result, Err(PgError::Connect { .. })), "{result:?}");
    let text = error_text(result, PASSWORD);
    assert!(
        text.contains("pg_hba.conf rejects connection") && text.contains("no encryption"),
        "unexpected error: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_password_file_works_with_a_warning() {
    let dir = TempDir::new("pg-it", "tls-open-file");
    let cluster = tls_cluster(&dir);
    let file = dir.write("open-password", &format!("{PASSWORD}\n"), 0o644);
    let target = spec(
        &url(
            "localhost",
            cluster.port(),
            &format!("sslmode=verify-full&sslrootcert={}", ca(&dir)),
        ),
        Some(file.clone()),
    );
    let connected = connect(&target).await.unwrap();
    assert_eq!(connected.warnings.len(), 1, "{:?}", connected.warnings);
    let warning = &connected.warnings[0];
    assert!(warning.contains("readable by group or others"), "{warning}");
    assert!(warning.contains(&file.display().to_string()), "{warning}");
    assert!(!warning.contains(PASSWORD), "{warning}");

    // A missing password file is an error naming the file, before any network traffic.
    let missing = spec(
        &url(
            "localhost",
            cluster.port(),
            &format!("sslmode=verify-full&sslrootcert={}", ca(&dir)),
        ),
        Some(dir.path().join("no-such-file")),
    );
    let result = connect(&missing).await;
    assert!(
        matches!(result, Err(PgError::PasswordFile { .. })),
        "{result:?}"
    );
}
