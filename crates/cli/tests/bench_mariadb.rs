//! `curfew bench mariadb`: a small run measures both sides with no session missed, and bad
//! options are refused at the command line.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{curfew, dir, text};

#[test]
fn a_small_mariadb_run_measures_curfew_and_wait_timeout() {
    let d = dir("bench-mariadb");
    let json = d.0.join("mariadb.json");
    let out = curfew()
        .args(["bench", "mariadb", "--quick", "--sessions", "10", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("wait_timeout"), "{table}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for side in ["curfew", "wait_timeout"] {
        assert_eq!(doc[side]["not_ended"], 0, "{doc:#}");
        assert_eq!(doc[side]["lateness_ms"]["count"], 10, "{doc:#}");
    }
    // curfew never ends a session before its deadline.
    assert_eq!(doc["curfew"]["early"], 0, "{doc:#}");
}

#[test]
fn a_bad_number_of_sessions_is_a_usage_error() {
    let out = curfew()
        .args(["bench", "mariadb", "--sessions", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--sessions 1"));
}
