//! Adversarial cases for MariaDB login locks (review of the merged ledger): server SQL modes a
//! DBA may set, odd account names, an account renamed while curfew holds it locked, values in
//! the ledger that are not what curfew wrote, a client calling itself `curfew`, and secrets in
//! `Debug`. Each test states what must hold; the ones that fail on the merged code are the
//! review's findings.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_audit::{AuditLog, Intent, LoginChange as Change};
use curfew_backend::{LedgerStatus, LoginChange, LoginLedger};
use curfew_mysql::Connection;
use curfew_sandbox::MariaDbOptions;
use curfew_testkit::TempDir;
use fixture::{AGENT, Fixture};
use jiff::Timestamp;

/// An audit log in a directory of its own, removed when the returned `TempDir` is dropped.
fn audit_log(name: &str) -> (TempDir, AuditLog) {
    let dir = TempDir::new("mysql-review", name);
    let log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
    (dir, log)
}

fn no_fault(_: &'static str) {}

/// A server started with `sql_mode` (none: the default), curfew installed as `curfew init`
/// installs it.
fn server(sql_mode: Option<&str>) -> Fixture {
    let settings = sql_mode
        .map(|m| vec![("sql-mode".to_owned(), m.to_owned())])
        .unwrap_or_default();
    let f = Fixture::start(MariaDbOptions {
        settings,
        ..MariaDbOptions::default()
    });
    f.install_curfew();
    f
}

/// `name` as a backquoted identifier (the same under every SQL mode).
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn create_user(f: &Fixture, user: &str, host: &str) {
    f.server
        .admin_sql(&format!("CREATE USER {}@{};", ident(user), ident(host)))
        .unwrap();
}

/// Each account of `user` (host, locked) as the server says, read under the default SQL mode.
fn locked(f: &Fixture, user: &str) -> Vec<(String, bool)> {
    let hex: String = user.bytes().map(|b| format!("{b:02X}")).collect();
    let out = f
        .server
        .admin_sql(&format!(
            "SET SESSION sql_mode = ''; \
             SELECT Host, COALESCE(JSON_VALUE(Priv, '$.account_locked'), '0') FROM mysql.global_priv \
             WHERE User = CONVERT(X'{hex}' USING utf8mb4) ORDER BY Host"
        ))
        .unwrap();
    out.lines()
        .map(|l| {
            let (host, locked) = l.split_once('\t').unwrap();
            (host.to_owned(), locked == "1" || locked == "true")
        })
        .collect()
}

async fn id_of(c: &Connection, user: &str) -> u32 {
    let roles = c.roles().await.unwrap();
    roles
        .iter()
        .find(|r| r.name == user)
        .unwrap_or_else(|| {
            panic!(
                "no role {user:?} among {:?}",
                roles.iter().map(|r| &r.name).collect::<Vec<_>>()
            )
        })
        .oid
}

async fn change(c: &mut Connection, id: u32, restoring: bool) -> LoginChange {
    let (_dir, log) = audit_log("change");
    let token = log
        .intend(Intent::<Change>::new(Timestamp::now(), "m", None))
        .unwrap();
    let authorized = token.authorize(id);
    let result = match restoring {
        false => c.disable_login(&authorized, &no_fault).await,
        true => c.restore_login(&authorized, &no_fault).await,
    };
    result.unwrap()
}

/// A window lock on `user` locks every one of its accounts, and the window opening unlocks
/// them all again.
async fn lock_and_restore(f: &Fixture, c: &mut Connection, user: &str) {
    let id = id_of(c, user).await;
    c.sync_window_locks("night", &[(id, user.to_owned())], "closed")
        .await
        .unwrap();
    assert_eq!(
        change(c, id, false).await,
        LoginChange::Disabled,
        "{user:?}"
    );
    let now = locked(f, user);
    assert!(
        !now.is_empty() && now.iter().all(|(_, l)| *l),
        "{user:?}: {now:?}"
    );
    c.sync_window_locks("night", &[], "closed").await.unwrap();
    assert_eq!(change(c, id, true).await, LoginChange::Restored, "{user:?}");
    let now = locked(f, user);
    assert!(now.iter().all(|(_, l)| !*l), "{user:?}: {now:?}");
}

/// Fine on the merged code: names with `@`, `%`, quotes, unicode and the longest user name
/// MariaDB allows, under `ANSI_QUOTES,NO_BACKSLASH_ESCAPES` set server-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_lock_and_restore_under_ansi_quotes_and_no_backslash_escapes() {
    let f = server(Some("ANSI_QUOTES,NO_BACKSLASH_ESCAPES"));
    let long = "l".repeat(128);
    let names = ["a@b", "%", "x\"y", "q'z`w", "ünï", long.as_str()];
    for name in names {
        create_user(&f, name, "%");
        create_user(&f, name, "10.0.0.%");
    }
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    for name in names {
        lock_and_restore(&f, &mut c, name).await;
    }
}

