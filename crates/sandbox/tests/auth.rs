//! SCRAM authentication and TLS.
#![allow(clippy::unwrap_used)]

use curfew_sandbox::{Auth, Cluster, Options, TestPki};
use tokio_postgres::error::SqlState;

fn config(cluster: &Cluster, password: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(cluster.host())
        .port(cluster.port())
        .user("alice")
        .password(password)
        .dbname("postgres");
    config
}

#[tokio::test]
async fn scram_accepts_the_right_password_only() {
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        ..Options::default()
    })
    .unwrap();
    cluster
        .psql("create role alice login password 'correct horse'")
        .unwrap();
    let method = cluster
        .psql("select left(rolpassword, 13) from pg_authid where rolname = 'alice'")
        .unwrap();
    assert_eq!(method, "SCRAM-SHA-256");

    let (client, connection) = config(&cluster, "correct horse")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let row = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    drop(client);
    task.await.unwrap().unwrap();

    let err = config(&cluster, "wrong")
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

#[test]
fn tls_with_scram_enables_ssl() {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        tls: Some(pki.server),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(cluster.psql("show ssl").unwrap(), "on");
    let hba = std::fs::read_to_string(cluster.data_dir().join("pg_hba.conf")).unwrap();
    assert!(hba.contains("hostnossl"), "{hba}");
}

#[tokio::test]
async fn tls_cluster_rejects_plaintext_tcp() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        tls: Some(pki.server),
        ..Options::default()
    })
    .unwrap();
    let err = tokio_postgres::connect(&cluster.url("postgres", "postgres"), tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err}"
    );
}
