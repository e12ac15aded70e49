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

use common::clients::{Endpoint, cancels, loaded_libpq, psql, python_with_psycopg, run};
use common::{ALICE_PASSWORD, Harness, Setup};
use curfew_testkit::{pg_bin, pg_bin_variable};

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
        cancels(
            &harness,
            &psql_bin,
            endpoint,
            "max_protocol_version=latest",
            &context,
        )
        .await;
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
