//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::path::{Path, PathBuf};

use curfew_audit::{AuditLog, Event, Record, SessionInfo};
use jiff::Timestamp;

/// A directory for one test (the shared fixture: unique, removed on drop), and the audit log's
/// place in it.
pub(crate) struct TempDir(curfew_testkit::TempDir);

impl TempDir {
    pub(crate) fn new(test: &str) -> Self {
        TempDir(curfew_testkit::TempDir::new("audit", test))
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
}

/// A fixed point in time plus `secs`.
pub(crate) fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_795_000_000 + secs).unwrap()
}

pub(crate) fn session(pid: i64) -> SessionInfo {
    SessionInfo {
        pid,
        backend_start: ts(-3600),
        role: "app".into(),
        database: "orders".into(),
        client_addr: Some("10.0.0.7".into()),
        application: "psql".into(),
        state: "idle".into(),
    }
}

/// A plain record numbered `n` (the number goes into the reason).
pub(crate) fn record(n: i64) -> Record {
    Record::new(ts(n), Event::SessionReported)
        .with_target("prod")
        .with_rule("idle")
        .with_reason(format!("idle for 15m{n:02}s; limit 15m"))
        .with_session(session(4000 + n))
}

/// Writes `count` records to a fresh log at `path` and closes it.
pub(crate) fn write_records(path: &Path, count: i64) {
    let log = AuditLog::open(path).unwrap();
    for n in 1..=count {
        log.append(record(n)).unwrap();
    }
}

pub(crate) fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(crate) fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}
