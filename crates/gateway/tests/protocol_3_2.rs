//! Protocol 3.2 with PostgreSQL 18's libpq: psql 18 with `max_protocol_version=latest`, direct
//! and through the gateway, to a PostgreSQL 18 server (3.2 end to end) and to a PostgreSQL 15
//! one (the gateway serves 3.2 to the client and 3.0 to the server). The session works,
//! `\conninfo` shows the protocol and the real backend pid, and a cancel, psql's own on SIGINT
//! (libpq's `PQcancel` with the 32-byte key) and `pg_cancel_backend` from elsewhere, ends the
//! right one of two running sleeps. psycopg on its own libpq 18 does the same with libpq's
//! newer cancel API (`PQcancelBlocking`, over TLS).
//!
//! PostgreSQL 18 comes from `CURFEW_PG18_BIN` or the cache `scripts/pg-versions` fills (.ci/run
//! exports the variable); the tests fail, naming them, when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clients::{
    Endpoint, loaded_libpq, pg_bin, pg_bin_variable, psql, python_with_psycopg, run,
};
use common::{ALICE_PASSWORD, Harness, Setup};

/// PostgreSQL 18's bin directory, checked to hold a psql that loads libpq 18 (its own
/// `../lib/libpq.so.5`, not the system's older one, which knows no `max_protocol_version`).
fn psql_18() -> PathBuf {
    let bin = pg_bin(18);
    let libpq = loaded_libpq(&bin.join("psql"));
    let own_lib = std::fs::canonicalize(bin.join("../lib"))
        .unwrap_or_else(|e| panic!("{}/../lib: {e}", bin.display()));
    assert!(
        libpq.starts_with(&own_lib),
        "{}/psql loads {} rather than PostgreSQL 18's own libpq in {}: set {} to a PostgreSQL 18 \
         whose psql finds its libpq (scripts/pg-versions' builds do, by their run path)",
        bin.display(),
        libpq.display(),
        own_lib.display(),
        pg_bin_variable(18)
    );
    bin
}

/// `\conninfo`'s value for `parameter` (psql 18 prints a table; `-A -t` makes it
/// `Parameter|value` lines).
fn conninfo_value<'a>(stdout: &'a str, parameter: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(parameter)?.strip_prefix('|'))
}

/// What psql 18 should see at `endpoint`: the gateway always serves 3.2; the server direct
/// serves what it has (3.0 before PostgreSQL 18).
fn expected_protocol(endpoint: Endpoint, server_major: u32) -> &'static str {
    if endpoint.name == "gateway" || server_major >= 18 {
        "3.2"
    } else {
        "3.0"
    }
}

async fn session_and_cancels(server_major: u32) {
    let psql_bin = psql_18();
    let harness = Harness::start(
        &format!("proto32-{server_major}"),
        Setup {
            bin_dir: Some(pg_bin(server_major)),
            ..Setup::default()
        },
    )
    .await;
    assert_eq!(harness.cluster.major_version(), server_major);
    for endpoint in harness.endpoints() {
        let context = match endpoint.name {
            "direct" => format!("psql 18 direct to PostgreSQL {server_major}"),
            _ => format!(
                "psql 18 through the gateway to PostgreSQL {server_major} (works direct, fails \
                 through the gateway)"
            ),
        };
        // require_auth (libpq 16+): the client accepts nothing but SCRAM.
        let conninfo = harness.conninfo(
            endpoint,
            "alice",
            "max_protocol_version=latest require_auth=scram-sha-256",
        );
        let mut command = psql(&psql_bin, &conninfo, ALICE_PASSWORD);
        command
            .args(["-c", "\\conninfo"])
            .args(["-c", "SHOW server_version_num"])
            .args(["-c", "SELECT 'pid ' || pg_backend_pid()"])
            .args(["-c", "SET work_mem = '5MB'"])
            .args(["-c", "SHOW work_mem"]);
        let finished = run(command).await;
        assert!(
            finished.success,
            "{context}: {}\n{}",
            finished.stdout, finished.stderr
        );
        let out = &finished.stdout;
        assert_eq!(
            conninfo_value(out, "Protocol Version"),
            Some(expected_protocol(endpoint, server_major)),
            "{context}:\n{out}"
        );
        assert_eq!(
            conninfo_value(out, "Password Used"),
            Some("true"),
            "{context}:\n{out}"
        );
        assert_eq!(
            conninfo_value(out, "SSL Connection"),
            Some("true"),
            "{context}:\n{out}"
        );
        // libpq's pid (from BackendKeyData) is the server's real one.
        let pid = out
            .lines()
            .find_map(|line| line.strip_prefix("pid "))
            .unwrap_or_else(|| panic!("{context}: no pid in\n{out}"));
        assert_eq!(
            conninfo_value(out, "Backend PID"),
            Some(pid),
            "{context}:\n{out}"
        );
        assert!(
            out.lines()
                .any(|line| line.starts_with(&server_major.to_string()) && line.len() == 6),
            "{context}: no server_version_num of {server_major} in\n{out}"
        );
        assert!(out.lines().any(|line| line == "5MB"), "{context}:\n{out}");

        direct_tls_and_a_wrong_password(&harness, &psql_bin, endpoint, server_major, &context)
            .await;
        cancels(&harness, &psql_bin, endpoint, &context).await;
        psycopg_on_libpq_18(&harness, endpoint, server_major, &context).await;
    }
}

