//! The gateway session registry against a real server: the gateway's role registers a backend
//! whose peer is its own socket and the agent's snapshot shows the client behind it; nobody
//! else writes the table or calls the function; a backend that is not the caller's own (wrong
//! address or port, another role, gone) is refused; a stale row never marks a reused pid; a
//! `curfew.client_addr` a client sets itself marks nothing.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod gateway_auth_fixtures;

use std::net::IpAddr;

use common::TempDir;
use curfew_postgres::{GATEWAY_REGISTER_QUERY, NOT_A_GATEWAY_BACKEND};
use gateway_auth_fixtures::{GATEWAY, PASSWORD, cluster, curfew_as, install, login, settings};
use tokio_postgres::{Client, NoTls};

/// A backend of `user` and what the server sees of it: pid and peer port.
async fn backend(cluster: &curfew_sandbox::Cluster, user: &str) -> (Client, i32, i32) {
    let client = login(cluster, user).await;
    let row = client
        .query_one("SELECT pg_backend_pid(), inet_client_port()", &[])
        .await
        .unwrap();
    (client, row.get(0), row.get(1))
}

/// Registers (`pid`, `role`) as peer 127.0.0.1:`port`, the client 10.9.8.7:5555: the SQLSTATE
/// of a refusal.
async fn register(gateway: &Client, pid: i32, role: &str, port: i32) -> Result<(), String> {
    let upstream: IpAddr = "127.0.0.1".parse().unwrap();
    let client: IpAddr = "10.9.8.7".parse().unwrap();
    gateway
        .query_one(
            GATEWAY_REGISTER_QUERY,
            &[
                &pid,
                &role,
                &upstream,
                &port,
                &client,
                &5555i32,
                &"test-host/1",
            ],
        )
        .await
        .map(drop)
        .map_err(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default())
}