/// Regression (review of the MariaDB ledger): with `PAD_CHAR_TO_FULL_LENGTH` in the server's `sql_mode`, `mysql.global_priv`'s
/// `CHAR` columns read back padded (`'kim' + 125 spaces`): no policy role name matches any
/// account, so a `lock_logins` rule or `curfew lock kim` locks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pad_char_to_full_length_on_the_server_does_not_hide_users() {
    let f = server(Some("PAD_CHAR_TO_FULL_LENGTH"));
    create_user(&f, "kim", "%");
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    lock_and_restore(&f, &mut c, "kim").await;
}

/// Regression (review of the MariaDB ledger): with `EMPTY_STRING_IS_NULL` in the server's `sql_mode`, the ledger's
/// `WHERE g.User <> ''` is `<> NULL`: no user is ever given an id, so no user can be locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_string_is_null_on_the_server_does_not_hide_users() {
    let f = server(Some("EMPTY_STRING_IS_NULL"));
    create_user(&f, "kim", "%");
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    lock_and_restore(&f, &mut c, "kim").await;
}

/// Regression (review of the MariaDB ledger): an administrator renames one of a user's accounts (`RENAME USER`, e.g. narrowing
/// its host) while curfew holds it locked. The lock moves with the account; curfew then takes
/// the renamed account for one locked before it and never unlocks it: stranded after the
/// window opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_renamed_while_locked_is_not_stranded() {
    let f = server(None);
    create_user(&f, "kim", "%");
    create_user(&f, "kim", "localhost");
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    let kim = id_of(&c, "kim").await;
    c.sync_window_locks("night", &[(kim, "kim".to_owned())], "closed")
        .await
        .unwrap();
    assert_eq!(change(&mut c, kim, false).await, LoginChange::Disabled);
    f.server
        .admin_sql("RENAME USER 'kim'@'%' TO 'kim'@'10.0.0.%';")
        .unwrap();
    // The agent's next rounds while the window is closed.
    let again = change(&mut c, kim, false).await;
    assert_eq!(again, LoginChange::NotNeeded);
    c.sync_window_locks("night", &[], "closed").await.unwrap();
    assert_eq!(change(&mut c, kim, true).await, LoginChange::Restored);
    assert_eq!(
        locked(&f, "kim"),
        vec![
            ("10.0.0.%".to_owned(), false),
            ("localhost".to_owned(), false)
        ],
        "curfew's lock stayed on the renamed account"
    );
}

/// Regression (review of the MariaDB ledger): a value in the ledger curfew did not write (here `applied = 2`, which a `BOOL`
/// column accepts) makes `mysql_async`'s `query::<(.., bool, bool)>` panic in `store::changes`
/// instead of returning an error: server data must be decoded fallibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_value_in_the_ledger_is_an_error_not_a_panic() {
    let f = server(None);
    create_user(&f, "kim", "%");
    let c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    f.server
        .admin_sql(
            "INSERT INTO curfew.account_change (user, host, action, applied, was_locked) \
             VALUES ('kim', '%', 'lock', 2, 0);",
        )
        .unwrap();
    let outcome = tokio::spawn(async move { c.locked_roles().await.map(|r| r.len()) }).await;
    match outcome {
        Ok(result) => assert!(result.is_err(), "{result:?}"),
        Err(e) => panic!("reading the ledger panicked: {e}"),
    }
}

