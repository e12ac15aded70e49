//! Login locks on a real MariaDB: a window lock locks every account of a user and restores
//! them, a user with a quote, backslash and backquote in its name, an account locked before
//! curfew stays locked, and a crash at each step of a change is settled by the next connection
//! (no stranded lock, no wrongly unlocked account); an agent that no longer leads changes no
//! account.
#![allow(clippy::unwrap_used)]

mod fixture;

use curfew_audit::{AuditLog, Intent, IntentToken, LoginChange as Change};
use curfew_backend::{Coordination, LedgerStatus, LoginChange, LoginLedger};
use curfew_mysql::Connection;
use curfew_sandbox::MariaDbOptions;
use curfew_testkit::TempDir;
use fixture::{AGENT, Fixture};
use jiff::Timestamp;

/// A user whose name holds a quote, a backslash and a backquote: `o'b\`q`.
const ODD: &str = "o'b\\`q";

/// An audit log in a directory of its own and an intent in it; the directory lives as long as
/// the returned `TempDir`, so keep it until the change is made.
fn intent(name: &str) -> (TempDir, AuditLog, IntentToken<Change>) {
    let dir = TempDir::new("mysql-ledger", name);
    let log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
    let token = log
        .intend(Intent::<Change>::new(Timestamp::now(), "m", None))
        .unwrap();
    (dir, log, token)
}

/// A server with curfew installed for its account as `curfew init` installs it, `kim` on two
/// hosts, the odd user, and `pre`, one of whose accounts an administrator locked.
fn server() -> Fixture {
    let f = Fixture::start(MariaDbOptions::default());
    f.install_curfew();
    f.server
        .admin_sql(
            "CREATE USER 'kim'@'127.0.0.1';
             CREATE USER 'kim'@'localhost';
             CREATE USER 'o''b\\\\`q'@'%';
             CREATE USER 'pre'@'%' ACCOUNT LOCK;
             CREATE USER 'pre'@'localhost';",
        )
        .unwrap();
    f
}