async fn installed(cluster: &curfew_sandbox::Cluster, dir: &TempDir) {
    install(cluster, dir, &settings(None, false)).await;
    let mut admin = curfew_as(cluster, dir, "postgres").await;
    let done = admin
        .install_gateway_registry("curfew_agent", GATEWAY)
        .await
        .unwrap();
    assert!(done.installed, "{done:?}");
    // Idempotent: a second install keeps what is there and checks the grants again.
    let again = admin
        .install_gateway_registry("curfew_agent", GATEWAY)
        .await
        .unwrap();
    assert!(again.installed && !again.owner_created, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_backend_shows_its_client_to_the_agent_and_to_stats_readers() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-registry");
    installed(&cluster, &dir).await;
    let gateway = login(&cluster, GATEWAY).await;
    let (_session, pid, port) = backend(&cluster, "other").await;
    register(&gateway, pid, "other", port).await.unwrap();

    let mut agent = curfew_as(&cluster, &dir, "curfew_agent").await;
    let snapshot = agent.snapshot(&[], false).await.unwrap();
    let session = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(pid))
        .unwrap();
    let client = snapshot.gateway_client(&session.key()).unwrap();
    assert_eq!(client.addr, "10.9.8.7".parse::<IpAddr>().unwrap());
    assert_eq!(client.port, 5555);
    assert_eq!(client.gateway, "test-host/1");
    assert_eq!(client.to_string(), "via gateway from 10.9.8.7:5555");
    assert_eq!(
        snapshot.gateway.len(),
        1,
        "only the registered backend is marked: {:?}",
        snapshot.gateway
    );

    let view = cluster
        .psql(&format!(
            "SET ROLE curfew_agent; SELECT via_gateway, host(client_addr), client_port, host(gateway_addr) FROM curfew.sessions WHERE pid = {pid}"
        ))
        .unwrap();
    assert!(view.contains("t|10.9.8.7|5555|127.0.0.1"), "{view}");

    // What a registration costs the gateway's login: one round trip (re-registering the same
    // backend replaces its row).
    let rounds = 200u32;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        register(&gateway, pid, "other", port).await.unwrap();
    }
    let each = started.elapsed() / rounds;
    eprintln!(
        "registration: {:.2} ms each over {rounds}",
        each.as_secs_f64() * 1e3
    );
    assert!(each < std::time::Duration::from_millis(100), "{each:?}");
    let rows = cluster
        .psql("SELECT count(*) FROM curfew.gateway_sessions")
        .unwrap();
    assert_eq!(rows, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_login_role_writes_the_registry_and_only_the_gateway_calls_the_function() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-registry");
    installed(&cluster, &dir).await;
    let (_session, pid, port) = backend(&cluster, "other").await;
    let writes = [
        "INSERT INTO curfew.gateway_sessions VALUES (1, now(), 'x', '10.0.0.1', 1, 'g', 'x', now())",
        "UPDATE curfew.gateway_sessions SET client_addr = '10.0.0.2'",
        "DELETE FROM curfew.gateway_sessions",
        "TRUNCATE curfew.gateway_sessions",
    ];
    for role in ["other", "curfew_agent", GATEWAY] {
        let client = login(&cluster, role).await;
        for sql in writes {
            let code = gateway_auth_fixtures::refused(&client, sql).await;
            assert_eq!(code, "42501", "{role}: {sql}");
        }
        if role != GATEWAY {
            assert_eq!(
                register(&client, pid, "other", port).await,
                Err("42501".to_owned()),
                "{role} called the function"
            );
        }
    }
    // The view is not writable either, and PUBLIC reads neither.
    let other = login(&cluster, "other").await;
    for sql in [
        "SELECT * FROM curfew.gateway_sessions",
        "SELECT * FROM curfew.sessions",
    ] {
        let code = gateway_auth_fixtures::refused(&other, sql).await;
        assert_eq!(code, "42501", "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_cannot_register_a_backend_that_is_not_its_own_connection() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-registry");
    installed(&cluster, &dir).await;
    let gateway = login(&cluster, GATEWAY).await;
    let (session, pid, port) = backend(&cluster, "other").await;
    let refused = Err(NOT_A_GATEWAY_BACKEND.to_owned());
    assert_eq!(register(&gateway, pid, "other", port + 1).await, refused);
    assert_eq!(register(&gateway, pid, "ana", port).await, refused);
    let upstream: IpAddr = "127.0.0.2".parse().unwrap();
    let wrong_host = gateway
        .query_one(
            GATEWAY_REGISTER_QUERY,
            &[&pid, &"other", &upstream, &port, &upstream, &1i32, &"g"],
        )
        .await
        .unwrap_err();
    assert_eq!(wrong_host.code().unwrap().code(), NOT_A_GATEWAY_BACKEND);
    // Its own lookup connection is not a session it logged in for a client either... it is,
    // by the server's facts, a backend of the gateway's role: refused for any other role.
    let own = gateway
        .query_one("SELECT pg_backend_pid(), inet_client_port()", &[])
        .await
        .unwrap();
    let (own_pid, own_port): (i32, i32) = (own.get(0), own.get(1));
    assert_eq!(
        register(&gateway, own_pid, "other", own_port).await,
        refused
    );
    // A backend that is gone.
    drop(session);
    let mut agent = curfew_as(&cluster, &dir, "curfew_agent").await;
    for _ in 0..100 {
        let snapshot = agent.snapshot(&[], false).await.unwrap();
        if snapshot.sessions.iter().all(|s| s.pid != i64::from(pid)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(register(&gateway, pid, "other", port).await, refused);
    let rows = cluster
        .psql("SELECT count(*) FROM curfew.gateway_sessions")
        .unwrap();
    assert_eq!(rows.trim(), "0", "nothing was registered");
    // A gateway id beyond the limit is refused as a bad parameter.
    let (_live, pid, port) = backend(&cluster, "other").await;
    let upstream: IpAddr = "127.0.0.1".parse().unwrap();
    let long = "g".repeat(curfew_postgres::MAX_GATEWAY_ID_CHARS + 1);
    let too_long = gateway
        .query_one(
            GATEWAY_REGISTER_QUERY,
            &[&pid, &"other", &upstream, &port, &upstream, &1i32, &long],
        )
        .await
        .unwrap_err();
    assert_eq!(too_long.code().unwrap().code(), "22023");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_row_never_marks_a_reused_pid_and_is_cleared_by_the_next_registration() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-registry");
    installed(&cluster, &dir).await;
    let (_session, pid, _port) = backend(&cluster, "other").await;
    // A row left by an earlier backend that had this pid (an older start).
    cluster
        .psql(&format!(
            "INSERT INTO curfew.gateway_sessions VALUES ({pid}, now() - interval '1 hour', 'other', '10.0.0.1', 1, 'old/1', 'x', now() - interval '1 hour')"
        ))
        .unwrap();
    let mut agent = curfew_as(&cluster, &dir, "curfew_agent").await;
    let snapshot = agent.snapshot(&[], false).await.unwrap();
    assert!(snapshot.sessions.iter().any(|s| s.pid == i64::from(pid)));
    assert!(snapshot.gateway.is_empty(), "{:?}", snapshot.gateway);
    let view = cluster
        .psql(&format!(
            "SELECT via_gateway FROM curfew.sessions WHERE pid = {pid}"
        ))
        .unwrap();
    assert_eq!(view.trim(), "f");

    // The next registration (of another backend) clears it; the new row has the server's start.
    let gateway = login(&cluster, GATEWAY).await;
    let (_second, second_pid, second_port) = backend(&cluster, "other").await;
    register(&gateway, second_pid, "other", second_port)
        .await
        .unwrap();
    let rows = cluster
        .psql(&format!(
            "SELECT g.pid = {second_pid}, g.backend_start = a.backend_start FROM curfew.gateway_sessions g LEFT JOIN pg_stat_activity a ON a.pid = g.pid"
        ))
        .unwrap();
    assert_eq!(rows.trim(), "t|t", "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_addr_setting_a_client_sets_itself_marks_nothing() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-registry");
    installed(&cluster, &dir).await;
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port())
        .user("other")
        .password(PASSWORD)
        .dbname("postgres")
        .options("-c curfew.client_addr=10.1.1.1")
        .connect(NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT pg_backend_pid(), current_setting('curfew.client_addr')",
            &[],
        )
        .await
        .unwrap();
    let (pid, claimed): (i32, String) = (row.get(0), row.get(1));
    assert_eq!(claimed, "10.1.1.1");
    let mut agent = curfew_as(&cluster, &dir, "curfew_agent").await;
    let snapshot = agent.snapshot(&[], false).await.unwrap();
    let session = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(pid))
        .unwrap();
    assert_eq!(snapshot.gateway_client(&session.key()), None);
    assert_eq!(
        session.client_addr.ip(),
        Some("127.0.0.1".parse::<IpAddr>().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_registry_the_snapshot_works_and_marks_nothing() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-registry");
    install(&cluster, &dir, &settings(None, false)).await;
    let (_session, pid, _port) = backend(&cluster, "other").await;
    let mut agent = curfew_as(&cluster, &dir, "curfew_agent").await;
    let snapshot = agent.snapshot(&[], false).await.unwrap();
    assert!(snapshot.sessions.iter().any(|s| s.pid == i64::from(pid)));
    assert!(snapshot.gateway.is_empty());
}
