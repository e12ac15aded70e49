//! Time arguments that begin with a dash (`--since -30m`) are values, and `audit show` takes the
//! forms `report --since` takes; `unlock` without `--reason` is a usage error. No server needed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::{Command, Output};

use curfew_audit::{AuditLog, Event, Record};
use curfew_testkit::TempDir;
use jiff::{SignedDuration, Timestamp};

fn curfew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A log with one record an hour ago and one now (`name` keeps the tests' files apart).
fn log(name: &str) -> (std::path::PathBuf, TempDir) {
    let dir = TempDir::new("time-args", name);
    let path = dir.join("audit.jsonl");
    let now = Timestamp::now();
    AuditLog::open(&path)
        .unwrap()
        .append_all(vec![
            Record::new(now - SignedDuration::from_hours(1), Event::AgentStarted),
            Record::new(now, Event::AgentStopped),
        ])
        .unwrap();
    (path, dir)
}

/// The events `audit show --format json` selects.
fn shown(path: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["audit", "show", path.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = curfew(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn audit_show_takes_durations_with_or_without_a_dash_and_instants() {
    let (path, _gone) = log("show");
    assert_eq!(shown(&path, &["--since", "-30m"]), ["agent_stopped"]);
    assert_eq!(shown(&path, &["--since", "30m"]), ["agent_stopped"]);
    assert_eq!(shown(&path, &["--until", "-30m"]), ["agent_started"]);
    assert_eq!(
        shown(&path, &["--since=-2h", "--until", "-30m"]),
        ["agent_started"]
    );
    assert_eq!(shown(&path, &["--since", "2000-01-01T00:00:00Z"]).len(), 2);
    let bad = curfew(&[
        "audit",
        "show",
        path.to_str().unwrap(),
        "--since",
        "last tuesday",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("is not a time"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn report_and_plan_accept_a_leading_dash() {
    // The arguments are accepted (a parse error would be exit 2 naming the argument); report then
    // reads its log, plan fails to connect: neither is a usage error about `-30m`.
    let (path, _gone) = log("report");
    let report = curfew(&[
        "report",
        "-c",
        "examples/curfew.toml",
        "--audit-log",
        path.to_str().unwrap(),
        "--since",
        "-30m",
        "--format",
        "json",
        // The example's targets are not there: their anchors are not what is tested.
        "--offline",
    ]);
    assert!(
        !text(&report.stderr).contains("unexpected argument"),
        "{}",
        text(&report.stderr)
    );
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    let plan = curfew(&[
        "plan",
        "-c",
        "examples/curfew.toml",
        "--at",
        "-30m",
        "--target",
        "nope",
    ]);
    assert!(
        !text(&plan.stderr).contains("unexpected argument"),
        "{}",
        text(&plan.stderr)
    );
}

#[test]
fn unlock_without_a_reason_is_refused_before_anything_is_done() {
    let out = curfew(&["unlock", "analyst_kim", "-c", "examples/curfew.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("curfew unlock needs --reason"),
        "{}",
        text(&out.stderr)
    );
    let blank = curfew(&[
        "unlock",
        "analyst_kim",
        "--reason",
        " ",
        "-c",
        "examples/curfew.toml",
    ]);
    assert_eq!(blank.status.code(), Some(2));
}