/// Each account of `user` (by host) and whether it is locked, as the server says.
fn locked(f: &Fixture, user: &str) -> Vec<(String, bool)> {
    let hex: String = user.bytes().map(|b| format!("{b:02X}")).collect();
    let out = f
        .server
        .admin_sql(&format!(
            "SELECT Host, COALESCE(JSON_VALUE(Priv, '$.account_locked'), '0') FROM mysql.global_priv \
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
    c.roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == user)
        .unwrap()
        .oid
}

async fn lock(c: &Connection, rule: &str, users: &[(u32, String)]) {
    c.sync_window_locks(rule, users, "closed at night")
        .await
        .unwrap();
}

async fn disable(c: &mut Connection, id: u32, fault: curfew_backend::FaultHook<'_>) -> LoginChange {
    let (_dir, _log, token) = intent("disable");
    c.disable_login(&token.authorize(id), fault).await.unwrap()
}

async fn restore(c: &mut Connection, id: u32, fault: curfew_backend::FaultHook<'_>) -> LoginChange {
    let (_dir, _log, token) = intent("restore");
    c.restore_login(&token.authorize(id), fault).await.unwrap()
}

fn no_fault(_: &'static str) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_lock_locks_every_account_of_a_user_and_gives_it_back() {
    let f = server();
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    assert_eq!(c.login_change_problem("m", LedgerStatus::Ready, true), None);
    let kim = id_of(&c, "kim").await;
    let odd = id_of(&c, ODD).await;
    assert_ne!(kim, odd);
    // Ids are stable across connections.
    assert_eq!(id_of(&f.curfew().await, "kim").await, kim);

    lock(
        &c,
        "night",
        &[(kim, "kim".to_owned()), (odd, ODD.to_owned())],
    )
    .await;
    let roles = c.locked_roles().await.unwrap();
    assert_eq!(roles.len(), 2, "{roles:?}");
    assert!(
        roles
            .iter()
            .all(|r| r.can_login && !r.disabled_by_curfew && r.locks.len() == 1)
    );
    assert_eq!(disable(&mut c, kim, &no_fault).await, LoginChange::Disabled);
    assert_eq!(disable(&mut c, odd, &no_fault).await, LoginChange::Disabled);
    assert_eq!(
        disable(&mut c, kim, &no_fault).await,
        LoginChange::NotNeeded
    );
    assert!(
        locked(&f, "kim").iter().all(|(_, l)| *l),
        "{:?}",
        locked(&f, "kim")
    );
    assert_eq!(locked(&f, "kim").len(), 2);
    assert_eq!(locked(&f, ODD), vec![("%".to_owned(), true)]);
    let roles = c.locked_roles().await.unwrap();
    assert!(roles.iter().all(|r| !r.can_login && r.disabled_by_curfew));

    // Someone unlocks one of kim's accounts: drift, corrected.
    f.server
        .admin_sql("ALTER USER 'kim'@'localhost' ACCOUNT UNLOCK")
        .unwrap();
    assert_eq!(
        disable(&mut c, kim, &no_fault).await,
        LoginChange::DriftCorrected
    );
    assert!(locked(&f, "kim").iter().all(|(_, l)| *l));

    // Still locked: nothing to restore.
    assert_eq!(
        restore(&mut c, kim, &no_fault).await,
        LoginChange::NotNeeded
    );
    // The window opens.
    lock(&c, "night", &[]).await;
    assert_eq!(restore(&mut c, kim, &no_fault).await, LoginChange::Restored);
    assert_eq!(restore(&mut c, odd, &no_fault).await, LoginChange::Restored);
    assert!(locked(&f, "kim").iter().all(|(_, l)| !*l));
    assert_eq!(locked(&f, ODD), vec![("%".to_owned(), false)]);
    assert!(c.locked_roles().await.unwrap().is_empty());

    // Every lock row is there to record, created and released.
    let rows = c.unannounced().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(r, created)| !created && r.released_at.is_some() && r.kind == "window")
    );
    assert!(rows.iter().any(|(r, _)| r.role_name == ODD));
    for (row, _) in rows {
        c.mark_announced(row.id).await.unwrap();
    }
    assert!(c.unannounced().await.unwrap().is_empty());
    assert!(!c.ledger_has_work().await.unwrap());

    // The ledger's own connection (open, idle) is curfew's: never a session to end.
    let sessions = c.snapshot().await.unwrap().sessions;
    assert!(sessions.iter().all(|s| &*s.role != AGENT), "{sessions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_locked_before_curfew_stays_locked() {
    let f = server();
    let mut c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    let pre = id_of(&c, "pre").await;
    lock(&c, "night", &[(pre, "pre".to_owned())]).await;
    assert_eq!(disable(&mut c, pre, &no_fault).await, LoginChange::Disabled);
    assert_eq!(
        locked(&f, "pre"),
        vec![("%".to_owned(), true), ("localhost".to_owned(), true)]
    );
    lock(&c, "night", &[]).await;
    assert_eq!(restore(&mut c, pre, &no_fault).await, LoginChange::Restored);
    assert_eq!(
        locked(&f, "pre"),
        vec![("%".to_owned(), true), ("localhost".to_owned(), false)]
    );
    assert!(c.locked_roles().await.unwrap().is_empty());
}