/// Fine on the merged code: a client of another account presenting the program name `curfew`
/// is a session like any other (only curfew's own account's `curfew` connections are left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_calling_itself_curfew_is_still_a_session() {
    let f = server(None);
    let mut c = f.curfew().await;
    let client = f.client("app", "curfew").await;
    let sessions = c.snapshot().await.unwrap().sessions;
    assert!(
        sessions
            .iter()
            .any(|s| &*s.role == "app" && s.pid == i64::from(client.id())),
        "{sessions:?}"
    );
}

/// Regression (review of the MariaDB ledger): `Connection` derives `Debug` over `mysql_async::Conn`, whose `Debug` prints its
/// options, password included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_debug_holds_no_password() {
    let f = server(None);
    let c = f.curfew().await;
    let printed = format!("{c:?}");
    assert!(
        !printed.contains("agent-secret"),
        "the password is in Debug: {printed}"
    );
}

/// `sql_mode = ORACLE` set server-wide (MariaDB's compatibility mode: `ANSI_QUOTES`,
/// `PIPES_AS_CONCAT` and PL/SQL parsing): the ledger's tables, ids and steps still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_restore_under_oracle_mode() {
    let f = server(Some("ORACLE"));
    create_user(&f, "kim", "%");
    create_user(&f, "kim", "localhost");
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    lock_and_restore(&f, &mut c, "kim").await;
}

/// Regression (review of the MariaDB ledger): on a server without `performance_schema` (MariaDB's default), curfew's own
/// login-lock ledger connection has no program name to recognise it by and is listed as a
/// client session of curfew's account: an `idle` rule covering every role ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_connection_is_curfews_without_performance_schema() {
    let f = Fixture::start(MariaDbOptions {
        performance_schema: false,
        ..MariaDbOptions::default()
    });
    f.install_curfew();
    let mut c = f.curfew().await;
    // Opens the ledger's connection.
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    let sessions = c.snapshot().await.unwrap().sessions;
    assert!(
        sessions.iter().all(|s| &*s.role != AGENT),
        "curfew's own ledger connection is a session to end: {sessions:?}"
    );
}

/// Fine on the merged code: an account change the server refuses (curfew's `EXECUTE` on
/// `curfew.set_account_lock` revoked after the ledger was found ready) fails with the
/// server's code kept, and the intent it left is settled (the account is not taken for one
/// locked before curfew).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alter_user_keeps_its_code_and_leaves_nothing_behind() {
    let f = server(None);
    create_user(&f, "kim", "%");
    let c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    let kim = id_of(&c, "kim").await;
    c.sync_window_locks("night", &[(kim, "kim".to_owned())], "closed")
        .await
        .unwrap();
    f.server
        .admin_sql(&format!(
            "REVOKE EXECUTE ON PROCEDURE curfew.set_account_lock FROM `{AGENT}`@`127.0.0.1`;"
        ))
        .unwrap();
    let (_dir, log) = audit_log("refused");
    let token = log
        .intend(Intent::<Change>::new(Timestamp::now(), "m", None))
        .unwrap();
    // A new connection (a restarted agent) is refused.
    let mut refused = f.curfew().await;
    let e = refused
        .disable_login(&token.authorize(kim), &no_fault)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &curfew_backend::ErrorKind::Refused {
            code: Some("1370".to_owned())
        },
        "{e}"
    );
    assert_eq!(locked(&f, "kim"), vec![("%".to_owned(), false)]);
    f.server
        .admin_sql(&format!(
            "GRANT EXECUTE ON PROCEDURE curfew.set_account_lock TO `{AGENT}`@`127.0.0.1`;"
        ))
        .unwrap();
    let mut c = f.curfew().await;
    assert_eq!(change(&mut c, kim, false).await, LoginChange::Disabled);
    c.sync_window_locks("night", &[], "closed").await.unwrap();
    assert_eq!(change(&mut c, kim, true).await, LoginChange::Restored);
    assert_eq!(locked(&f, "kim"), vec![("%".to_owned(), false)]);
}
