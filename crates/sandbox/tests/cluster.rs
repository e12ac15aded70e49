//! Lifecycle of trust-authenticated clusters.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::time::Duration;

use curfew_sandbox::{Cluster, Options};

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
}

#[test]
fn psql_runs_sql_over_the_socket() {
    let cluster = Cluster::start(Options::default()).unwrap();
    assert_eq!(cluster.psql("select 1").unwrap(), "1");
    assert_eq!(cluster.psql("select 1; select 2").unwrap(), "1\n2");
    assert_eq!(cluster.host(), "127.0.0.1");
    assert_eq!(cluster.superuser(), "postgres");
    assert!(cluster.major_version() >= 14);
    assert!(cluster.is_running());
    assert!(cluster.data_dir().join("PG_VERSION").exists());
    assert!(cluster.bin_dir().join("initdb").exists());
    let socket = cluster
        .socket_dir()
        .join(format!(".s.PGSQL.{}", cluster.port()));
    assert!(socket.exists(), "{}", socket.display());
    assert_eq!(
        cluster.psql("show fsync").unwrap(),
        "off",
        "sandbox settings are applied"
    );
}

#[test]
fn psql_errors_carry_stderr() {
    let cluster = Cluster::start(Options::default()).unwrap();
    let err = cluster.psql("select * from no_such_table").unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
}

#[test]
fn options_reach_postgresql_conf() {
    let options = Options {
        max_connections: Some(23),
        settings: vec![("cluster_name".into(), "it's curfew".into())],
        ..Options::default()
    };
    let cluster = Cluster::start(options).unwrap();
    assert_eq!(cluster.psql("show max_connections").unwrap(), "23");
    assert_eq!(cluster.psql("show cluster_name").unwrap(), "it's curfew");
}

#[tokio::test]
async fn tokio_postgres_connects_over_tcp() {
    let cluster = Cluster::start(Options::default()).unwrap();
    let url = cluster.url("postgres", "postgres");
    assert_eq!(
        url,
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            cluster.port()
        )
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let row = client.query_one("select 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(client);
    task.await.unwrap().unwrap();
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = Cluster::start(Options::default()).unwrap();
    let b = Cluster::start(Options::default()).unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    assert_ne!(a.socket_dir(), b.socket_dir());
    a.psql("create table only_in_a ()").unwrap();
    let in_b = b
        .psql("select count(*) from pg_tables where tablename = 'only_in_a'")
        .unwrap();
    assert_eq!(in_b, "0");
}

#[test]
fn stop_and_restart_keep_the_port() {
    let mut cluster = Cluster::start(Options::default()).unwrap();
    let port = cluster.port();
    assert!(accepts(port));

    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    assert!(!accepts(port));
    cluster.stop().unwrap(); // idempotent
    assert!(cluster.psql("select 1").is_err());

    cluster.restart().unwrap();
    assert_eq!(cluster.port(), port);
    assert!(cluster.is_running());
    assert!(accepts(port));
    assert_eq!(cluster.psql("select 1").unwrap(), "1");

    cluster.restart().unwrap(); // restart while running
    assert!(accepts(port));
    assert!(cluster.log_tail(5).lines().count() <= 5);
    assert!(!cluster.log_tail(5).is_empty());
}

#[test]
fn drop_stops_the_server_and_removes_the_directory() {
    let cluster = Cluster::start(Options::default()).unwrap();
    let port = cluster.port();
    let root = cluster.data_dir().parent().unwrap().to_path_buf();
    assert!(root.exists());
    assert!(accepts(port));
    drop(cluster);
    assert!(!root.exists(), "{} still exists", root.display());
    assert!(!accepts(port));
}