/// Runs `step` with a fault hook that panics at `point` (the process dying there), on a
/// connection of its own that dies with it.
async fn crash_at(f: &Fixture, point: &'static str, id: u32, restoring: bool) {
    let mut c = f.curfew().await;
    let task = tokio::spawn(async move {
        let hook = move |at: &'static str| {
            if at == point {
                panic!("crash at {at}");
            }
        };
        let (_dir, _log, token) = intent("crash");
        let change = token.authorize(id);
        match restoring {
            false => c.disable_login(&change, &hook).await,
            true => c.restore_login(&change, &hook).await,
        }
    });
    assert!(task.await.unwrap_err().is_panic(), "no crash at {point}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_step_is_settled_by_the_next_connection() {
    let f = server();
    let c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    let pre = id_of(&c, "pre").await;
    let users = [(pre, "pre".to_owned())];
    for point in ["lock.after-intent", "lock.after-alter", "lock.after-ledger"] {
        lock(&c, "night", &users).await;
        crash_at(&f, point, pre, false).await;
        // A restarted agent: a new connection settles the step, then the round goes on.
        let mut next = f.curfew().await;
        assert_eq!(next.ledger_status().await.unwrap(), LedgerStatus::Ready);
        let role = next.locked_roles().await.unwrap().pop().unwrap();
        if role.can_login {
            assert!(matches!(
                disable(&mut next, pre, &no_fault).await,
                LoginChange::Disabled | LoginChange::DriftCorrected
            ));
        }
        assert!(
            locked(&f, "pre").iter().all(|(_, l)| *l),
            "{point}: {:?}",
            locked(&f, "pre")
        );
        // The window opens: curfew's lock goes, the administrator's stays.
        lock(&c, "night", &[]).await;
        assert_eq!(
            restore(&mut next, pre, &no_fault).await,
            LoginChange::Restored,
            "{point}"
        );
        assert_eq!(
            locked(&f, "pre"),
            vec![("%".to_owned(), true), ("localhost".to_owned(), false)],
            "{point}"
        );
        assert!(next.locked_roles().await.unwrap().is_empty(), "{point}");
    }
    for point in [
        "restore.after-intent",
        "restore.after-alter",
        "restore.after-ledger",
    ] {
        lock(&c, "night", &users).await;
        let mut first = f.curfew().await;
        assert_eq!(
            disable(&mut first, pre, &no_fault).await,
            LoginChange::Disabled
        );
        lock(&c, "night", &[]).await;
        crash_at(&f, point, pre, true).await;
        let mut next = f.curfew().await;
        assert_eq!(next.ledger_status().await.unwrap(), LedgerStatus::Ready);
        let change = restore(&mut next, pre, &no_fault).await;
        assert!(
            matches!(change, LoginChange::Restored | LoginChange::NotNeeded),
            "{point}: {change:?}"
        );
        assert_eq!(
            locked(&f, "pre"),
            vec![("%".to_owned(), true), ("localhost".to_owned(), false)],
            "{point}"
        );
        assert!(next.locked_roles().await.unwrap().is_empty(), "{point}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_missing_grants_are_named() {
    let f = Fixture::start(MariaDbOptions::default());
    let c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Missing);
    assert_eq!(
        c.login_change_problem("m", LedgerStatus::Missing, false),
        None
    );
    let problem = c
        .login_change_problem("m", LedgerStatus::Missing, true)
        .unwrap();
    assert!(
        problem.contains("CREATE DATABASE IF NOT EXISTS curfew"),
        "{problem}"
    );
    f.server
        .admin_sql(&format!(
            "CREATE DATABASE curfew; GRANT ALL PRIVILEGES ON curfew.* TO '{AGENT}'@'127.0.0.1';"
        ))
        .unwrap();
    let c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::NotGranted);
    let problem = c
        .login_change_problem("m", LedgerStatus::NotGranted, true)
        .unwrap();
    assert!(
        problem.contains("curfew init --admin-user ADMIN")
            && problem.contains(
                "GRANT EXECUTE ON PROCEDURE `curfew`.`set_account_lock` TO `curfew_agent`@`127.0.0.1`"
            ),
        "{problem}"
    );
    // What `curfew init` installs is enough, without CREATE USER or mysql.global_priv.
    f.install_curfew();
    let c = f.curfew().await;
    assert_eq!(c.ledger_status().await.unwrap(), LedgerStatus::Ready);
    let grants = f
        .server
        .admin_sql(&format!("SHOW GRANTS FOR '{AGENT}'@'127.0.0.1'"))
        .unwrap();
    assert!(
        !grants.contains("CREATE USER") && !grants.contains("global_priv"),
        "{grants}"
    );
}

