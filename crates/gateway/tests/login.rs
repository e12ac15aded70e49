//! Logging in through the gateway: SCRAM end to end, plain and TLS, channel binding, and every
//! refused login looking like a wrong password.

mod common;

use common::{ALICE_PASSWORD, Harness, Setup, login_error};
use tokio_postgres::config::ChannelBinding;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_work_plain_and_tls_with_channel_binding() {
    let harness = Harness::start(
        "logins",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;

    let plain = harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("plain login");
    let row = plain
        .query_one(
            "SELECT current_user::text, current_setting('application_name'), \
             current_setting('curfew.client_addr'), \
             (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "gateway test");
    assert_eq!(row.get::<_, String>(2), "127.0.0.1");
    // The server leg is TLS (the cluster refuses anything else) even for a plaintext client.
    assert!(row.get::<_, bool>(3));

    let tls = harness
        .tls("alice", ALICE_PASSWORD, ChannelBinding::Prefer)
        .await
        .expect("TLS login");
    let one: i32 = tls.query_one("SELECT 1", &[]).await.expect("query").get(0);
    assert_eq!(one, 1);

    // libpq (psql) with verify-full and channel_binding=require: SCRAM-SHA-256-PLUS bound to
    // the gateway's certificate. (tokio-postgres-rustls 0.13 computes no binding data: it
    // parses the certificate as a TBSCertificate, so it cannot be the client here.)
    let out = harness
        .psql(
            "alice",
            ALICE_PASSWORD,
            "sslmode=verify-full channel_binding=require",
            "SELECT current_user || ' ' || (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
        )
        .await;
    assert_eq!(out, Ok("alice true".to_owned()));
    let wrong = harness
        .psql(
            "alice",
            "wrong",
            "sslmode=verify-full channel_binding=require",
            "SELECT 1",
        )
        .await;
    let Err(message) = wrong else {
        panic!("a wrong password logged in");
    };
    assert!(
        message.contains("password authentication failed for user \"alice\""),
        "{message}"
    );

    // Without TLS there is nothing to bind to: a client requiring it is refused by itself.
    let mut config = harness.config("alice", ALICE_PASSWORD);
    config
        .ssl_mode(tokio_postgres::config::SslMode::Disable)
        .channel_binding(ChannelBinding::Require);
    assert!(config.connect(tokio_postgres::NoTls).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_all_look_like_a_wrong_password() {
    // Through the auth function `curfew init` installs, as the gateway's own role.
    let harness = Harness::start(
        "refused",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    let expect = |role: &str| {
        (
            "28P01".to_owned(),
            format!("password authentication failed for user \"{role}\""),
        )
    };
    for (role, password) in [
        ("alice", "not-the-password"),
        ("nobody_at_all", "whatever"),
        ("nologin_role", "nologin-secret"),
        ("expired_role", "expired-secret"),
        ("md5_role", "md5-secret"),
        // A superuser with its right password: not served unless configured.
        ("postgres", "admin-secret"),
    ] {
        let plain = login_error(harness.plain(role, password).await);
        assert_eq!(plain, expect(role), "plain login as {role}");
        let tls = login_error(harness.tls(role, password, ChannelBinding::Prefer).await);
        assert_eq!(tls, expect(role), "TLS login as {role}");
    }
    // And the gateway still serves the right password afterwards.
    harness.plain("alice", ALICE_PASSWORD).await.expect("login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_serves_new_handshakes_and_a_bad_one_changes_nothing() {
    let harness = Harness::start("reload", Setup::default()).await;
    let login_trusting = |ca_pem: String| {
        let mut config = harness.config("alice", ALICE_PASSWORD);
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        async move {
            let tls =
                tokio_postgres_rustls::MakeRustlsConnect::new(common::client_tls_trusting(&ca_pem));
            config.connect(tls).await.map(|(client, connection)| {
                tokio::spawn(connection);
                client
            })
        }
    };
    let old_ca = harness.pki.ca_pem.clone();
    let before = login_trusting(old_ca.clone())
        .await
        .expect("the first certificate");

    // A key that does not exist: refused, the old certificate stays.
    let missing = curfew_gateway::TlsFiles {
        cert: harness.dir.join("gateway.crt"),
        key: harness.dir.join("no-such.key"),
    };
    assert!(harness.tls_handle.reload(&missing).is_err());
    login_trusting(old_ca.clone())
        .await
        .expect("still the first certificate");

    let next = curfew_sandbox::TestPki::generate(&["localhost", "127.0.0.1"]).expect("PKI");
    let files = curfew_gateway::TlsFiles {
        cert: harness.dir.write("next.crt", &next.server.cert_pem, 0o644),
        key: harness.dir.write("next.key", &next.server.key_pem, 0o600),
    };
    harness.tls_handle.reload(&files).expect("reload");
    login_trusting(next.ca_pem.clone())
        .await
        .expect("the new certificate");
    assert!(
        login_trusting(old_ca).await.is_err(),
        "the old CA still works"
    );
    // A session that started before keeps going.
    before.simple_query("SELECT 1").await.expect("old session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sasl_messages_end_as_the_same_28p01_as_a_wrong_password() {
    let harness = Harness::start("malformed-sasl", Setup::default()).await;
    let wrong = login_error(harness.plain("alice", "not-the-password").await);
    assert_eq!(wrong.0, "28P01");
    let mut minus_one = b"SCRAM-SHA-256\0".to_vec();
    minus_one.extend_from_slice(&(-1i32).to_be_bytes());
    let mut not_utf8 = vec![0xff, 0xfe, 0];
    not_utf8.extend_from_slice(&5i32.to_be_bytes());
    not_utf8.extend_from_slice(b"n,,n=");
    let mut short_data = b"SCRAM-SHA-256\0".to_vec();
    short_data.extend_from_slice(&100i32.to_be_bytes());
    short_data.extend_from_slice(b"n,,");
    for (what, body) in [
        ("SASL data of length -1", minus_one),
        ("a mechanism name that is not UTF-8", not_utf8),
        ("no NUL after the mechanism", b"SCRAM-SHA-256".to_vec()),
        ("data shorter than its length", short_data),
        ("an empty body", Vec::new()),
    ] {
        for role in ["alice", "nobody_at_all"] {
            let mut stream = tokio::net::TcpStream::connect(harness.addr)
                .await
                .expect("connect");
            let refusal = common::raw::sasl_refusal(&mut stream, role, &body)
                .await
                .unwrap_or_else(|e| panic!("{what} as {role}: {e}"));
            assert_eq!(
                refusal,
                (
                    wrong.0.clone(),
                    wrong.1.replace("\"alice\"", &format!("\"{role}\""))
                ),
                "{what} as {role}"
            );
        }
    }
    // And the gateway still serves the right password afterwards.
    harness.plain("alice", ALICE_PASSWORD).await.expect("login");
}
