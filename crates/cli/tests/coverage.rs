//! Continuity evidence end to end: an agent with `heartbeat = "1s"` is stopped for a minute,
//! then its server is stopped for a minute; `curfew report` shows both gaps with their causes
//! and durations, and a coverage share below 100 %. Takes about three minutes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    KillOnDrop, agent, assert_audit_verifies, cluster, curfew, dir, lines_of, signal, text,
    wait_for,
};
use serde_json::Value;

const OUTAGE: Duration = Duration::from_secs(60);

fn stop(mut agent: KillOnDrop) {
    signal(&agent, "TERM");
    assert_eq!(agent.wait().unwrap().code(), Some(0));
}

fn report(policy: &Path, audit: &Path, format: &str) -> String {
    let out = curfew()
        .args(["report", "-c"])
        .arg(policy)
        .arg("--audit-log")
        .arg(audit)
        // The target has no anchor store (no curfew init): coverage is what is tested here.
        .args(["--format", format, "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_stopped_agent_and_an_unreachable_server_are_gaps_with_their_causes() {
    let mut cluster = cluster();
    let dir = dir("coverage");
    let policy = dir.0.join("curfew.toml");
    let audit = dir.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[policy]\nowner = \"DBA team\"\napproved_by = \"J. Smith, CISO\"\nversion = \"3\"\n\
             effective = \"2026-11-01\"\nreview_by = \"2027-11-01\"\nimplements = \"SSP AC-12 rev 3\"\n\n\
             [agent]\ninterval = \"1s\"\nheartbeat = \"1s\"\n\n[exempt]\nroles = [\"postgres\"]\n\n\
             [[target]]\nname = \"db\"\nurl = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"kim\"]\n\
             controls = [\"NIST-800-171-3.1.11\", \"AC-12\", \"V-261910\"]\n",
            cluster.url("curfew_agent", "postgres")
        ),
    )
    .unwrap();

    let mut first = agent(&policy, &audit);
    let lines = lines_of(&mut first);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(5));
    stop(first);

    // The agent is stopped for a minute.
    std::thread::sleep(OUTAGE);
    let mut second = agent(&policy, &audit);
    let lines = lines_of(&mut second);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(5));

    // The server is stopped for a minute (same port: the agent reconnects by itself).
    cluster.stop().unwrap();
    std::thread::sleep(OUTAGE);
    cluster.restart().unwrap();
    // The agent's retry delay grows to 30 s while the server is down.
    wait_for(&lines, "this agent leads", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(5));
    stop(second);
    assert_audit_verifies(&audit);
    // For docs/coverage-report.png (scripts/screenshot-coverage): keep the run's files.
    if let Some(keep) = std::env::var_os("CURFEW_COVERAGE_KEEP") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).unwrap();
        std::fs::copy(&policy, keep.join("curfew.toml")).unwrap();
        std::fs::copy(&audit, keep.join("audit.jsonl")).unwrap();
    }

    let json: Value = serde_json::from_str(&report(&policy, &audit, "json")).unwrap();
    let coverage = &json["evidence"]["coverage"]["targets"][0];
    assert_eq!(coverage["target"], "db", "{coverage:#}");
    let gaps = coverage["gaps"].as_array().unwrap();
    let gap = |cause: &str| {
        gaps.iter()
            .filter(|g| g["cause"] == cause)
            .map(|g| g["duration_ms"].as_i64().unwrap())
            .max()
            .unwrap_or_else(|| panic!("no {cause} gap in {coverage:#}"))
    };
    let stopped = gap("agent_stopped");
    assert!(
        (55_000..=80_000).contains(&stopped),
        "agent stopped for {stopped} ms: {coverage:#}"
    );
    let unreachable = gap("unreachable");
    // A minute down, plus up to the agent's 30 s retry delay to come back.
    assert!(
        (50_000..=100_000).contains(&unreachable),
        "unreachable for {unreachable} ms: {coverage:#}"
    );
    let why = gaps.iter().find(|g| g["cause"] == "unreachable").unwrap()["why"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("could not be reached"), "{why}");
    // No stretch of the run reads as silence: heartbeats went on while the server was down.
    assert!(gaps.iter().all(|g| g["cause"] != "silence"), "{coverage:#}");
    let share = coverage["share_percent"].as_f64().unwrap();
    assert!(share > 5.0 && share < 60.0, "share {share}: {coverage:#}");
    // Loose: a clock query answered slowly on a loaded server reads as an offset.
    assert!(coverage["max_clock_offset_ms"].as_i64().unwrap().abs() < 3_000);

    let md = report(&policy, &audit, "md");
    assert!(md.contains("## 8. Coverage"), "{md}");
    assert!(
        md.contains("agent stopped") && md.contains("unreachable"),
        "{md}"
    );
    assert!(md.contains("**Coverage:** target db enforced"), "{md}");
    assert!(md.contains("J. Smith, CISO") && md.contains("## 12. Control mapping"));
    let html = report(&policy, &audit, "html");
    assert!(html.contains("Coverage timeline") && html.contains("Sign-off"));
}
