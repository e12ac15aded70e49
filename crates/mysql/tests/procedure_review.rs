//! Adversarial cases for the procedures `curfew init` installs on MariaDB (review 5), run as
//! whoever holds curfew's account password.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_sandbox::MariaDbOptions;
use fixture::Fixture;
use mysql_async::prelude::Queryable;

fn server() -> Fixture {
    let f = Fixture::start(MariaDbOptions::default());
    f.install_curfew();
    f
}

fn code(e: mysql_async::Error) -> u16 {
    match e {
        mysql_async::Error::Server(e) => e.code,
        other => panic!("not a server error: {other}"),
    }
}

/// Whether `mariadb.sys`@`localhost` is locked, as the server says.
fn mariadb_sys_locked(f: &Fixture) -> bool {
    let out = f
        .server
        .admin_sql(
            "SELECT COALESCE(JSON_VALUE(Priv, '$.account_locked'), '0') FROM mysql.global_priv \
             WHERE User = 'mariadb.sys' AND Host = 'localhost'",
        )
        .unwrap();
    matches!(out.trim(), "1" | "true")
}

/// `mariadb.sys`@`localhost` is the server's own locked account (no password, no SUPER, but
/// `SELECT` and `DELETE` on `mysql.global_priv`: every password hash). Unlocked, a local
/// client logs in as it with an empty password and, once it sets one, reads and deletes every
/// account. curfew never locked it, so curfew's account must not be able to unlock it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_account_lock_unlocked_mariadb_sys() {
    let f = server();
    assert!(mariadb_sys_locked(&f), "the server's account starts locked");
    let mut thief = f.as_curfew_account().await;
    let call = "CALL `curfew`.`set_account_lock`(?, ?, FALSE)";
    for user in ["mariadb.sys", "mariadb.sys ", "MARIADB.SYS"] {
        let refused = thief.exec_drop(call, (user, "localhost")).await;
        match refused {
            Err(e) => assert!(
                matches!(code(e), 1227 | 1396),
                "{user:?}: not refused as the procedure refuses"
            ),
            Ok(()) => panic!("{user:?}: curfew's account unlocked mariadb.sys"),
        }
        assert!(mariadb_sys_locked(&f), "{user:?}: mariadb.sys unlocked");
    }
}
