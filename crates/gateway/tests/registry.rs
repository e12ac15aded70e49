//! The gateway registers each backend it logs in with the server's gateway session registry
//! (installed as `curfew init` does): the agent's snapshot shows the client behind a gateway
//! session, a direct session carries no mark, and a registration that fails leaves the session
//! working (fail open, logged and counted).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, ALICE_PASSWORD, Harness, Setup};
use curfew_postgres::{Connection, ConnectionUrl, GATEWAY_REGISTER_FUNCTION, TargetSpec};
use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

/// curfew's agent connection to the harness's cluster.
async fn agent(harness: &Harness) -> Connection {
    let spec = TargetSpec {
        name: "primary".to_owned(),
        url: ConnectionUrl::parse(&format!(
            "postgresql://curfew_agent@127.0.0.1:{}/postgres?sslmode=prefer",
            harness.cluster.port()
        ))
        .unwrap(),
        password_file: Some(harness.dir.password_file(ADMIN_PASSWORD)),
    };
    curfew_postgres::connect(&spec).await.unwrap().connection
}

/// alice through the gateway over a socket of our own, so its port is known: the client,
/// its port, and its backend's pid.
async fn through_gateway(harness: &Harness) -> (Client, u16, i32) {
    let socket = TcpStream::connect(harness.addr).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut config = harness.config("alice", ALICE_PASSWORD);
    config.ssl_mode(SslMode::Disable);
    let (client, connection) = config.connect_raw(socket, NoTls).await.unwrap();
    tokio::spawn(connection);
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (client, port, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_session_shows_its_client_to_the_agent_and_a_direct_one_does_not() {
    let harness = Harness::start(
        "registry",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    let (_session, port, pid) = through_gateway(&harness).await;
    // alice directly, claiming a client address of her own.
    let mut direct = tokio_postgres::Config::new();
    direct
        .host("127.0.0.1")
        .port(harness.cluster.port())
        .user("alice")
        .password(ALICE_PASSWORD)
        .dbname("postgres")
        .ssl_mode(SslMode::Prefer)
        .options("-c curfew.client_addr=10.66.66.66");
    let (direct, connection) = direct.connect(harness.tls_connector()).await.unwrap();
    tokio::spawn(connection);
    let direct_pid: i32 = direct
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let mut agent = agent(&harness).await;
    // The registration is awaited at login for 2 s at most, and runs even when later: a
    // loaded machine may need the wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (snapshot, key) = loop {
        let snapshot = agent.snapshot(&[], false).await.unwrap();
        let key = snapshot
            .sessions
            .iter()
            .find(|s| s.pid == i64::from(pid))
            .unwrap()
            .key();
        if snapshot.gateway_client(&key).is_some() {
            break (snapshot, key);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let client = snapshot.gateway_client(&key).unwrap();
    assert_eq!(client.addr.to_string(), "127.0.0.1");
    assert_eq!(client.port, port);
    assert!(
        client
            .gateway
            .ends_with(&format!("/{}", std::process::id())),
        "{client:?}"
    );
    assert_eq!(
        client.to_string(),
        format!("via gateway from 127.0.0.1:{port}")
    );
    let direct = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(direct_pid))
        .unwrap();
    assert_eq!(snapshot.gateway_client(&direct.key()), None);
    // Only alice's gateway session is marked (not the gateway's own lookup connection).
    assert_eq!(snapshot.gateway.len(), 1, "{:?}", snapshot.gateway);

    // What pg_stat_activity's readers see through the view.
    let view = harness
        .cluster
        .psql(&format!(
            "SELECT via_gateway, host(client_addr), client_port FROM curfew.sessions WHERE pid IN ({pid}, {direct_pid}) ORDER BY pid = {pid}"
        ))
        .unwrap();
    let direct_port = harness
        .cluster
        .psql(&format!(
            "SELECT client_port FROM pg_stat_activity WHERE pid = {direct_pid}"
        ))
        .unwrap();
    assert_eq!(
        view,
        format!("f|127.0.0.1|{direct_port}\nt|127.0.0.1|{port}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_leaves_the_session_working_and_is_counted() {
    let harness = Harness::start(
        "registry-fails",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    harness
        .cluster
        .psql(&format!(
            "REVOKE EXECUTE ON FUNCTION {GATEWAY_REGISTER_FUNCTION} FROM curfew_gateway"
        ))
        .unwrap();
    let before = curfew_gateway::registration_failures();
    let (session, _port, pid) = through_gateway(&harness).await;
    let answer: i32 = session
        .query_one("SELECT 41 + 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(answer, 42);
    assert!(curfew_gateway::registration_failures() > before);
    let mut agent = agent(&harness).await;
    let snapshot = agent.snapshot(&[], false).await.unwrap();
    let seen = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(pid))
        .unwrap();
    assert_eq!(snapshot.gateway_client(&seen.key()), None);
    // The session is what the agent enforces as a direct one: from the gateway's host.
    assert_eq!(seen.client_addr.ip().unwrap().to_string(), "127.0.0.1");
}
