//! Connecting to a real MariaDB: the privilege check names the exact GRANT missing; an account
//! with a quote in its name is read and ended like any other; a password is never shown.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_mysql::{MysqlError, Verdict, connect};
use curfew_sandbox::MariaDbOptions;
use curfew_testkit::TempDir;
use fixture::{Fixture, alive};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_privileges_are_named_with_the_exact_grant() {
    let f = Fixture::start(MariaDbOptions::default());
    f.server
        .admin_sql(
            "CREATE USER 'bare'@'127.0.0.1';
             CREATE USER 'watcher'@'127.0.0.1';
             GRANT PROCESS ON *.* TO 'watcher'@'127.0.0.1';",
        )
        .unwrap();
    let err = connect(&f.target_as("bare", None)).await.unwrap_err();
    assert!(
        matches!(err, MysqlError::MissingPrivileges { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "target \"m\": account `bare`@`127.0.0.1` lacks privileges curfew needs; an administrator must run: GRANT PROCESS ON *.* TO `bare`@`127.0.0.1`; GRANT CONNECTION ADMIN ON *.* TO `bare`@`127.0.0.1`"
    );
    let err = connect(&f.target_as("watcher", None)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "target \"m\": account `watcher`@`127.0.0.1` lacks privileges curfew needs; an administrator must run: GRANT CONNECTION ADMIN ON *.* TO `watcher`@`127.0.0.1`"
    );
    // The statement it names, run as written, is enough.
    f.server
        .admin_sql("GRANT CONNECTION ADMIN ON *.* TO `watcher`@`127.0.0.1`")
        .unwrap();
    let connected = connect(&f.target_as("watcher", None)).await.unwrap();
    // Without SELECT on performance_schema, program names are unknown, and it says how.
    assert!(
        connected.warnings.iter().any(|w| w.contains(
            "GRANT SELECT ON performance_schema.session_connect_attrs TO `watcher`@`127.0.0.1`"
        )),
        "{:?}",
        connected.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_without_showing_it() {
    let f = Fixture::start(MariaDbOptions::default());
    let dir = TempDir::new("mysql", "wrong");
    let file = dir.write("pw", "not-the-password-xyz\n", 0o600);
    let err = connect(&f.target_as(fixture::AGENT, Some(file)))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, MysqlError::Connect { .. }), "{shown}");
    assert_eq!(err.server_code(), Some(1045), "{shown}");
    assert!(!shown.contains("not-the-password"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_with_a_quote_in_its_name_is_read_and_ended() {
    let f = Fixture::start(MariaDbOptions::default());
    f.server
        .admin_sql("CREATE USER 'o''brien'@'localhost'; CREATE USER 'o''brien\\\\'@'localhost';")
        .unwrap();
    let names = f
        .server
        .admin_sql("SELECT user FROM mysql.user WHERE user LIKE 'o%' ORDER BY user")
        .unwrap();
    assert_eq!(names, "o'brien\no'brien\\\\", "as the client prints them");
    let mut curfew = f.curfew().await;
    let mut quoted = f.socket_client("o'brien").await;
    let mut other = f.socket_client("o'brien\\").await;
    let snapshot = curfew.snapshot().await.unwrap();
    let s = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(quoted.id()))
        .unwrap();
    assert_eq!(&*s.role, "o'brien");
    let request = curfew
        .kill_request(&curfew_backend::EndRequest::identity_only(s.key()))
        .unwrap();
    let verdicts = curfew.kill_all(&[request]).await.unwrap();
    assert_eq!(verdicts.verdicts, [Verdict::Killed]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!alive(&mut quoted).await);
    assert!(
        alive(&mut other).await,
        "the other account's session was ended"
    );
}
