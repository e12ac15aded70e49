//! TLS to a real MariaDB: `verify-full` against the server's CA connects, a wrong CA or name is
//! refused, and a server requiring secure transport refuses `sslmode=disable`.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_mysql::{MysqlError, MysqlTarget, MysqlUrl, connect};
use curfew_sandbox::{MariaDbOptions, TestPki};
use curfew_testkit::TempDir;
use fixture::Fixture;

fn target(f: &Fixture, host: &str, params: &str) -> MysqlTarget {
    let mut t = f.target();
    t.url = MysqlUrl::parse(&format!(
        "mariadb://{}@{host}:{}/?{params}",
        fixture::AGENT,
        f.server.port()
    ))
    .unwrap();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_chain_and_the_name() {
    let pki = TestPki::generate(&["127.0.0.1"]).unwrap();
    let other = TestPki::generate(&["127.0.0.1"]).unwrap();
    let f = Fixture::start(MariaDbOptions {
        tls: Some(pki.server.clone()),
        settings: vec![("require-secure-transport".to_owned(), "ON".to_owned())],
        ..MariaDbOptions::default()
    });
    let dir = TempDir::new("mysql", "tls");
    let ca = dir.write("ca.pem", &pki.ca_pem, 0o644);
    let wrong_ca = dir.write("other.pem", &other.ca_pem, 0o644);

    let good = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let connected = connect(&target(&f, "127.0.0.1", &good)).await.unwrap();
    let cipher = f
        .server
        .admin_sql(&format!(
            "SELECT VARIABLE_VALUE FROM performance_schema.status_by_thread s \
             JOIN performance_schema.threads t USING (THREAD_ID) \
             WHERE t.PROCESSLIST_ID = {} AND VARIABLE_NAME = 'Ssl_cipher'",
            connected.connection.info().connection_id
        ))
        .unwrap();
    assert!(!cipher.is_empty(), "no TLS cipher on curfew's session");

    let wrong = format!("sslmode=verify-full&sslrootcert={}", wrong_ca.display());
    let err = connect(&target(&f, "127.0.0.1", &wrong)).await.unwrap_err();
    assert!(matches!(err, MysqlError::Connect { .. }), "{err}");
    // The certificate names 127.0.0.1, not localhost: verify-full refuses. So does verify-ca
    // for now, stricter than libpq's: mysql_async 0.37 skips the name check only on an error
    // text rustls 0.23 no longer writes (see the crate's `connect`). When this fails, the
    // driver was fixed: verify-ca then accepts, and the docs say so.
    let by_name = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    assert!(connect(&target(&f, "localhost", &by_name)).await.is_err());
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    let err = connect(&target(&f, "localhost", &ca_only))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");

    let err = connect(&target(&f, "127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(
        err.server_code().is_some(),
        "the server's refusal keeps its number: {err:?}"
    );
}
