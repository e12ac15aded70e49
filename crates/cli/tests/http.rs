//! The agent's HTTP endpoint against a real server: `/metrics` is valid exposition text and
//! its counters match the audit log; `/healthz` follows the server (and the audit log) down
//! and back up; `/status` and the page describe the live sessions.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::metrics::{matching_audit, outcome, parse_exposition, poll, target_value};
use common::{Response, agent, assert_audit_verifies, cluster, dir, http_get, lines_of, session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_audit_log_and_health_follows_the_server() {
    let mut cluster = cluster();
    cluster.psql("CREATE ROLE lee LOGIN;").unwrap();
    let d = dir("http");
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\nlisten = \"127.0.0.1:0\"\n\n\
             [[target]]\nname = \"db\"\nurl = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n\n\
             [[rule]]\nname = \"lifetime-watch\"\nlifetime = \"1s\"\naction = \"report\"\nroles = [\"lee\"]\n",
            cluster.url("curfew_agent", "postgres")
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    let address = common::listen_address(&lines);
    common::wait_for(&lines, "this agent leads", Duration::from_secs(20));

    // Two sessions the idle rule ends, one a report-only rule records.
    let (_k1, _, k1_ended) = session(&cluster, "kim").await;
    let (_k2, _, k2_ended) = session(&cluster, "kim").await;
    let (lee, lee_pid, _) = session(&cluster, "lee").await;
    k1_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    k2_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    lee.simple_query("SELECT 1").await.unwrap();

    // /status and the page show the surviving session and the terminations.
    let status = poll(&address, "/status", Duration::from_secs(10), |r| {
        serde_json::from_str::<serde_json::Value>(&r.body).is_ok_and(|j| {
            j["recent_terminations"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
    });
    assert_eq!(status.code, 200);
    assert!(
        status.content_type.starts_with("application/json"),
        "{}",
        status.content_type
    );
    let json: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let target = &json["targets"][0];
    assert_eq!(target["name"], "db");
    assert_eq!(target["role"], "leading");
    let lee_row = target["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["pid"] == lee_pid)
        .unwrap_or_else(|| panic!("lee's session is not in {target:#}"));
    assert_eq!(lee_row["fate"], "reported");
    assert_eq!(lee_row["rule"], "lifetime-watch");
    assert_eq!(json["recent_terminations"].as_array().unwrap().len(), 2);
    let page = http_get(&address, "/").unwrap();
    assert_eq!(page.code, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.body.contains("http-equiv=\"refresh\""),
        "the page does not refresh itself"
    );
    assert!(
        !page.body.contains("<script"),
        "the page must not need scripts"
    );
    assert!(
        page.body
            .contains(&format!("<td class=\"num\">{lee_pid}</td>"))
    );
    assert!(page.body.contains("lifetime-watch") && page.body.contains("idle for"));

    // The counters equal the audit log's counts, once the log stopped growing.
    // Sessions are counted per snapshot: the kims' ends show at the next one.
    let idle_now = |samples: &[common::metrics::Sample]| {
        samples
            .iter()
            .find(|s| {
                s.name == "curfew_sessions" && s.labels.get("state").is_some_and(|s| s == "idle")
            })
            .map(|s| s.value)
    };
    let (metrics, samples) = matching_audit(
        &address,
        &audit,
        Duration::from_secs(15),
        |samples, outcomes| {
            outcomes.get(&outcome("db", "idle", "ended")) == Some(&2)
                && outcomes.get(&outcome("db", "lifetime-watch", "report_only")) == Some(&1)
                && idle_now(samples) == Some(1.0)
        },
    );
    assert!(
        metrics
            .content_type
            .starts_with("application/openmetrics-text")
    );
    let value = |name: &str| target_value(&samples, name, "db");
    assert_eq!(value("curfew_leader"), Some(1.0));
    assert_eq!(value("curfew_connected"), Some(1.0));
    assert_eq!(
        value("curfew_termination_lateness_seconds_count"),
        Some(2.0)
    );
    assert!(value("curfew_snapshot_duration_seconds_count").unwrap() >= 1.0);
    assert!(value("curfew_last_snapshot_age_seconds").unwrap() < 5.0);

    // Healthy now; unhealthy while the audit log is moved away, and again after it is back.
    let healthy = |r: &Response| r.code == 200;
    let unhealthy = |r: &Response| r.code == 503;
    poll(&address, "/healthz", Duration::from_secs(5), healthy);
    let moved = d.0.join("audit.jsonl.moved");
    std::fs::rename(&audit, &moved).unwrap();
    let r = poll(&address, "/healthz", Duration::from_secs(5), unhealthy);
    assert!(r.body.contains("FAIL audit log"), "{}", r.body);
    std::fs::rename(&moved, &audit).unwrap();
    poll(&address, "/healthz", Duration::from_secs(5), healthy);

    // The server stops: unhealthy, naming the target; it comes back: healthy again.
    cluster.stop().unwrap();
    let r = poll(&address, "/healthz", Duration::from_secs(20), unhealthy);
    assert!(r.body.contains("FAIL target \"db\""), "{}", r.body);
    let metrics = http_get(&address, "/metrics").unwrap();
    let samples = parse_exposition(&metrics.body);
    assert!(
        samples
            .iter()
            .any(|s| s.name == "curfew_connected" && s.value == 0.0)
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "curfew_healthy" && s.value == 0.0)
    );
    cluster.restart().unwrap();
    poll(&address, "/healthz", Duration::from_secs(45), healthy);
    let r = http_get(&address, "/no-such-page").unwrap();
    assert_eq!(r.code, 404);

    common::signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_audit_verifies(&audit);
}
