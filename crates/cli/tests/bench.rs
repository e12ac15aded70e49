//! `curfew bench` end to end: a quick run against a throwaway cluster, read back from its JSON.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;

use curfew_testkit::TempDir;

fn curfew(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// p50 <= p95 <= p99 <= max, over `count` sessions.
fn assert_percentiles(lateness: &serde_json::Value, count: u64, what: &str) {
    let p = |k: &str| {
        lateness[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no {k}"))
    };
    assert_eq!(lateness["count"], count, "{what}: {lateness}");
    assert!(
        p("p50") <= p("p95") && p("p95") <= p("p99") && p("p99") <= p("max"),
        "{what}: {lateness}"
    );
    assert!(p("p50") >= 0.0, "{what}: {lateness}");
}

#[test]
fn a_quick_bench_measures_curfew_native_and_cron_and_writes_json() {
    let dir = TempDir::new("bench-test", "json");
    let json = dir.join("bench.json");
    let out = curfew(&["bench", "--quick", "--json", json.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for heading in [
        "Lateness",
        "NATIVE idle_session_timeout",
        "SNAPSHOTS/S",
        "Engine",
    ] {
        assert!(stdout.contains(heading), "no {heading:?} in\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{report}");
    let run = &runs[0];
    let sessions = run["sessions"].as_u64().unwrap();
    assert_eq!(sessions, 200);
    let curfew = &run["curfew"];
    // Half the sessions go idle: each is ended once, and no busy one is.
    assert_percentiles(&curfew["lateness_ms"], sessions / 2, "curfew");
    assert_percentiles(&run["native"]["lateness_ms"], sessions / 2, "native");
    assert_percentiles(&run["cron_1m"]["lateness_ms"], sessions / 2, "cron");
    assert_eq!(curfew["wrong_terminations"], 0, "{run}");
    assert_eq!(curfew["missed_terminations"], 0, "{run}");
    // Loose bounds (a debug build on a shared machine): late by well under the interval, about
    // one snapshot a second, a small process.
    assert!(
        curfew["lateness_ms"]["max"].as_f64().unwrap() < 1000.0,
        "{run}"
    );
    let per_second = curfew["snapshots_per_s"].as_f64().unwrap();
    assert!((0.5..=3.0).contains(&per_second), "{run}");
    assert!(curfew["peak_rss_mib"].as_f64().unwrap() < 200.0, "{run}");
    assert!(curfew["cpu_percent"].as_f64().unwrap() >= 0.0, "{run}");
    // A cron sweep every minute is, on average, half a minute late.
    let cron_p50 = run["cron_1m"]["lateness_ms"]["p50"].as_f64().unwrap();
    assert!((20_000.0..=40_000.0).contains(&cron_p50), "{run}");

    let engine = report["engine"].as_array().unwrap();
    let sizes: Vec<u64> = engine
        .iter()
        .map(|e| e["sessions"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1_000, 10_000]);
    assert!(engine.iter().all(|e| e["eval_ms"].as_f64().unwrap() > 0.0));
}

#[test]
fn bench_arguments_out_of_range_exit_2() {
    for args in [
        &["bench", "--sessions", "1"][..],
        &["bench", "--sessions", "many"],
    ] {
        let out = curfew(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("--sessions"),
            "{}",
            text(&out.stderr)
        );
    }
}
