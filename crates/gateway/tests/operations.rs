//! The gateway's operations against real PostgreSQL: the drain (a session still running at
//! `shutdown_timeout` gets FATAL 57P01 with the reason, one that ends by itself is not touched,
//! no new client is accepted meanwhile), the reload (a new certificate for the next client
//! while an old session goes on; a certificate that does not load keeps the old one), the
//! metrics after logins, a failed login and session ends, and the audit records (their fields,
//! and the chain verifies).

mod common;

use std::time::{Duration, Instant};

use common::{ALICE_PASSWORD, Harness, Setup, client_tls_trusting};
use curfew_gateway::{PolicyGateway, SHUTDOWN_REASON, TlsFiles};
use curfew_postgres::{ConnectionUrl, TargetSpec};
use curfew_sandbox::TestPki;
use tokio::task::JoinHandle;
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// alice through the gateway without TLS, with the connection task's handle.
async fn alice(harness: &Harness) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
    let mut config = harness.config("alice", ALICE_PASSWORD);
    config.ssl_mode(SslMode::Disable);
    let (client, connection) = config.connect(NoTls).await.expect("login");
    (client, tokio::spawn(connection))
}

/// The audit log's records as JSON, in order.
fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("audit log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_only_the_sessions_still_running_at_the_timeout_and_accepts_no_one() {
    let mut harness = Harness::start(
        "ops-drain",
        Setup {
            shutdown_timeout: Duration::from_secs(3),
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    let (lingering, lingering_connection) = alice(&harness).await;
    let (leaving, leaving_connection) = alice(&harness).await;
    lingering.simple_query("SELECT 1").await.expect("query");
    leaving.simple_query("SELECT 1").await.expect("query");

    let begun = Instant::now();
    harness.stop();
    // No new client once the drain has begun: the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(harness.addr).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway still accepts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        alice_login_fails(&harness).await,
        "a login succeeded during the drain"
    );
    // The sessions in progress still work during the drain.
    lingering
        .simple_query("SELECT 2")
        .await
        .expect("a query during the drain");
    // One session ends by itself within the timeout: it is not touched. (At once: on a
    // loaded machine the steps above can take much of the 3 s timeout.)
    drop(leaving);
    let left = tokio::time::timeout(Duration::from_secs(5), leaving_connection)
        .await
        .expect("the leaving connection ends")
        .expect("no panic");
    assert!(
        left.is_ok(),
        "the session that left was disturbed: {left:?}"
    );
    // The other is ended at the timeout with FATAL 57P01 and the reason.
    let ended = tokio::time::timeout(Duration::from_secs(20), lingering_connection)
        .await
        .expect("the lingering connection ends")
        .expect("no panic");
    let elapsed = begun.elapsed();
    let error = ended.expect_err("ended with the FATAL");
    let db = error.as_db_error().expect("a server-style error");
    assert_eq!(db.code().code(), "57P01");
    assert_eq!(db.severity(), "FATAL");
    assert_eq!(db.detail(), Some(SHUTDOWN_REASON));
    assert!(
        elapsed >= Duration::from_millis(2500),
        "ended after {elapsed:?}, before the 3 s shutdown timeout"
    );
    let drained = tokio::time::timeout(Duration::from_secs(20), harness.stopped())
        .await
        .expect("the gateway returns");
    // At the start: the two sessions, and perhaps a probe above accepted just before the
    // listener closed (it leaves at once).
    assert_eq!(drained.ended, 1, "{drained:?}");
    assert!(drained.at_start >= 2, "{drained:?}");
    assert!(
        harness
            .gateway
            .metrics_text()
            .contains("curfew_gateway_sessions_ended_total{how=\"ended_by_gateway\"} 1\n")
    );

    // The audit records: started, two sessions, how each ended, failed logins counted,
    // stopped; the chain verifies.
    let path = harness.audit_log.clone().expect("an audit log");
    let records = records(&path);
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(events.first(), Some(&"gateway_started"), "{events:?}");
    assert_eq!(events.last(), Some(&"gateway_stopped"), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| **e == "session_started").count(),
        2
    );
    let ended: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "session_ended")
        .collect();
    assert_eq!(ended.len(), 2, "{events:?}");
    let how: Vec<&str> = ended
        .iter()
        .map(|r| r["result"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(how, ["client_left", "ended_by_gateway"]);
    for record in &ended {
        assert_eq!(record["target"], "primary");
        assert_eq!(record["session"]["role"], "alice");
        assert_eq!(record["session"]["database"], "postgres");
        assert_eq!(record["session"]["client_addr"], "127.0.0.1");
        assert_eq!(record["session"]["application"], "gateway test");
        assert!(record["session"]["pid"].as_i64().unwrap_or_default() > 0);
        let detail = &record["detail"];
        assert!(detail["client_port"].as_u64().unwrap_or_default() > 0);
        assert_eq!(detail["tls"], false);
        assert!(detail["duration_ms"].as_u64().is_some(), "{detail}");
        assert!(
            detail["bytes_client_to_server"]
                .as_u64()
                .unwrap_or_default()
                > 0
        );
        assert!(
            detail["bytes_server_to_client"]
                .as_u64()
                .unwrap_or_default()
                > 0
        );
    }
    let stopped = records.last().expect("records");
    assert_eq!(stopped["detail"]["sessions_ended"], 1);
    let verification = curfew_audit::verify(&path).expect("verify");
    assert!(verification.is_intact(), "{:?}", verification.problems);
    assert_eq!(verification.records, records.len() as u64);
}

/// Whether alice's login through the gateway fails (within 5 s).
async fn alice_login_fails(harness: &Harness) -> bool {
    let mut config = harness.config("alice", ALICE_PASSWORD);
    config
        .ssl_mode(SslMode::Disable)
        .connect_timeout(Duration::from_secs(5));
    config.connect(NoTls).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_to_the_next_client_while_an_old_session_goes_on() {
    let harness = Harness::start(
        "ops-reload",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    let old = harness
        .tls("alice", ALICE_PASSWORD, ChannelBinding::Prefer)
        .await
        .expect("a TLS session on the old certificate");
    // A new certificate from a CA of its own: only a client trusting that CA accepts it.
    let renewed = TestPki::generate(&["localhost", "127.0.0.1"]).expect("certificates");
    let files = TlsFiles {
        cert: harness
            .dir
            .write("renewed.crt", &renewed.server.cert_pem, 0o644),
        key: harness
            .dir
            .write("renewed.key", &renewed.server.key_pem, 0o600),
    };
    let auth = TargetSpec {
        name: "primary".to_owned(),
        url: ConnectionUrl::parse("postgresql://curfew_gateway@127.0.0.1/postgres").expect("URL"),
        password_file: None,
    };
    let mut config = (*harness.gateway.config()).clone();
    config.tls = Some(files);
    config.max_clients = 7;
    config.listen = vec!["127.0.0.1:1".parse().expect("address")];
    let reloaded = harness
        .gateway
        .reload(
            &PolicyGateway {
                config,
                auth: auth.clone(),
                policy: None,
            },
            &auth,
        )
        .await
        .expect("the reload");
    assert_eq!(reloaded.applied, ["tls_cert/tls_key", "max_clients"]);
    assert_eq!(reloaded.needs_restart, ["listen"]);
    assert_eq!(harness.gateway.config().max_clients, 7);
    assert_eq!(harness.gateway.config().listen, vec![harness.addr]);

    let renewed_client = |ca: &str| {
        let mut config = harness.config("alice", ALICE_PASSWORD);
        config
            .ssl_mode(SslMode::Require)
            .channel_binding(ChannelBinding::Prefer);
        let connector = MakeRustlsConnect::new(client_tls_trusting(ca));
        async move {
            let (client, connection) = config.connect(connector).await?;
            tokio::spawn(connection);
            Ok::<Client, tokio_postgres::Error>(client)
        }
    };
    let next = renewed_client(&renewed.ca_pem)
        .await
        .expect("the next client gets the new certificate");
    next.simple_query("SELECT 1").await.expect("query");
    // libpq verifies the new certificate's name and binds SCRAM to it (channel binding
    // uses the certificate of the session's own handshake).
    let renewed_ca = harness.dir.write("renewed-ca.pem", &renewed.ca_pem, 0o644);
    let bound = harness
        .psql(
            "alice",
            ALICE_PASSWORD,
            &format!(
                "sslmode=verify-full channel_binding=require sslrootcert={}",
                renewed_ca.display()
            ),
            "SELECT 'bound'",
        )
        .await
        .expect("psql with the new CA and channel_binding=require");
    assert_eq!(bound, "bound");
    assert!(
        renewed_client(&harness.pki.ca_pem).await.is_err(),
        "the old certificate is still served"
    );
    // The old session goes on, on the old certificate.
    let row = old
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("the old session still works");
    assert_eq!(row.get::<_, String>(0), "alice");

    // A certificate that does not load: the reload fails and the running one stays.
    let mut broken = (*harness.gateway.config()).clone();
    broken.tls = Some(TlsFiles {
        cert: harness
            .dir
            .write("broken.crt", "not a certificate\n", 0o644),
        key: harness.dir.join("renewed.key"),
    });
    broken.max_clients = 3;
    let error = harness
        .gateway
        .reload(
            &PolicyGateway {
                config: broken,
                auth: auth.clone(),
                policy: None,
            },
            &auth,
        )
        .await
        .expect_err("a broken certificate is refused");
    assert!(error.to_string().contains("broken.crt"), "{error}");
    assert_eq!(harness.gateway.config().max_clients, 7);
    renewed_client(&renewed.ca_pem)
        .await
        .expect("still the renewed certificate");
    let metrics = harness.gateway.metrics_text();
    // The certificate in force's notAfter, so an alert can fire before it expires.
    let not_after = harness
        .gateway
        .tls()
        .current()
        .and_then(|tls| tls.not_after)
        .expect("the renewed certificate's notAfter");
    assert!(not_after > jiff::Timestamp::now().as_second());
    let expiry = format!(
        "curfew_gateway_tls_certificate_expiry_timestamp_seconds{{certificate=\"client_leg\"}} {not_after}\n"
    );
    assert!(
        metrics.contains(&expiry),
        "{expiry:?} missing from\n{metrics}"
    );
    assert!(
        metrics.contains("curfew_gateway_reloads_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("curfew_gateway_reloads_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );
    // Both recorded, the failure with its reason.
    let path = harness.audit_log.clone().expect("an audit log");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reloads: Vec<serde_json::Value> = records(&path)
            .into_iter()
            .filter(|r| r["event"] == "gateway_reloaded")
            .collect();
        if reloads.len() == 2 {
            assert_eq!(reloads[0]["result"], "ok");
            assert_eq!(reloads[0]["detail"]["needs_restart"][0], "listen");
            assert_eq!(reloads[1]["result"], "failed");
            assert!(
                reloads[1]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("broken.crt")
            );
            break;
        }
        assert!(Instant::now() < deadline, "{reloads:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_logins_failures_refusals_and_session_ends() {
    let mut harness = Harness::start(
        "ops-metrics",
        Setup {
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    let (client, connection) = alice(&harness).await;
    let text: String = client
        .query_one("SELECT repeat('z', 10000)", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(text.len(), 10000);
    let during = harness.gateway.metrics_text();
    assert!(during.contains("curfew_gateway_sessions 1\n"), "{during}");
    assert!(during.contains("curfew_gateway_clients 1\n"), "{during}");
    assert!(harness.plain("alice", "not-the-password").await.is_err());
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = harness.gateway.metrics_text();
        // The failed login is counted after its client already has the FATAL: both awaited.
        if metrics.contains("curfew_gateway_sessions_ended_total{how=\"client_left\"} 1\n")
            && metrics.contains("curfew_gateway_auth_failures_total{cause=\"password\"} 1\n")
        {
            break metrics;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "curfew_gateway_sessions_started_total 1\n",
        "curfew_gateway_sessions 0\n",
        "curfew_gateway_auth_failures_total{cause=\"password\"} 1\n",
        "curfew_gateway_draining 0\n",
        "curfew_gateway_audit_write_failures_total 0\n",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }
    let bytes = |direction: &str| -> u64 {
        let prefix = format!("curfew_gateway_bytes_total{{direction=\"{direction}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {direction} bytes in\n{metrics}"))
    };
    assert!(bytes("server_to_client") >= 10000);
    assert!(bytes("client_to_server") > 0);
    let health = harness.gateway.health();
    assert!(health.iter().all(|c| c.ok), "{health:?}");
    assert_eq!(
        health.iter().map(|c| c.what.as_str()).collect::<Vec<_>>(),
        ["gateway", "certificate", "audit log"]
    );
    // A failed login is not its own record: it is counted, and written with the others.
    let path = harness.audit_log.clone().expect("an audit log");
    assert!(
        !records(&path).iter().any(|r| r["event"] == "logins_failed"),
        "a failed login was written at once"
    );
    harness.stop();
    harness.stopped().await;
    let failed: Vec<serde_json::Value> = records(&path)
        .into_iter()
        .filter(|r| r["event"] == "logins_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["detail"]["count"], 1);
    assert_eq!(failed[0]["detail"]["by_cause"]["password"], 1);
}

/// Regression: a reloaded `max_clients` was reported as applied while the accept limit stayed
/// the one sized at start. A lowered limit ends nobody and refuses the next client; a raised
/// one admits more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_max_clients_applies_to_the_next_client() {
    let harness = Harness::start(
        "reload-max-clients",
        Setup {
            max_clients: 2,
            ..Setup::default()
        },
    )
    .await;
    let auth = TargetSpec {
        name: "primary".to_owned(),
        url: ConnectionUrl::parse("postgresql://curfew_gateway@127.0.0.1/postgres").expect("URL"),
        password_file: None,
    };
    let reload_to = |limit: usize| {
        let mut config = (*harness.gateway.config()).clone();
        config.max_clients = limit;
        let mapped = PolicyGateway {
            config,
            auth: auth.clone(),
            policy: None,
        };
        let (gateway, auth) = (harness.gateway.clone(), auth.clone());
        async move { gateway.reload(&mapped, &auth).await.expect("the reload") }
    };
    let (first, _first_task) = alice(&harness).await;
    assert_eq!(reload_to(1).await.applied, ["max_clients"]);
    let (code, _) = common::login_error(harness.plain("alice", ALICE_PASSWORD).await);
    assert_eq!(code, "53300", "over the lowered limit");
    first
        .simple_query("SELECT 1")
        .await
        .expect("the session over the new limit goes on");
    reload_to(3).await;
    let (_second, _t2) = alice(&harness).await;
    let (_third, _t3) = alice(&harness).await;
    let (code, _) = common::login_error(harness.plain("alice", ALICE_PASSWORD).await);
    assert_eq!(code, "53300", "over the raised limit");
}
