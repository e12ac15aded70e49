//! Client addresses on a real MariaDB, with name resolution on (its default, `skip_name_resolve`
//! OFF) and off (the sandbox's default): a TCP client from 127.0.0.1 shows as `localhost:port`
//! when names are resolved, and must then be neither a socket session (meeting `addresses =
//! ["local"]`) nor given an address; an IPv6 client's `HOST` is read as its address.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::sync::Arc;

use curfew_policy::{ClientAddr, evaluate, parse_policy};
use curfew_sandbox::MariaDbOptions;
use fixture::Fixture;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// Exempt local administrators (socket sessions) from an idle rule.
const POLICY: &str =
    "[exempt]\naddresses = [\"local\"]\n\n[[rule]]\nname = \"idle\"\nidle = \"15m\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_name_resolution_on_a_tcp_client_is_unresolved_not_local_and_not_exempt() {
    let f = Fixture::start(MariaDbOptions {
        settings: vec![("skip-name-resolve".to_owned(), "OFF".to_owned())],
        ..MariaDbOptions::default()
    });
    assert_eq!(
        f.server.admin_sql("SELECT @@skip_name_resolve").unwrap(),
        "0"
    );
    let mut curfew = f.curfew().await;
    let mut tcp = f.client("app", "billing").await;
    tcp.query_drop("SELECT 1").await.unwrap();
    let mut socket = f.socket_client("app").await;
    socket.query_drop("SELECT 1").await.unwrap();
    let host_of = |id: u32| {
        f.server
            .admin_sql(&format!(
                "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = {id}"
            ))
            .unwrap()
    };
    // What the server shows: a name and a port for TCP, a bare `localhost` for the socket.
    let tcp_host = host_of(tcp.id());
    assert!(tcp_host.starts_with("localhost:"), "{tcp_host}");
    assert_eq!(host_of(socket.id()), "localhost");

    let snapshot = curfew.snapshot().await.unwrap();
    let find = |id: u32| {
        snapshot
            .sessions
            .iter()
            .find(|s| s.pid == i64::from(id))
            .unwrap()
    };
    assert_eq!(
        find(tcp.id()).client_addr,
        ClientAddr::Unresolved(Arc::from("localhost"))
    );
    assert_eq!(find(socket.id()).client_addr, ClientAddr::Socket);

    // An hour on, both idle past the limit: the exemption for local sessions keeps the socket
    // one only.
    let policy = parse_policy("t.toml", POLICY, jiff::tz::db())
        .unwrap()
        .policy;
    let later = snapshot.now + jiff::SignedDuration::from_hours(1);
    let ended: Vec<i64> = evaluate(&policy, &snapshot.sessions, later)
        .terminations
        .iter()
        .map(|d| d.session.pid)
        .filter(|pid| [tcp.id(), socket.id()].map(i64::from).contains(pid))
        .collect();
    assert_eq!(ended, [i64::from(tcp.id())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_name_resolution_ipv4_and_ipv6_clients_have_their_addresses() {
    // Listening on every address (IPv6 and IPv4), as a server reachable over IPv6 would.
    let f = Fixture::start(MariaDbOptions {
        settings: vec![("bind-address".to_owned(), "*".to_owned())],
        ..MariaDbOptions::default()
    });
    assert_eq!(
        f.server.admin_sql("SELECT @@skip_name_resolve").unwrap(),
        "1"
    );
    f.server
        .admin_sql("CREATE USER 'app'@'::1'; GRANT ALL ON app.* TO 'app'@'::1';")
        .unwrap();
    let mut curfew = f.curfew().await;
    let mut v4 = f.client("app", "billing").await;
    v4.query_drop("SELECT 1").await.unwrap();
    let opts = OptsBuilder::default()
        .ip_or_hostname("::1")
        .tcp_port(f.server.port())
        .prefer_socket(false)
        .user(Some("app"));
    let mut v6 = Conn::new(opts).await.unwrap();
    v6.query_drop("SELECT 1").await.unwrap();
    let v6_host = f
        .server
        .admin_sql(&format!(
            "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = {}",
            v6.id()
        ))
        .unwrap();
    // MariaDB 10.11 writes no brackets: `::1:59536`, which alone also reads as one address.
    assert!(v6_host.starts_with("::1:"), "{v6_host}");
    let snapshot = curfew.snapshot().await.unwrap();
    let find = |id: u32| {
        snapshot
            .sessions
            .iter()
            .find(|s| s.pid == i64::from(id))
            .unwrap()
    };
    assert_eq!(
        find(v4.id()).client_addr,
        ClientAddr::Ip("127.0.0.1".parse().unwrap())
    );
    assert_eq!(
        find(v6.id()).client_addr,
        ClientAddr::Ip("::1".parse().unwrap()),
        "HOST {v6_host}"
    );
}
