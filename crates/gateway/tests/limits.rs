//! The gateway's limits: `require_tls`, `max_clients`, `login_timeout`, and garbage at the
//! listener that must not disturb anyone else.

mod common;

use std::time::{Duration, Instant};

use common::{ALICE_PASSWORD, Harness, Setup, login_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::ChannelBinding;

/// Reads until the gateway closes the connection; what it sent.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the gateway did not close within {limit:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plaintext_with_a_clear_fatal() {
    let harness = Harness::start(
        "requiretls",
        Setup {
            require_tls: true,
            ..Setup::default()
        },
    )
    .await;
    let (code, message) = login_error(harness.plain("alice", ALICE_PASSWORD).await);
    assert_eq!(code, "28000");
    assert_eq!(message, curfew_gateway::TLS_REQUIRED_MESSAGE);
    let client = harness
        .tls("alice", ALICE_PASSWORD, ChannelBinding::Prefer)
        .await
        .expect("TLS login");
    client.simple_query("SELECT 1").await.expect("query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_over_max_clients_is_told_too_many() {
    let harness = Harness::start(
        "maxclients",
        Setup {
            max_clients: 2,
            ..Setup::default()
        },
    )
    .await;
    let first = harness.plain("alice", ALICE_PASSWORD).await.expect("first");
    let second = harness
        .tls("alice", ALICE_PASSWORD, ChannelBinding::Prefer)
        .await
        .expect("second");
    let (code, message) = login_error(harness.plain("alice", ALICE_PASSWORD).await);
    assert_eq!(code, "53300");
    assert!(message.contains("too many clients"), "{message}");
    // Over TLS the refusal comes after the handshake, so the client reads it too.
    let (code, _) = login_error(
        harness
            .tls("alice", ALICE_PASSWORD, ChannelBinding::Prefer)
            .await,
    );
    assert_eq!(code, "53300");
    // The two sessions are untouched; when one leaves, its place is free again.
    second.simple_query("SELECT 1").await.expect("second works");
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    let third = loop {
        match harness.plain("alice", ALICE_PASSWORD).await {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the freed place was not reused: {e}"),
        }
    };
    third.simple_query("SELECT 1").await.expect("third works");
    first.simple_query("SELECT 1").await.expect("first works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_timeout_closes_silent_and_stalled_clients() {
    let harness = Harness::start(
        "logintimeout",
        Setup {
            // Long enough for a prompt login (below) on a loaded machine: SCRAM and the
            // server leg's TLS and login all count.
            login_timeout: Duration::from_secs(3),
            ..Setup::default()
        },
    )
    .await;
    // Silent: no startup at all. Closed without a word (there is no protocol yet).
    let started = Instant::now();
    let mut silent = TcpStream::connect(harness.addr).await.expect("connect");
    let got = read_to_close(&mut silent, Duration::from_secs(10)).await;
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(2900));

    // Stalled in SCRAM: the startup, then nothing. FATAL 57014, as PostgreSQL.
    let mut stalled = TcpStream::connect(harness.addr).await.expect("connect");
    let mut startup = Vec::new();
    curfew_wire::encode_startup(
        curfew_wire::ProtocolVersion::V3_0,
        &[(b"user", b"alice")],
        &mut startup,
    )
    .expect("startup");
    stalled.write_all(&startup).await.expect("sent");
    let got = read_to_close(&mut stalled, Duration::from_secs(10)).await;
    assert_eq!(got.first(), Some(&b'R'), "the SASL request came first");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("C57014"), "{text}");
    assert!(
        text.contains("canceling authentication due to timeout"),
        "{text}"
    );
    // A prompt client is not affected.
    harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("a prompt login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_the_listener_disturbs_no_session() {
    let harness = Harness::start("garbage", Setup::default()).await;
    let client = harness.plain("alice", ALICE_PASSWORD).await.expect("login");
    let session = tokio::spawn(async move {
        for n in 0..200i64 {
            let row = client
                .query_one("SELECT $1::bigint * 2", &[&n])
                .await
                .expect("the healthy session kept working");
            assert_eq!(row.get::<_, i64>(0), n * 2);
        }
    });
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random_bytes = |len: usize| {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect::<Vec<u8>>()
    };
    let mut startup = Vec::new();
    curfew_wire::encode_startup(
        curfew_wire::ProtocolVersion::V3_0,
        &[(b"user", b"alice")],
        &mut startup,
    )
    .expect("startup");
    // A startup, then a SASL message claiming 1 GiB.
    let mut oversized_sasl = startup.clone();
    oversized_sasl.extend_from_slice(&[b'p', 0x40, 0, 0, 0]);
    let attacks: Vec<Vec<u8>> = vec![
        // A startup packet claiming 4 GiB, and one claiming too little.
        vec![0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        vec![0, 0, 0, 2],
        // A truncated startup, then the connection closed.
        startup[..startup.len() - 3].to_vec(),
        oversized_sasl,
        // A TLS record that is no handshake, and plain noise.
        vec![0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3],
        random_bytes(4096),
        random_bytes(100_000),
        // An SSLRequest answered 'S', then noise instead of a ClientHello.
        [
            &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..],
            &random_bytes(300),
        ]
        .concat(),
    ];
    for attack in attacks {
        for _ in 0..5 {
            let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
            let _ = tcp.write_all(&attack).await;
            let _ = tcp.shutdown().await;
            let _ = read_to_close(&mut tcp, Duration::from_secs(10)).await;
        }
    }
    session.await.expect("the healthy session");
    // And new clients are still served.
    let after = harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("login after");
    after.simple_query("SELECT 1").await.expect("query after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_gives_a_connection_failure_not_a_hang() {
    let mut harness = Harness::start("serverdown", Setup::default()).await;
    harness.cluster.stop().expect("server stopped");
    let started = Instant::now();
    let (code, message) = login_error(harness.plain("alice", ALICE_PASSWORD).await);
    assert_eq!(code, "08006", "{message}");
    assert!(message.contains("curfew gateway"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_with_an_sslrequest_before_the_handshake_never_count_as_encrypted() {
    // CVE-2021-23214's class: plaintext pipelined after an SSLRequest must not be taken as if
    // it had come through TLS. The gateway reads the request exactly, so what follows goes
    // to the TLS handshake, which fails on it: no login starts.
    let harness = Harness::start("ssl-injection", Setup::default()).await;
    let mut bytes = Vec::new();
    curfew_wire::encode_ssl_request(&mut bytes);
    curfew_wire::encode_startup(
        curfew_wire::ProtocolVersion::V3_0,
        &[(b"user", b"alice"), (b"database", b"postgres")],
        &mut bytes,
    )
    .expect("startup");
    let mut stream = TcpStream::connect(harness.addr).await.expect("connect");
    stream.write_all(&bytes).await.expect("write");
    let got = read_to_close(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(got.first(), Some(&b'S'), "the SSLRequest is answered");
    // After 'S', at most a TLS alert record (type 21): never an authentication request.
    let rest = &got[1..];
    assert!(
        rest.is_empty() || rest[0] == 21,
        "the injected startup was served: {rest:?}"
    );
    assert!(
        !rest.windows(5).any(|w| w == [b'R', 0, 0, 0, 23]),
        "{rest:?}"
    );
    // The gateway still serves a proper client.
    harness.plain("alice", ALICE_PASSWORD).await.expect("login");
}
