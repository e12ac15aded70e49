//! The webhook over TLS, against a local server with a throwaway CA: the event arrives when the
//! CA is trusted, and a server the system does not trust is refused. The queue drops at once
//! when full; a failing webhook is tried [`crate::ATTEMPTS`] times with its backoff (real
//! time: the HTTP exchange is real I/O) and reported once.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::webhook;

/// A TLS server on 127.0.0.1 that answers every request with 200; the requests it read go to
/// the returned channel. Its CA certificate (PEM) is returned too.
async fn tls_server() -> (u16, String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let pki = curfew_sandbox::TestPki::generate(&["127.0.0.1"]).unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.server.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.server.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = tls.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data);
                if text.contains("\r\n\r\n") && text.ends_with('}') {
                    break;
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&data).into_owned());
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            let _ = tls.shutdown().await;
        }
    });
    (port, pki.ca_pem, rx)
}

#[tokio::test]
async fn an_https_webhook_is_posted_over_tls_and_an_untrusted_server_is_refused() {
    let (port, ca_pem, mut requests) = tls_server().await;
    let url = format!("https://127.0.0.1:{port}/hook/SECRET?x=1");
    let body = r#"{"event":"session_warned"}"#;

    // Trusting the throwaway CA: the event arrives, over TLS.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let trusting = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    webhook::post(&url, body, Some(Ok(Arc::new(trusting))))
        .await
        .unwrap();
    let request = requests.recv().await.unwrap();
    assert!(
        request.starts_with("POST /hook/SECRET?x=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.ends_with(body), "{request}");

    // With the system's roots, which do not hold that CA: refused, and the error shows no
    // path or token.
    let system = webhook::tls_config().unwrap();
    let error = webhook::post(&url, body, Some(Ok(system)))
        .await
        .unwrap_err();
    assert!(error.contains("certificate"), "{error}");
    assert!(
        error.starts_with(&format!("TLS with https://127.0.0.1:{port}/…")),
        "{error}"
    );
    assert!(!error.contains("SECRET"), "{error}");
}

/// A warning for the queue and delivery tests.
fn warning(rule: &str) -> crate::Warning {
    crate::Warning {
        by: crate::By::Gateway,
        target: "db".to_owned(),
        rule: rule.to_owned(),
        role: "kim".to_owned(),
        database: "app".to_owned(),
        application: "psql".to_owned(),
        pid: 7,
        backend_start: None,
        deadline: Some("2026-11-27T12:15:00Z".parse().unwrap()),
        reason: "idle for 13m00s; limit 15m".to_owned(),
        policy_sha256: None,
        seq: None,
        client: Some("10.0.0.7:50123".to_owned()),
    }
}

#[test]
fn a_full_queue_drops_at_once_and_says_so() {
    let notifier = crate::Notifier::new();
    let mut dropped = 0;
    for n in 0..300 {
        notifier.send(warning(&format!("r{n}")), || dropped += 1);
    }
    assert_eq!(dropped, 300 - 256);
    // The receiving end is handed out once.
    assert!(notifier.take_receiver().is_some());
    assert!(notifier.take_receiver().is_none());
}

#[tokio::test]
async fn a_failing_webhook_is_tried_three_times_with_backoff_then_reported_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let mut data = Vec::new();
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data);
                if text.contains("\r\n\r\n") && text.ends_with('}') {
                    break;
                }
            }
            let _ = seen_tx.send((std::time::Instant::now(), data));
            let _ = tcp
                .write_all(b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    let notifier = crate::Notifier::new();
    let deliveries = notifier.take_receiver().unwrap();
    let settings = curfew_policy::NotifySettings {
        command: None,
        webhook: Some(format!("http://127.0.0.1:{port}/hook/TOKEN")),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (failed_tx, mut failed) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(crate::run(
        deliveries,
        move || settings.clone(),
        stop,
        move |hook, error| {
            let _ = failed_tx.send((hook, error));
        },
    ));
    assert!(notifier.send(warning("inactivity"), || {}));
    let (hook, error) = tokio::time::timeout(std::time::Duration::from_secs(20), failed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hook, crate::Hook::Webhook);
    assert!(error.contains("answered 500"), "{error}");
    assert!(!error.contains("TOKEN"), "{error}");
    let mut attempts = Vec::new();
    while let Ok(attempt) = seen.try_recv() {
        attempts.push(attempt);
    }
    assert_eq!(attempts.len(), crate::ATTEMPTS as usize);
    // The backoff: 1 s, then 2 s.
    let first_wait = attempts[1].0 - attempts[0].0;
    let second_wait = attempts[2].0 - attempts[1].0;
    assert!(
        first_wait >= std::time::Duration::from_millis(950),
        "{first_wait:?}"
    );
    assert!(
        second_wait >= std::time::Duration::from_millis(1950),
        "{second_wait:?}"
    );
    let body = String::from_utf8_lossy(&attempts[0].1).into_owned();
    assert!(body.contains("\"by\":\"gateway\""), "{body}");
    assert!(body.contains("\"client\":\"10.0.0.7:50123\""), "{body}");
    assert!(failed.try_recv().is_err(), "reported more than once");
    stop_tx.send_replace(true);
    task.await.unwrap();
}
