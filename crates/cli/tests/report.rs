//! `curfew report` on an agent's real audit log: every rule is in the document, the termination
//! counts are the log's own, and the chain's verification is stated — also when the log was
//! tampered with.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::{agent, cluster, curfew, dir, lines_of, wait_for};

const RULES: &str = r#"
[[rule]]
name = "inactivity"
description = "Interactive sessions idle for a second are ended."
idle = "1s"
roles = ["kim"]

[[rule]]
name = "year-end-maintenance"
deny = ["2020-12-31 22:00 - 2021-01-01 02:00"]
timezone = "UTC"

[[rule]]
name = "one-each"
max_sessions = 5
roles = ["analyst_*"]
"#;

fn report(args: &[&str], policy: &std::path::Path) -> (Option<i32>, String, String) {
    let out = curfew()
        .arg("report")
        .args(args)
        .arg("-c")
        .arg(policy)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_report_shows_every_rule_the_logs_termination_counts_and_the_chain_result() {
    let cluster = cluster();
    let d = dir("report");
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        common::policy_text(&cluster, RULES).replace(
            "[agent]\n",
            &format!("[agent]\naudit_log = \"{}\"\n", audit.display()),
        ),
    )
    .unwrap();
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut ended = Vec::new();
        for _ in 0..3 {
            let (client, _pid, rx) = common::session(&cluster, "kim").await;
            ended.push((client, rx));
        }
        for (_client, rx) in &ended {
            rx.recv_timeout(Duration::from_secs(15)).unwrap();
        }
    });
    // A check is recorded in the same log (the server is not hardened: it fails).
    let check = curfew()
        .args(["check", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(3));
    common::signal(&agent, "TERM");
    let _ = agent.wait();

    let terminated = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .flatten()
        .filter(|e| e.event == "session_terminated")
        .count();
    assert_eq!(terminated, 3);

    // The target has no anchor store (no curfew init): nothing confirms the log, which the
    // report still renders but exits 3 for (a forger can make a target unreadable).
    let (code, json, stderr) = report(&["--format", "json"], &policy);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("is NOT CONFIRMED: no target's anchors could be compared"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["terminations"]["total"], 3, "{doc:#}");
    let by_rule = &doc["terminations"]["by_rule"];
    assert_eq!(by_rule[0]["rule"], "inactivity", "{by_rule:#}");
    assert_eq!(by_rule[0]["terminated"], 3);
    assert_eq!(doc["chain"]["intact"], true);
    assert_eq!(doc["checks"][0]["result"], "failed", "{:#}", doc["checks"]);

    let html_path = d.0.join("report.html");
    let (code, _, stderr) = report(&["-o", html_path.to_str().unwrap()], &policy);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("chain intact"), "{stderr}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    for rule in ["inactivity", "year-end-maintenance", "one-each"] {
        assert!(html.contains(rule), "{rule} missing from the HTML");
    }
    assert!(html.contains("<svg"), "no chart");
    assert!(html.contains("is <span class=\"word good\">intact</span>"));
    assert!(
        !html.contains("<script"),
        "the report must not carry scripts"
    );
    for external in ["src=\"http", "href=\"http", "<link", "@import"] {
        assert!(
            !html.contains(external),
            "the report must be self-contained: {external}"
        );
    }

    // One edited record: the report says the chain is broken, and exits 3.
    let tampered = d.0.join("tampered.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap();
    std::fs::write(&tampered, text.replacen("\"kim\"", "\"bob\"", 1)).unwrap();
    let (code, md, stderr) = report(
        &["--format", "md", "--audit-log", tampered.to_str().unwrap()],
        &policy,
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(md.contains("BROKEN"), "{md}");
    assert!(stderr.contains("chain"), "{stderr}");
}
