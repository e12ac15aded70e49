//! Real clients (psql, pgbench, psycopg) run as child processes against an endpoint, the
//! server direct or the gateway, both with `sslmode=verify-full` and `channel_binding=require`,
//! so every check runs both ways and a failure says which way it failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{ALICE_PASSWORD, Harness};

/// Where a client connects: the server itself or the gateway in front of it.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `direct` or `gateway`, for messages.
    pub name: &'static str,
    /// The TCP port on 127.0.0.1 (reached as `localhost`, the name in both certificates).
    pub port: u16,
}

impl Harness {
    /// The server itself (TLS and SCRAM, the test CA's certificate).
    pub fn direct(&self) -> Endpoint {
        Endpoint {
            name: "direct",
            port: self.cluster.port(),
        }
    }

    /// The gateway (its own certificate from the same CA).
    pub fn gateway(&self) -> Endpoint {
        Endpoint {
            name: "gateway",
            port: self.addr.port(),
        }
    }

    /// Both, direct first: a check that fails through the gateway has passed direct.
    pub fn endpoints(&self) -> [Endpoint; 2] {
        [self.direct(), self.gateway()]
    }

    /// A libpq connection string to `endpoint` as `user` with full verification and channel
    /// binding required, then `extra` (more `key=value` pairs; empty for none).
    pub fn conninfo(&self, endpoint: Endpoint, user: &str, extra: &str) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={user} dbname=postgres sslmode=verify-full \
             sslrootcert={} channel_binding=require connect_timeout=10 {extra}",
            endpoint.port,
            self.dir.join("ca.pem").display()
        )
    }
}

/// A finished client process, its output as text.
#[derive(Debug)]
pub struct Finished {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl From<Output> for Finished {
    fn from(output: Output) -> Finished {
        Finished {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `command` to its end off the runtime's threads (the gateway runs on them).
///
/// # Panics
/// When the program cannot be started, naming it.
pub async fn run(mut command: Command) -> Finished {
    let program = format!("{:?}", command.get_program());
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("client task")
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"))
        .into()
}

/// `psql` from `bin` with `conninfo`, the password in `PGPASSWORD`, unaligned tuples-only
/// output and no psqlrc; the caller adds `-c`/`-f`.
pub fn psql(bin: &Path, conninfo: &str, password: &str) -> Command {
    let mut command = Command::new(bin.join("psql"));
    command
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo])
        .env("PGPASSWORD", password)
        .env_remove("PGSERVICE")
        .env_remove("PGSSLMODE");
    command
}

/// The `libpq.so.5` that `program` loads, as `ldd` resolves it.
///
/// # Panics
/// When `ldd` fails or names no libpq.
pub fn loaded_libpq(program: &Path) -> PathBuf {
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .unwrap_or_else(|e| panic!("ldd {}: {e}", program.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("libpq.so"))
        .unwrap_or_else(|| panic!("{} loads no libpq: {text}", program.display()));
    let path = line
        .split("=>")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("ldd's line for libpq has no path: {line}"));
    std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `python3`, checked to import psycopg 3.
///
/// # Panics
/// When python3 or psycopg is missing, saying how to install it (`.ci/run` does): the psycopg
/// checks fail rather than skip.
pub fn python_with_psycopg() -> Command {
    let probe = Command::new("python3")
        .args(["-c", "import psycopg; print(psycopg.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is missing ({e}): install it and `python3 -m pip install \"psycopg[binary]\"`")
        });
    assert!(
        probe.status.success(),
        "psycopg 3 is missing for python3: `python3 -m pip install \"psycopg[binary]\"` (.ci/run \
         installs it): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    Command::new("python3")
}

/// psql from `psql_bin` running `SELECT pg_sleep(60)` as alice and `application_name`, with
/// `extra` in its connection string.
fn sleeper(
    harness: &Harness,
    psql_bin: &Path,
    endpoint: Endpoint,
    extra: &str,
    application_name: &str,
) -> Child {
    let conninfo = harness.conninfo(
        endpoint,
        "alice",
        &format!("{extra} application_name={application_name}"),
    );
    let mut command: Command = psql(psql_bin, &conninfo, ALICE_PASSWORD);
    command
        .args(["-c", "SELECT pg_sleep(60)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("psql runs")
}

/// The pid of the backend running `pg_sleep` for `application_name`, once it runs.
async fn running_sleep(harness: &Harness, application_name: &str, context: &str) -> String {
    let sql = format!(
        "SELECT pid FROM pg_stat_activity WHERE application_name = '{application_name}' \
         AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pid = harness.cluster.psql(&sql).expect("pg_stat_activity");
        if !pid.is_empty() {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: {application_name}'s sleep never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 20 s) for `child` to exit; its stderr, and whether it succeeded.
async fn ended(mut child: Child, context: &str) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{context}: the cancelled sleep still runs after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Two psql sessions at `endpoint` sleep; SIGINT to the first psql (its Ctrl-C: libpq's
/// `PQcancel` with the session's key, 4 bytes on 3.0, 32 on 3.2) ends its sleep and not the
/// other's; `pg_cancel_backend` from another session then ends the second.
pub async fn cancels(
    harness: &Harness,
    psql_bin: &Path,
    endpoint: Endpoint,
    extra: &str,
    context: &str,
) {
    let (first_name, second_name) = (
        format!("{}_first", endpoint.name),
        format!("{}_second", endpoint.name),
    );
    let first = sleeper(harness, psql_bin, endpoint, extra, &first_name);
    let second = sleeper(harness, psql_bin, endpoint, extra, &second_name);
    running_sleep(harness, &first_name, context).await;
    let second_pid = running_sleep(harness, &second_name, context).await;

    // psql's SIGINT handler sends libpq's CancelRequest with the session's key: the first
    // sleep ends, the second runs on.
    let signalled = Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let (success, stderr) = ended(first, context).await;
    assert!(!success, "{context}: the first psql did not fail");
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{context}: SIGINT to psql: {stderr}"
    );
    assert_eq!(
        running_sleep(harness, &second_name, context).await,
        second_pid,
        "{context}: the other sleep was disturbed"
    );

    // pg_cancel_backend from another session ends the second.
    let cancelled = harness
        .cluster
        .psql(&format!("SELECT pg_cancel_backend({second_pid})"))
        .expect("pg_cancel_backend");
    assert_eq!(cancelled, "t", "{context}");
    let (success, stderr) = ended(second, context).await;
    assert!(!success, "{context}: the second psql did not fail");
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{context}: pg_cancel_backend: {stderr}"
    );
}
