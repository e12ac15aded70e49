//! Ending sessions from the gateway (the drain's last step): the client reads whole messages
//! then a FATAL 57P01 with the reason, mid COPY, mid a big result and idle, over plaintext
//! and TLS; the server's backend is gone afterwards; the traffic counters count.

mod common;

use std::pin::pin;
use std::time::{Duration, Instant};

use common::{ALICE_PASSWORD, Harness, Setup};
use curfew_gateway::{Fatal, sqlstate};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

const REASON: &str = "the gateway is shutting down";

/// A big table alice may read: about 20 MB as COPY text, far more than socket buffers hold.
const BIG_TABLE: &str = "
CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS filler FROM generate_series(1, 100000) g;
GRANT SELECT ON big TO alice;
";

fn fatal() -> Fatal {
    Fatal::new(
        sqlstate::ADMIN_SHUTDOWN,
        "terminating connection due to administrator command",
    )
    .with_detail(REASON)
}

/// alice through the gateway, TLS or not; the connection task's handle is kept.
async fn alice(
    harness: &Harness,
    tls: bool,
) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
    let mut config = harness.config("alice", ALICE_PASSWORD);
    if tls {
        config.ssl_mode(SslMode::Require);
        let (client, connection) = config
            .connect(harness.tls_connector())
            .await
            .expect("login over TLS");
        (client, tokio::spawn(connection))
    } else {
        config.ssl_mode(SslMode::Disable);
        let (client, connection) = config.connect(NoTls).await.expect("login");
        (client, tokio::spawn(connection))
    }
}

/// The session's backend pid, by a simple query: a prepared statement would leave its Close
/// in flight, and the FATAL would answer that instead of reaching the connection.
async fn backend_pid(client: &Client) -> i32 {
    let messages = client
        .simple_query("SELECT pg_backend_pid()")
        .await
        .expect("pid");
    messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .expect("a row with the pid")
}

/// The error is the server-style FATAL the gateway sent, read as such by the driver (not a
/// protocol error or a closed connection).
fn assert_ended_by_the_gateway(error: &tokio_postgres::Error) {
    let Some(db) = error.as_db_error() else {
        panic!("not a server error: {error:?}");
    };
    assert_eq!(db.code().code(), "57P01", "{db:?}");
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(db.detail(), Some(REASON));
}

/// Waits until `pid` is no longer in pg_stat_activity (within 10 s).
async fn assert_backend_gone(harness: &Harness, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = harness
            .cluster
            .psql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
            ))
            .expect("pg_stat_activity");
        if count.trim() == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend {pid} still there after the stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a session in the middle of `COPY big TO STDOUT` (a gateway of its own: the drain
/// stays on for sessions that start later).
async fn stop_mid_copy_out(tls: bool) {
    let harness = Harness::start(
        if tls { "stop-copy-tls" } else { "stop-copy" },
        Setup::default(),
    )
    .await;
    harness.cluster.psql(BIG_TABLE).expect("big table");
    let (client, connection) = alice(&harness, tls).await;
    let pid = backend_pid(&client).await;
    let mut copy = pin!(
        client
            .copy_out("COPY big TO STDOUT")
            .await
            .expect("COPY starts")
    );
    let mut received = 0usize;
    let mut rows = 0usize;
    let mut stopped = false;
    let error = loop {
        match copy.next().await {
            Some(Ok(data)) => {
                received += data.len();
                // Every CopyData the server sends holds one whole row: a cut mid-message
                // would show as a partial row (or as a protocol error).
                assert!(data.ends_with(b"\n"), "a partial row: {} bytes", data.len());
                rows += 1;
                if !stopped && received > 100_000 {
                    harness.gateway.end_sessions(fatal());
                    stopped = true;
                }
            }
            Some(Err(e)) => break e,
            None => panic!("the COPY finished ({rows} rows): the stop came too late"),
        }
    };
    assert!(stopped);
    assert_ended_by_the_gateway(&error);
    assert!(rows < 100_000, "{rows} rows: the stop cut nothing");
    // The driver's connection ends without a protocol error of its own.
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the connection task ends")
        .expect("no panic");
    if let Err(e) = ended {
        assert!(e.as_db_error().is_some() || e.is_closed(), "{e:?}");
    }
    assert_backend_gone(&harness, pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stopped_mid_copy_out_gets_whole_rows_then_the_fatal() {
    stop_mid_copy_out(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_session_stopped_mid_copy_out_gets_whole_rows_then_the_fatal() {
    stop_mid_copy_out(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stopped_mid_a_big_result_over_tls_gets_the_fatal() {
    let harness = Harness::start("stop-result", Setup::default()).await;
    harness.cluster.psql(BIG_TABLE).expect("big table");
    let (client, _connection) = alice(&harness, true).await;
    let pid = backend_pid(&client).await;
    let mut rows = pin!(
        client
            .query_raw(
                "SELECT id, filler FROM big ORDER BY id",
                std::iter::empty::<i32>()
            )
            .await
            .expect("query starts")
    );
    let mut seen = 0i32;
    let error = loop {
        match rows.next().await {
            Some(Ok(row)) => {
                seen += 1;
                // Rows arrive whole and in order up to the stop.
                assert_eq!(row.get::<_, i32>(0), seen);
                assert_eq!(row.get::<_, &str>(1).len(), 200);
                if seen == 1000 {
                    harness.gateway.end_sessions(fatal());
                }
            }
            Some(Err(e)) => break e,
            None => panic!("the result finished ({seen} rows): the stop came too late"),
        }
    };
    assert_ended_by_the_gateway(&error);
    assert!(seen < 100_000, "{seen} rows");
    assert_backend_gone(&harness, pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_stopped_hears_the_fatal_and_its_backend_ends() {
    let harness = Harness::start("stop-idle", Setup::default()).await;
    let (plain, plain_connection) = alice(&harness, false).await;
    let (tls, tls_connection) = alice(&harness, true).await;
    let pids = [backend_pid(&plain).await, backend_pid(&tls).await];
    harness.gateway.end_sessions(fatal());
    for connection in [plain_connection, tls_connection] {
        // An idle client's driver reads the unsolicited FATAL on its connection.
        let ended = tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .expect("the connection ends")
            .expect("no panic");
        let error = ended.expect_err("the connection ends with the FATAL");
        assert_ended_by_the_gateway(&error);
    }
    for pid in pids {
        assert_backend_gone(&harness, pid).await;
    }
    assert!(plain.is_closed() && tls.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_counters_count_both_ways() {
    let harness = Harness::start("traffic", Setup::default()).await;
    let before = harness.gateway.traffic().snapshot();
    let (client, _connection) = alice(&harness, false).await;
    let text: String = client
        .query_one("SELECT repeat('y', 50000)", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(text.len(), 50000);
    let after = harness.gateway.traffic().snapshot();
    assert!(
        after.server_to_client >= before.server_to_client + 50000,
        "{after:?}"
    );
    assert!(
        after.client_to_server > before.client_to_server,
        "{after:?}"
    );
}
