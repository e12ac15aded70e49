//! The role checks at connect: missing grants are named with the exact GRANT to run.
#![allow(clippy::unwrap_used)]

mod common;

use curfew_postgres::{PgError, connect};
use curfew_sandbox::{Cluster, Options};

use common::spec;

async fn connect_as(cluster: &Cluster, user: &str) -> Result<curfew_postgres::Connected, PgError> {
    connect(&spec(&cluster.url(user, "postgres"), None)).await
}

fn expect_missing(
    result: Result<curfew_postgres::Connected, PgError>,
) -> (Vec<&'static str>, String) {
    match result {
        Err(e @ PgError::MissingPrivileges { .. }) => {
            let text = e.to_string();
            let PgError::MissingPrivileges { missing, .. } = e else {
                unreachable!()
            };
            (missing, text)
        }
        Err(other) => panic!("expected MissingPrivileges, got: {other}"),
        Ok(_) => panic!("expected MissingPrivileges, the connection succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_grants_is_told_both() {
    let cluster = Cluster::start(Options::default()).unwrap();
    cluster.psql("CREATE ROLE nobody_special LOGIN").unwrap();
    let (missing, text) = expect_missing(connect_as(&cluster, "nobody_special").await);
    assert_eq!(missing, ["pg_read_all_stats", "pg_signal_backend"]);
    assert!(
        text.contains("GRANT pg_read_all_stats, pg_signal_backend TO \"nobody_special\";"),
        "{text}"
    );
    assert!(
        text.starts_with("target \"t\": role \"nobody_special\""),
        "{text}"
    );
    assert!(text.contains("cannot see other roles' sessions"), "{text}");
    assert!(text.contains("cannot end other roles' sessions"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_with_one_grant_is_told_the_other() {
    let cluster = Cluster::start(Options::default()).unwrap();
    cluster
        .psql(
            "CREATE ROLE reader LOGIN; GRANT pg_read_all_stats TO reader;
             CREATE ROLE signaller LOGIN; GRANT pg_signal_backend TO signaller;",
        )
        .unwrap();

    let (missing, text) = expect_missing(connect_as(&cluster, "reader").await);
    assert_eq!(missing, ["pg_signal_backend"]);
    assert!(
        text.contains("GRANT pg_signal_backend TO \"reader\";"),
        "{text}"
    );
    assert!(!text.contains("pg_read_all_stats"), "{text}");
    assert!(!text.contains("cannot see"), "{text}");

    let (missing, text) = expect_missing(connect_as(&cluster, "signaller").await);
    assert_eq!(missing, ["pg_read_all_stats"]);
    assert!(
        text.contains("GRANT pg_read_all_stats TO \"signaller\";"),
        "{text}"
    );
    assert!(!text.contains("pg_signal_backend"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_through_other_roles_count() {
    let cluster = Cluster::start(Options::default()).unwrap();
    // pg_monitor includes pg_read_all_stats; the signal grant comes through a group.
    cluster
        .psql(
            "CREATE ROLE ops NOLOGIN; GRANT pg_signal_backend TO ops;
             CREATE ROLE agent LOGIN IN ROLE ops; GRANT pg_monitor TO agent;",
        )
        .unwrap();
    let connected = connect_as(&cluster, "agent").await.unwrap();
    assert!(connected.warnings.is_empty(), "{:?}", connected.warnings);
    assert!(!connected.connection.info.superuser);
    assert_eq!(connected.connection.info.role, "agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_works_with_a_warning() {
    let cluster = Cluster::start(Options::default()).unwrap();
    let connected = connect_as(&cluster, "postgres").await.unwrap();
    assert!(connected.connection.info.superuser);
    assert_eq!(connected.connection.info.role, "postgres");
    assert_eq!(connected.warnings.len(), 1, "{:?}", connected.warnings);
    let warning = &connected.warnings[0];
    assert!(warning.contains("superuser \"postgres\""), "{warning}");
    assert!(
        warning.contains("pg_read_all_stats and pg_signal_backend"),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_role_names_are_quoted_in_the_grant() {
    let cluster = Cluster::start(Options::default()).unwrap();
    cluster
        .psql("CREATE ROLE \"we\"\"ird role\" LOGIN")
        .unwrap();
    let (missing, text) = expect_missing(connect_as(&cluster, "we\"ird role").await);
    assert_eq!(missing, ["pg_read_all_stats", "pg_signal_backend"]);
    assert!(
        text.contains("GRANT pg_read_all_stats, pg_signal_backend TO \"we\"\"ird role\";"),
        "{text}"
    );
    // The statement it suggests really works.
    let grant = text.split("run: ").nth(1).unwrap();
    cluster.psql(grant).unwrap();
    let connected = connect_as(&cluster, "we\"ird role").await.unwrap();
    assert_eq!(connected.connection.info.role, "we\"ird role");
    assert!(connected.warnings.is_empty(), "{:?}", connected.warnings);
}
