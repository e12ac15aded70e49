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

/// An account an administrator locked stays locked whoever holds curfew's password: the
/// procedure unlocks only accounts it locked itself (review 5, finding 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_account_lock_unlocked_an_account_an_administrator_locked() {
    let f = server();
    f.server
        .admin_sql("CREATE USER 'gone'@'%' ACCOUNT LOCK; CREATE USER 'kim'@'%';")
        .unwrap();
    let mut thief = f.as_curfew_account().await;
    let unlock = "CALL `curfew`.`set_account_lock`(?, ?, FALSE)";
    let lock = "CALL `curfew`.`set_account_lock`(?, ?, TRUE)";
    let locked = |user: &str| {
        let out = f
            .server
            .admin_sql(&format!(
                "SELECT COALESCE(JSON_VALUE(Priv, '$.account_locked'), '0') FROM mysql.global_priv \
                 WHERE User = '{user}' AND Host = '%'"
            ))
            .unwrap();
        matches!(out.trim(), "1" | "true")
    };
    let e = thief.exec_drop(unlock, ("gone", "%")).await.unwrap_err();
    assert_eq!(code(e), 1227);
    assert!(
        locked("gone"),
        "curfew's account unlocked an administrator's lock"
    );
    // Locking one already locked does not make it curfew's to unlock.
    thief.exec_drop(lock, ("gone", "%")).await.unwrap();
    let e = thief.exec_drop(unlock, ("gone", "%")).await.unwrap_err();
    assert_eq!(code(e), 1227);
    assert!(locked("gone"));
    // What it locked, it unlocks.
    thief.exec_drop(lock, ("kim", "%")).await.unwrap();
    assert!(locked("kim"));
    thief.exec_drop(unlock, ("kim", "%")).await.unwrap();
    assert!(!locked("kim"));
}

/// An account administrator without `SUPER` (MariaDB 10.5+ split it) is never locked: `ALL`
/// with `SUPER` revoked, `CREATE USER` alone, `GRANT OPTION` alone (review 5, finding 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_account_lock_locked_an_administrator_without_super() {
    let f = server();
    f.server
        .admin_sql(
            "CREATE USER 'all_but_super'@'%'; GRANT ALL ON *.* TO 'all_but_super'@'%';
             REVOKE SUPER ON *.* FROM 'all_but_super'@'%';
             CREATE USER 'creator'@'%'; GRANT CREATE USER ON *.* TO 'creator'@'%';
             CREATE USER 'granter'@'%'; GRANT SELECT ON *.* TO 'granter'@'%' WITH GRANT OPTION;
             CREATE USER 'reader'@'%'; GRANT SELECT ON *.* TO 'reader'@'%';",
        )
        .unwrap();
    let mut thief = f.as_curfew_account().await;
    let lock = "CALL `curfew`.`set_account_lock`(?, ?, TRUE)";
    for admin in ["all_but_super", "creator", "granter"] {
        let e = thief.exec_drop(lock, (admin, "%")).await.unwrap_err();
        assert_eq!(code(e), 1227, "{admin} was locked");
    }
    thief.exec_drop(lock, ("reader", "%")).await.unwrap();
    // The agent's view agrees: those are administrators, never asked for.
    let c = f.curfew().await;
    use curfew_backend::LoginLedger as _;
    let roles = c.roles().await.unwrap();
    for (name, admin) in [
        ("all_but_super", true),
        ("creator", true),
        ("granter", true),
        ("reader", false),
    ] {
        let role = roles.iter().find(|r| r.name == name).unwrap();
        assert_eq!(role.superuser, admin, "{name}");
    }
}