/// psycopg's own libpq (18 in its binary wheel; checked) on `max_protocol_version=latest`:
/// the negotiated protocol, the pid, and both of libpq's cancel APIs.
async fn psycopg_on_libpq_18(
    harness: &Harness,
    endpoint: Endpoint,
    server_major: u32,
    context: &str,
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/psycopg_protocol.py");
    let mut command = python_with_psycopg();
    command
        .arg(script)
        .arg(harness.conninfo(endpoint, "alice", "max_protocol_version=latest"))
        .env("PGPASSWORD", ALICE_PASSWORD);
    let finished = run(command).await;
    let out = &finished.stdout;
    assert!(
        finished.success,
        "psycopg {context}: {out}\n{}",
        finished.stderr
    );
    let libpq: u32 = out
        .lines()
        .find_map(|line| line.strip_prefix("libpq "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(
        libpq >= 180_000,
        "psycopg loads libpq {libpq}, not 18: `python3 -m pip install --upgrade \"psycopg[binary]\"`"
    );
    let protocol = match expected_protocol(endpoint, server_major) {
        "3.2" => "protocol 30002",
        _ => "protocol 30000",
    };
    for line in [
        protocol,
        "pid ok",
        "cancel_safe cancelled",
        "cancel cancelled",
        "after cancels 42",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "psycopg {context}: no {line:?} in\n{out}"
        );
    }
}

/// psql 18 with `sslnegotiation=direct` (PostgreSQL 17's TLS without SSLRequest, ALPN
/// `postgresql`) where the endpoint has it (the gateway; a server from 17 on), and a wrong
/// password on 3.2 refused with the same words both ways.
async fn direct_tls_and_a_wrong_password(
    harness: &Harness,
    psql_bin: &Path,
    endpoint: Endpoint,
    server_major: u32,
    context: &str,
) {
    if endpoint.name == "gateway" || server_major >= 17 {
        let conninfo = harness.conninfo(
            endpoint,
            "alice",
            "max_protocol_version=latest sslnegotiation=direct",
        );
        let mut command = psql(psql_bin, &conninfo, ALICE_PASSWORD);
        command.args(["-c", "\\conninfo"]);
        let finished = run(command).await;
        assert!(
            finished.success,
            "{context}, sslnegotiation=direct: {}",
            finished.stderr
        );
        assert_eq!(
            conninfo_value(&finished.stdout, "ALPN"),
            Some("postgresql"),
            "{context}:\n{}",
            finished.stdout
        );
    }
    let conninfo = harness.conninfo(endpoint, "alice", "max_protocol_version=latest");
    let mut command = psql(psql_bin, &conninfo, "not alice's password");
    command.args(["-c", "SELECT 1"]);
    let refused = run(command).await;
    assert!(!refused.success, "{context}: a wrong password logged in");
    assert!(
        refused
            .stderr
            .contains("FATAL:  password authentication failed for user \"alice\""),
        "{context}: {}",
        refused.stderr
    );
}

/// A psql 18 running `SELECT pg_sleep(60)` as `application_name`.
fn sleeper(
    harness: &Harness,
    psql_bin: &Path,
    endpoint: Endpoint,
    application_name: &str,
) -> Child {
    let conninfo = harness.conninfo(
        endpoint,
        "alice",
        &format!("max_protocol_version=latest application_name={application_name}"),
    );
    let mut command: Command = psql(psql_bin, &conninfo, ALICE_PASSWORD);
    command
        .args(["-c", "SELECT pg_sleep(60)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("psql 18 runs")
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

async fn cancels(harness: &Harness, psql_bin: &Path, endpoint: Endpoint, context: &str) {
    let (first_name, second_name) = (
        format!("{}_first", endpoint.name),
        format!("{}_second", endpoint.name),
    );
    let first = sleeper(harness, psql_bin, endpoint, &first_name);
    let second = sleeper(harness, psql_bin, endpoint, &second_name);
    running_sleep(harness, &first_name, context).await;
    let second_pid = running_sleep(harness, &second_name, context).await;

    // psql's SIGINT handler sends libpq's CancelRequest with the session's key (32 bytes on
    // protocol 3.2): the first sleep ends, the second runs on.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_18_on_protocol_3_2_to_a_postgresql_18_server() {
    session_and_cancels(18).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_18_on_protocol_3_2_to_a_postgresql_15_server() {
    session_and_cancels(15).await;
}

#[test]
fn conninfo_values_are_read_from_psql_18s_table() {
    let out = "Database|postgres\nProtocol Version|3.2\nBackend PID|4242\n";
    assert_eq!(conninfo_value(out, "Protocol Version"), Some("3.2"));
    assert_eq!(conninfo_value(out, "Backend PID"), Some("4242"));
    assert_eq!(conninfo_value(out, "Protocol"), None);
}