/// An agent that lost the leader lock (paused while another took over) must not lock or
/// unlock anyone: its `ALTER USER` is fenced on the lock like its `KILL`s, on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_no_longer_leads_changes_no_account() {
    let f = server();
    let mut leader = f.curfew().await;
    let key = Coordination::try_lead(&mut leader).await.unwrap().unwrap();
    let mut c = f.curfew().await;
    let kim = id_of(&c, "kim").await;
    lock(&c, "night", &[(kim, "kim".to_owned())]).await;

    // Fenced on the leader that holds the lock: the change is made.
    Coordination::fence(&mut c, Some(key));
    assert_eq!(disable(&mut c, kim, &no_fault).await, LoginChange::Disabled);
    assert!(locked(&f, "kim").iter().all(|(_, l)| *l));
    lock(&c, "night", &[]).await;

    // The leader is gone (its connection closed): the same connection changes nothing.
    drop(leader);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (_dir, _log, token) = intent("fenced");
    let error = c
        .restore_login(&token.authorize(kim), &no_fault)
        .await
        .unwrap_err();
    assert!(error.is_not_leading(), "{error}");
    assert!(
        locked(&f, "kim").iter().all(|(_, l)| *l),
        "an agent that no longer leads unlocked kim"
    );

    // Unfenced (the next leader), the interrupted intent is settled and kim restored.
    Coordination::fence(&mut c, None);
    assert_eq!(restore(&mut c, kim, &no_fault).await, LoginChange::Restored);
    assert!(locked(&f, "kim").iter().all(|(_, l)| !*l));
    assert!(c.locked_roles().await.unwrap().is_empty());
}

/// curfew's account changes logins only through `curfew.set_account_lock`: whoever holds its
/// password can lock and unlock ordinary accounts, but not an administrator's, a role, or an
/// account that does not exist, can inject nothing through a name, and cannot change anyone's
/// password (it holds no `CREATE USER`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curfews_account_cannot_take_over_an_administrator() {
    use mysql_async::prelude::Queryable;
    let f = server();
    f.server
        .admin_sql("CREATE USER 'boss'@'%'; GRANT SUPER ON *.* TO 'boss'@'%'; CREATE ROLE auditor;")
        .unwrap();
    let mut thief = f.as_curfew_account().await;
    let code = |e: mysql_async::Error| match e {
        mysql_async::Error::Server(e) => e.code,
        other => panic!("not a server error: {other}"),
    };
    let call = "CALL `curfew`.`set_account_lock`(?, ?, TRUE)";
    assert_eq!(
        code(thief.exec_drop(call, ("boss", "%")).await.unwrap_err()),
        1227
    );
    assert_eq!(
        code(thief.exec_drop(call, ("auditor", "")).await.unwrap_err()),
        1227
    );
    assert_eq!(
        code(
            thief
                .exec_drop(call, ("root", "localhost"))
                .await
                .unwrap_err()
        ),
        1227
    );
    assert_eq!(
        code(thief.exec_drop(call, ("nobody", "%")).await.unwrap_err()),
        1396
    );
    // A name that would end its string if it were pasted unquoted: no such account.
    let sly = "kim'@'127.0.0.1' ACCOUNT LOCK; ALTER USER 'boss";
    assert_eq!(
        code(thief.exec_drop(call, (sly, "%")).await.unwrap_err()),
        1396
    );
    assert_eq!(locked(&f, "boss"), vec![("%".to_owned(), false)]);
    assert!(locked(&f, "kim").iter().all(|(_, l)| !*l));
    let takeover = thief
        .query_drop("ALTER USER 'boss'@'%' IDENTIFIED BY 'mine'")
        .await
        .unwrap_err();
    assert_eq!(code(takeover), 1227);
    let peek = thief
        .query_drop("SELECT Priv FROM mysql.global_priv")
        .await
        .unwrap_err();
    assert_eq!(code(peek), 1142);
    // An ordinary account it may lock (its job).
    thief.exec_drop(call, ("kim", "localhost")).await.unwrap();
    assert!(locked(&f, "kim").contains(&("localhost".to_owned(), true)));
}
