//! A session through the gateway: the server's real process id, per-client cancel keys that
//! cancel, protocol 3.2 and newer minors, direct TLS, and the relay under load.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ALICE_PASSWORD, Harness, Setup, raw};
use curfew_scram::ClientChannelBinding;
use curfew_wire::ProtocolVersion;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject as _;
use tokio::net::TcpStream;
use tokio_postgres::NoTls;
use tokio_rustls::TlsConnector;

async fn alice_secret(harness: &Harness) -> String {
    harness
        .admin
        .secret("alice")
        .await
        .expect("lookup")
        .expect("alice has a secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sees_the_real_pid_and_its_own_key_per_protocol() {
    let harness = Harness::start("pid", Setup::default()).await;
    let stored = alice_secret(&harness).await;

    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let seen = raw::login(
        &mut tcp,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
    )
    .await
    .expect("login on 3.0");
    assert_eq!(seen.key_len, 4);
    assert_eq!(seen.negotiated_minor, None);
    assert_eq!(seen.mechanisms, ["SCRAM-SHA-256"], "no -PLUS without TLS");
    let pid = raw::query_one(&mut tcp, "SELECT pg_backend_pid()").await;
    assert_eq!(pid, Ok(seen.process_id.to_string()));

    // 3.2 gets a 32-byte key; the server (15) speaks 3.0, which the client never notices.
    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let seen = raw::login(
        &mut tcp,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_2,
    )
    .await
    .expect("login on 3.2");
    assert_eq!(seen.key_len, 32);
    assert_eq!(seen.negotiated_minor, None);
    let pid = raw::query_one(&mut tcp, "SELECT pg_backend_pid()").await;
    assert_eq!(pid, Ok(seen.process_id.to_string()));

    // A newer minor is told 3.2 and served as 3.2.
    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let newer = ProtocolVersion { major: 3, minor: 9 };
    let seen = raw::login(&mut tcp, "alice", ALICE_PASSWORD, &stored, newer)
        .await
        .expect("login on 3.9");
    assert_eq!(seen.negotiated_minor, Some(2));
    assert_eq!(seen.key_len, 32);
    assert_eq!(
        raw::query_one(&mut tcp, "SELECT 40 + 2").await,
        Ok("42".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_needs_alpn_postgresql() {
    let harness = Harness::start("direct", Setup::default()).await;
    let stored = alice_secret(&harness).await;
    let name = ServerName::try_from("localhost").expect("name");

    let mut with_alpn = harness.client_tls();
    with_alpn.alpn_protocols = vec![b"postgresql".to_vec()];
    let tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let mut tls = TlsConnector::from(Arc::new(with_alpn))
        .connect(name.clone(), tcp)
        .await
        .expect("direct TLS handshake");
    let seen = raw::login(
        &mut tls,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
    )
    .await
    .expect("login over direct TLS");
    assert_eq!(seen.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    assert_eq!(
        raw::query_one(&mut tls, "SELECT current_user").await,
        Ok("alice".to_owned())
    );

    // Without ALPN the gateway closes the connection before any startup.
    let tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let refused = match TlsConnector::from(Arc::new(harness.client_tls()))
        .connect(name, tcp)
        .await
    {
        Err(_) => true,
        Ok(mut tls) => raw::login(
            &mut tls,
            "alice",
            ALICE_PASSWORD,
            &stored,
            ProtocolVersion::V3_0,
        )
        .await
        .is_err(),
    };
    assert!(refused, "direct TLS without ALPN was served");
}

/// Waits until the server runs the test's `pg_sleep(60)`: a cancel that arrives before is
/// ignored by the server (it is reading a command), and the sleep would run its minute.
async fn sleep_running(harness: &Harness) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running = harness
            .cluster
            .psql(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE state = 'active' AND query = 'SELECT pg_sleep(60)'",
            )
            .expect("pg_stat_activity");
        if running.trim() == "1" {
            return;
        }
        assert!(Instant::now() < deadline, "the sleep never ran: {running}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_the_gateway_ends_a_running_sleep() {
    let harness = Harness::start("cancel", Setup::default()).await;
    let client = harness.plain("alice", ALICE_PASSWORD).await.expect("login");
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
    sleep_running(&harness).await;
    token.cancel_query(NoTls).await.expect("cancel sent");
    let ended = tokio::time::timeout(Duration::from_secs(20), sleeper)
        .await
        .expect("the sleep ended")
        .expect("task");
    let error = ended.expect_err("the sleep was cancelled");
    let code = error.as_db_error().map(|e| e.code().code().to_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // The same for a TLS session, the cancel request sent over TLS too.
    let client = harness
        .tls(
            "alice",
            ALICE_PASSWORD,
            tokio_postgres::config::ChannelBinding::Prefer,
        )
        .await
        .expect("login");
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
    sleep_running(&harness).await;
    token
        .cancel_query(harness.tls_connector())
        .await
        .expect("cancel sent over TLS");
    let ended = tokio::time::timeout(Duration::from_secs(20), sleeper)
        .await
        .expect("the sleep ended")
        .expect("task");
    assert!(ended.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cancel_key_is_dropped_and_cancels_nothing() {
    let harness = Harness::start("wrongcancel", Setup::default()).await;
    let stored = alice_secret(&harness).await;
    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let seen = raw::login(
        &mut tcp,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
    )
    .await
    .expect("login");
    let sql = "SELECT pg_sleep(1.5)::text || 'done'";
    let running = tokio::spawn(async move { raw::query_one(&mut tcp, sql).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The right pid with a guessed key: dropped silently, the sleep runs to its end.
    let mut out = Vec::new();
    curfew_wire::encode_cancel_request(seen.process_id, &[0, 0, 0, 0], &mut out)
        .expect("cancel request");
    let mut cancel = TcpStream::connect(harness.addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut cancel, &out)
        .await
        .expect("sent");
    let result = running.await.expect("task");
    assert_eq!(result, Ok("done".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_carries_copy_pipelines_and_large_rows() {
    let harness = Harness::start("relay", Setup::default()).await;
    let client = harness.plain("alice", ALICE_PASSWORD).await.expect("login");
    client
        .batch_execute("CREATE TEMP TABLE t (n int, s text)")
        .await
        .expect("table");
    // A pipeline of 1,000 statements, sent before any answer is read.
    let statement = client
        .prepare("INSERT INTO t VALUES ($1, repeat('x', $1))")
        .await
        .expect("prepare");
    let inserts = (0..1000).map(|n| {
        let (client, statement) = (&client, &statement);
        async move { client.execute(statement, &[&n]).await }
    });
    let results = futures_util::future::join_all(inserts).await;
    assert!(results.iter().all(|r| matches!(r, Ok(1))));
    let row = client
        .query_one("SELECT count(*), sum(length(s)) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), 1000);
    assert_eq!(row.get::<_, i64>(1), 499_500);
    // COPY out and back in.
    let out = client
        .copy_out("COPY (SELECT n, s FROM t ORDER BY n) TO STDOUT")
        .await
        .expect("copy out");
    let copied: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(out)
        .await
        .expect("copy data");
    let data: Vec<u8> = copied.concat();
    client
        .batch_execute("CREATE TEMP TABLE u (n int, s text)")
        .await
        .expect("table u");
    let sink = client.copy_in("COPY u FROM STDIN").await.expect("copy in");
    futures_util::pin_mut!(sink);
    futures_util::SinkExt::send(&mut sink, bytes::Bytes::from(data))
        .await
        .expect("copy data sent");
    assert_eq!(sink.finish().await.expect("copy finished"), 1000);
    let same: bool = client
        .query_one("SELECT (SELECT array_agg(t ORDER BY n) FROM t)::text = (SELECT array_agg(u ORDER BY n) FROM u)::text", &[])
        .await
        .expect("compare")
        .get(0);
    assert!(same);
    // A row far larger than any buffer.
    let big: String = client
        .query_one("SELECT repeat('y', 5000000)", &[])
        .await
        .expect("big row")
        .get(0);
    assert_eq!(big.len(), 5_000_000);
    // SET sticks: one client is one server session.
    client
        .batch_execute("SET application_name = 'changed'")
        .await
        .expect("set");
    let name: String = client
        .query_one("SHOW application_name", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(name, "changed");
}

/// How many server sessions `role` has, per the superuser.
async fn sessions_of(harness: &Harness, role: &str) -> i64 {
    let client = harness.plain("alice", ALICE_PASSWORD).await.expect("login");
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&role],
        )
        .await
        .expect("count")
        .get(0);
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_ending_ends_the_other() {
    let harness = Harness::start("ends", Setup::default()).await;
    let stored = alice_secret(&harness).await;

    // A client that vanishes (EOF, no Terminate): its server session ends too.
    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    raw::login(
        &mut tcp,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
    )
    .await
    .expect("login");
    assert_eq!(sessions_of(&harness, "alice").await, 1);
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sessions_of(&harness, "alice").await != 0 {
        assert!(
            Instant::now() < deadline,
            "the server session outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A server session ended by the server: its client hears why and is closed.
    let client = harness.plain("alice", ALICE_PASSWORD).await.expect("login");
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    harness
        .cluster
        .psql(&format!("SELECT pg_terminate_backend({pid})"))
        .expect("terminate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the client outlived its server session"
        );
        let _ = client.simple_query("SELECT 1").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gssenc_is_declined_and_the_startup_goes_on() {
    let harness = Harness::start("gssenc", Setup::default()).await;
    let stored = alice_secret(&harness).await;
    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let mut request = Vec::new();
    curfew_wire::encode_gssenc_request(&mut request);
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &request)
        .await
        .expect("sent");
    let mut answer = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut answer)
        .await
        .expect("answer");
    assert_eq!(&answer, b"N");
    raw::login(
        &mut tcp,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
    )
    .await
    .expect("login after GSSENCRequest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_server_leg_serves_plain_and_tls_clients() {
    let harness = Harness::start(
        "plainserver",
        Setup {
            server_tls: false,
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    let plain = harness.plain("alice", ALICE_PASSWORD).await.expect("plain");
    let tls = harness
        .tls(
            "alice",
            ALICE_PASSWORD,
            tokio_postgres::config::ChannelBinding::Prefer,
        )
        .await
        .expect("TLS");
    for client in [&plain, &tls] {
        let row = client
            .query_one(
                "SELECT current_user::text, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
                &[],
            )
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), "alice");
        assert!(!row.get::<_, bool>(1), "the server leg is plaintext");
        // Large results and a pipeline on the plaintext paths, both directions.
        let big: String = client
            .query_one("SELECT repeat('y', 3000000)", &[])
            .await
            .expect("big row")
            .get(0);
        assert_eq!(big.len(), 3_000_000);
        let echo = client.prepare("SELECT $1::text").await.expect("prepare");
        let long = "z".repeat(100_000);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&long];
        let sent = (0..200).map(|_| client.query_one(&echo, &params));
        let echoed = futures_util::future::join_all(sent).await;
        assert!(echoed.iter().all(|r| {
            r.as_ref()
                .map(|row| row.get::<_, String>(0) == long)
                .unwrap_or(false)
        }));
    }
    let token = plain.cancel_token();
    let sleeper = tokio::spawn(async move { plain.simple_query("SELECT pg_sleep(60)").await });
    sleep_running(&harness).await;
    token.cancel_query(NoTls).await.expect("cancel sent");
    let ended = tokio::time::timeout(Duration::from_secs(20), sleeper)
        .await
        .expect("the sleep ended")
        .expect("task");
    assert!(ended.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_the_gateways_to_give_and_unknown_options_are_named() {
    let harness = Harness::start("clientaddr", Setup::default()).await;
    let stored = alice_secret(&harness).await;
    let mut tcp = TcpStream::connect(harness.addr).await.expect("connect");
    let seen = raw::login_with(
        &mut tcp,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
        &[
            (b"curfew.client_addr", b"203.0.113.9"),
            (b"_pq_.unknown_option", b"on"),
            (b"application_name", b"as sent: -c x=y 'q'"),
        ],
    )
    .await
    .expect("login");
    assert_eq!(seen.negotiated_minor, Some(0));
    assert_eq!(seen.unrecognized, ["_pq_.unknown_option"]);
    assert_eq!(
        raw::query_one(&mut tcp, "SELECT current_setting('curfew.client_addr')").await,
        Ok("127.0.0.1".to_owned())
    );
    assert_eq!(
        raw::query_one(&mut tcp, "SELECT current_setting('application_name')").await,
        Ok("as sent: -c x=y 'q'".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_uses_the_certificate_of_the_handshake_even_after_a_reload() {
    let harness = Harness::start("binding-reload", Setup::default()).await;
    let stored = alice_secret(&harness).await;
    let old_der =
        rustls_pki_types::CertificateDer::from_pem_slice(harness.pki.server.cert_pem.as_bytes())
            .expect("old certificate");
    let old_hash = curfew_scram::tls_server_end_point(&old_der).expect("hash");
    let handshake = || async {
        let mut with_alpn = harness.client_tls();
        with_alpn.alpn_protocols = vec![b"postgresql".to_vec()];
        let tcp = TcpStream::connect(harness.addr).await.expect("connect");
        TlsConnector::from(Arc::new(with_alpn))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("direct TLS handshake")
    };
    let mut bound_to_old = handshake().await;
    let mut second = handshake().await;
    // The certificate changes between these handshakes and their SCRAM exchanges.
    let next = curfew_sandbox::TestPki::generate(&["localhost", "127.0.0.1"]).expect("PKI");
    let files = curfew_gateway::TlsFiles {
        cert: harness.dir.write("next.crt", &next.server.cert_pem, 0o644),
        key: harness.dir.write("next.key", &next.server.key_pem, 0o600),
    };
    harness.tls_handle.reload(&files).expect("reload");
    let seen = raw::login_bound(
        &mut bound_to_old,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
        &[],
        &ClientChannelBinding::TlsServerEndPoint(old_hash),
    )
    .await
    .expect("SCRAM-SHA-256-PLUS bound to the certificate of its handshake");
    assert_eq!(seen.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    // Bound to the new certificate instead, the same session's proof is refused.
    let new_der = rustls_pki_types::CertificateDer::from_pem_slice(next.server.cert_pem.as_bytes())
        .expect("new certificate");
    let new_hash = curfew_scram::tls_server_end_point(&new_der).expect("hash");
    let refused = raw::login_bound(
        &mut second,
        "alice",
        ALICE_PASSWORD,
        &stored,
        ProtocolVersion::V3_0,
        &[],
        &ClientChannelBinding::TlsServerEndPoint(new_hash),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
}
