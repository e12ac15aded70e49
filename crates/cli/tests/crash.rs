//! Crash safety of login locks: the agent process is SIGKILLed at every step of locking and of
//! restoring (fault points compiled into test builds only). After each kill the ledger and the
//! role agree, and after a restart every role ends in the right state: nothing that was NOLOGIN
//! before is ever enabled, and the audit log still verifies.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use curfew_sandbox::Cluster;

use common::{Dir, KillOnDrop};

const WEIRD: &str = "we\"ird röle";
const LOCK_POINTS: [&str; 4] = [
    "login.after-intent",
    "lock.after-ledger",
    "lock.before-commit",
    "lock.after-commit",
];
const RESTORE_POINTS: [&str; 4] = [
    "login.after-intent",
    "restore.after-alter",
    "restore.before-commit",
    "restore.after-commit",
];

fn can_login(cluster: &Cluster, role: &str) -> bool {
    let sql = format!(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{}'",
        role.replace('\'', "''")
    );
    cluster.psql(&sql).unwrap() == "t"
}

fn in_ledger(cluster: &Cluster, role: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM curfew.disabled_login WHERE role_name = '{}'",
        role.replace('\'', "''")
    );
    cluster.psql(&sql).unwrap() == "1"
}

/// The invariant at any moment: curfew's ledger row exists exactly when curfew has the login
/// off; the dormant role is never enabled.
fn assert_consistent(cluster: &Cluster, when: &str) {
    for role in ["ana", WEIRD] {
        let (login, row) = (can_login(cluster, role), in_ledger(cluster, role));
        assert!(
            login != row,
            "{when}: role {role:?} can_login={login} but ledger row={row}"
        );
    }
    assert!(
        !can_login(cluster, "dormant"),
        "{when}: the dormant role was enabled"
    );
    assert!(
        !in_ledger(cluster, "dormant"),
        "{when}: the dormant role entered the ledger"
    );
}

fn agent(policy: &Path, audit: &Path, fault: Option<&str>) -> KillOnDrop {
    let mut command = common::agent_command(policy, audit);
    command.stderr(Stdio::null());
    if let Some(point) = fault {
        command.env("CURFEW_FAULT", point);
    }
    KillOnDrop(command.spawn().unwrap())
}

/// Wait for the fault point to kill the agent.
fn killed(mut child: KillOnDrop, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(
                status.signal(),
                Some(9),
                "{point}: the agent exited with {status:?}, not SIGKILL"
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{point}: the fault point was never reached");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run the agent until `done`, then stop it with SIGTERM.
fn recover(policy: &Path, audit: &Path, what: &str, done: impl Fn() -> bool) {
    let mut child = agent(policy, audit, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not recovered after a restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

fn policy(dir: &Path, name: &str, cluster: &Cluster, window: &str) -> PathBuf {
    let text = format!(
        "[agent]\ninterval = \"1s\"\n\n[[target]]\nname = \"db\"\nurl = \"{}\"\n\n[[rule]]\nname = \"closed\"\ndeny = [\"{window}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"ana\", \"dormant\", {WEIRD:?}]\n",
        cluster.url("curfew_agent", "postgres")
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_killed_agent_never_leaves_a_role_half_locked_or_wrongly_enabled() {
    let cluster = curfew_testkit::cluster_with_agent_role(
        "CREATE ROLE ana LOGIN;
         CREATE ROLE \"we\"\"ird röle\" LOGIN;
         CREATE ROLE dormant NOLOGIN;",
    );
    let dir = Dir::new("crash", "killed-agent");
    // The README's recipe: curfew's role at least privilege, `curfew init` by the superuser.
    let init_policy = policy(
        &dir.0,
        "init.toml",
        &cluster,
        "2020-01-01 00:00 - 2020-01-02 00:00",
    );
    let init = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["init", "--admin-user", "postgres", "-c"])
        .arg(&init_policy)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let audit = dir.0.join("audit.jsonl");
    let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
    let now = jiff::Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    let closed = policy(
        &dir.0,
        "closed.toml",
        &cluster,
        &format!("{} - {}", fmt(now - day), fmt(now + day)),
    );
    let open = policy(
        &dir.0,
        "open.toml",
        &cluster,
        &format!("{} - {}", fmt(now - day - day), fmt(now - day)),
    );

    for (lock_point, restore_point) in LOCK_POINTS.into_iter().zip(RESTORE_POINTS) {
        // Locking, killed at one step.
        killed(agent(&closed, &audit, Some(lock_point)), lock_point);
        assert_consistent(&cluster, lock_point);
        recover(&closed, &audit, lock_point, || {
            !can_login(&cluster, "ana") && !can_login(&cluster, WEIRD)
        });
        assert_consistent(&cluster, lock_point);
        assert!(in_ledger(&cluster, "ana") && in_ledger(&cluster, WEIRD));

        // Restoring, killed at one step.
        killed(agent(&open, &audit, Some(restore_point)), restore_point);
        assert_consistent(&cluster, restore_point);
        recover(&open, &audit, restore_point, || {
            can_login(&cluster, "ana") && can_login(&cluster, WEIRD)
        });
        assert_consistent(&cluster, restore_point);
        assert!(!in_ledger(&cluster, "ana") && !in_ledger(&cluster, WEIRD));
    }

    // Every interrupted intent was closed at the next start: the log verifies.
    common::assert_audit_verifies(&audit);
    let interrupted = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.event == "action_interrupted")
        .count();
    assert_eq!(interrupted, 8, "one per kill");
}
