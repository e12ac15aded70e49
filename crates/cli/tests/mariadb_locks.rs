//! Login locks on a MariaDB target through the `curfew` binary (issue 18): a window rule locks
//! every account of its users (ending their sessions) and gives them back when the window
//! opens, a user named with a quote, backslash and backquote included; an account locked
//! before curfew stays locked; the agent SIGKILLed at each step of locking and restoring
//! leaves nothing stranded or wrongly unlocked after a restart; `curfew lock`, `locks` and
//! `unlock` work on it (applied by a running agent, or by the command's stand-in); the audit
//! records are those of PostgreSQL and the log verifies.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, curfew, dir, events};
use curfew_sandbox::{MariaDbOptions, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// `o'b\`q`: a quote, a backslash and a backquote.
const ODD: &str = "o'b\\`q";

/// A server with curfew's account (sessions, and what `curfew init` installs), `kim` and the
/// odd user on 127.0.0.1, and `pre` whose `%` account an administrator locked.
fn mariadb(password_file: &Path) -> MariaDbServer {
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql(
            "CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             CREATE USER 'kim'@'127.0.0.1';
             CREATE USER 'o''b\\\\`q'@'127.0.0.1';
             CREATE USER 'pre'@'%' ACCOUNT LOCK;
             CREATE USER 'pre'@'127.0.0.1';",
        )
        .unwrap();
    common::maria::install_curfew(&server);
    std::fs::write(password_file, "agent-secret\n").unwrap();
    std::fs::set_permissions(password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    server
}

/// Whether `user`@`host` is locked, as the server says.
fn locked(server: &MariaDbServer, user: &str, host: &str) -> bool {
    let hex: String = user.bytes().map(|b| format!("{b:02X}")).collect();
    let out = server
        .admin_sql(&format!(
            "SELECT COALESCE(JSON_VALUE(Priv, '$.account_locked'), '0') FROM mysql.global_priv \
             WHERE User = CONVERT(X'{hex}' USING utf8mb4) AND Host = '{host}'"
        ))
        .unwrap();
    assert!(!out.is_empty(), "no account {user:?}@{host}");
    out == "1" || out == "true"
}

async fn client(server: &MariaDbServer, user: &str) -> Result<Conn, mysql_async::Error> {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port())
        .prefer_socket(false)
        .user(Some(user));
    Conn::new(opts).await
}

async fn alive(conn: &mut Conn) -> bool {
    tokio::time::timeout(Duration::from_secs(5), conn.query_drop("SELECT 1"))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// A policy with one MariaDB target and, with `window`, a rule that denies logins in it.
fn policy(
    dir: &Path,
    name: &str,
    server: &MariaDbServer,
    password_file: &Path,
    audit: &Path,
    window: Option<&str>,
) -> PathBuf {
    let rule = match window {
        Some(window) => format!(
            "[[rule]]\nname = \"closed\"\ndeny = [\"{window}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"kim\", \"pre\", {ODD:?}]\n"
        ),
        None => "[[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"nobody\"]\n".to_owned(),
    };
    let text = format!(
        "[agent]\ninterval = \"1s\"\naudit_log = \"{}\"\n\n\
         [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n{rule}",
        audit.display(),
        server.url("curfew_agent", ""),
        password_file.display(),
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Closed now (a window around now) and open now (a window that ended yesterday).
fn windows() -> (String, String) {
    let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
    let now = jiff::Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    (
        format!("{} - {}", fmt(now - day), fmt(now + day)),
        format!("{} - {}", fmt(now - day - day), fmt(now - day)),
    )
}

fn agent(policy: &Path, audit: &Path, fault: Option<&str>) -> KillOnDrop {
    let mut command = common::agent_command(policy, audit);
    command.stderr(Stdio::null());
    if let Some(point) = fault {
        command.env("CURFEW_FAULT", point);
    }
    KillOnDrop(command.spawn().unwrap())
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not reached in 30s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stop an agent with SIGTERM; it exits 0.
fn stop(mut child: KillOnDrop, what: &str) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "{what}: the agent did not stop cleanly"
    );
}

/// Wait for the fault point to SIGKILL the agent.
fn killed(mut child: KillOnDrop, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.signal(), Some(9), "{point}: exited with {status:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{point}: the fault point was never reached"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_locked(server: &MariaDbServer) -> bool {
    locked(server, "kim", "127.0.0.1")
        && locked(server, ODD, "127.0.0.1")
        && locked(server, "pre", "127.0.0.1")
}

fn all_open(server: &MariaDbServer) -> bool {
    !locked(server, "kim", "127.0.0.1")
        && !locked(server, ODD, "127.0.0.1")
        && !locked(server, "pre", "127.0.0.1")
}

#[test]
fn a_window_locks_mariadb_accounts_and_a_crash_at_any_step_strands_nothing() {
    let d = dir("mariadb-window-locks");
    let password_file = d.0.join("maria.password");
    let server = mariadb(&password_file);
    let audit = d.0.join("audit.jsonl");
    let (closed_now, open_now) = windows();
    let closed = policy(
        &d.0,
        "closed.toml",
        &server,
        &password_file,
        &audit,
        Some(&closed_now),
    );
    let open = policy(
        &d.0,
        "open.toml",
        &server,
        &password_file,
        &audit,
        Some(&open_now),
    );

    // The window closes: kim's session ends and every covered account is locked.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut kim = runtime.block_on(client(&server, "kim")).unwrap();
    let child = agent(&closed, &audit, None);
    wait_until("locked", || all_locked(&server));
    assert!(
        !runtime.block_on(alive(&mut kim)),
        "kim's session survived the lock"
    );
    assert!(
        runtime.block_on(client(&server, "kim")).is_err(),
        "kim can still log in"
    );
    stop(child, "closed");
    assert!(locked(&server, "pre", "%"));

    // It opens: curfew's locks go, the administrator's stays.
    let child = agent(&open, &audit, None);
    wait_until("restored", || all_open(&server));
    stop(child, "open");
    assert!(
        locked(&server, "pre", "%"),
        "the account locked before curfew was unlocked"
    );
    runtime.block_on(client(&server, ODD)).unwrap();

    let seen = events(&audit);
    for event in [
        "lock_created",
        "login_change_intent",
        "login_locked",
        "lock_released",
        "login_restored",
    ] {
        assert!(seen.iter().any(|e| e == event), "no {event} in {seen:?}");
    }

    // Killed at each step of locking, then of restoring; a restart settles it.
    let lock_points = [
        "login.after-intent",
        "lock.after-intent",
        "lock.after-alter",
        "lock.after-ledger",
    ];
    let restore_points = [
        "login.after-intent",
        "restore.after-intent",
        "restore.after-alter",
        "restore.after-ledger",
    ];
    for (lock_point, restore_point) in lock_points.into_iter().zip(restore_points) {
        killed(agent(&closed, &audit, Some(lock_point)), lock_point);
        assert!(locked(&server, "pre", "%"), "{lock_point}");
        let child = agent(&closed, &audit, None);
        wait_until(lock_point, || all_locked(&server));
        stop(child, lock_point);

        killed(agent(&open, &audit, Some(restore_point)), restore_point);
        assert!(locked(&server, "pre", "%"), "{restore_point}");
        let child = agent(&open, &audit, None);
        wait_until(restore_point, || all_open(&server));
        stop(child, restore_point);
        assert!(locked(&server, "pre", "%"), "{restore_point}");
    }
    let ledger = server
        .admin_sql("SELECT COUNT(*) FROM curfew.account_change WHERE NOT was_locked")
        .unwrap();
    assert_eq!(
        ledger, "0",
        "curfew still claims accounts after every lock went"
    );
    common::assert_audit_verifies(&audit);
}

#[test]
fn incident_locks_on_mariadb_through_lock_locks_and_unlock() {
    let d = dir("mariadb-incident-locks");
    let password_file = d.0.join("maria.password");
    let server = mariadb(&password_file);
    let audit = d.0.join("audit.jsonl");
    let policy = policy(&d.0, "curfew.toml", &server, &password_file, &audit, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut odd = runtime.block_on(client(&server, ODD)).unwrap();

    // An agent runs: it applies the lock.
    let child = agent(&policy, &audit, None);
    let out = curfew()
        .args([
            "lock",
            ODD,
            "--reason",
            "INC-1: leaked",
            "--wait",
            "20s",
            "-c",
        ])
        .arg(&policy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(locked(&server, ODD, "127.0.0.1"));
    assert!(
        !runtime.block_on(alive(&mut odd)),
        "the session survived the lock"
    );

    let out = curfew()
        .args(["locks", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{listing}");
    assert!(
        listing.contains("INC-1: leaked") && listing.contains("disabled"),
        "{listing}"
    );
    stop(child, "agent");

    // No agent runs: `unlock` waits, then applies it itself.
    let out = curfew()
        .args([
            "unlock",
            ODD,
            "--reason",
            "INC-1 closed",
            "--wait",
            "3s",
            "-c",
        ])
        .arg(&policy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!locked(&server, ODD, "127.0.0.1"));
    runtime.block_on(client(&server, ODD)).unwrap();

    // Nothing to lift any more; a superuser is refused.
    let out = curfew()
        .args(["unlock", ODD, "--reason", "again", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = curfew()
        .args(["lock", "root", "--reason", "no", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let seen = events(&audit);
    for event in [
        "lock_created",
        "login_locked",
        "lock_released",
        "login_restored",
    ] {
        assert!(seen.iter().any(|e| e == event), "no {event} in {seen:?}");
    }
    common::assert_audit_verifies(&audit);
}
