//! The agent's HTTP endpoint on a MariaDB target (issue 18: "the status page and metrics work
//! the same for a MariaDB target"): `/status` and the page list the MariaDB sessions by
//! connection id with their fate, `/metrics` counts what the audit log records under the
//! target's name, and `/healthz` follows the MariaDB server down and back up.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::metrics::{matching_audit, outcome, parse_exposition, poll, target_value};
use common::{Response, agent, assert_audit_verifies, dir, http_get, lines_of, maria};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_and_health_describe_a_mariadb_target() {
    let d = dir("mariadb-status");
    let password_file = d.0.join("maria.password");
    let mut server = maria::server_with(&password_file, &["kim", "lee"]);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\nlisten = \"127.0.0.1:0\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"2s\"\nroles = [\"kim\"]\n\n\
             [[rule]]\nname = \"lifetime-watch\"\nlifetime = \"1s\"\naction = \"report\"\nroles = [\"lee\"]\n",
            server.url(maria::AGENT, ""),
            password_file.display(),
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    let address = common::listen_address(&lines);
    common::wait_for(&lines, "this agent leads", Duration::from_secs(30));

    // kim's idle session is ended; lee's is only reported, and stays.
    let kim = maria::client(&server, "kim").await;
    let kim_id = kim.id();
    let mut lee = maria::client(&server, "lee").await;
    let lee_id = lee.id();
    let status = poll(&address, "/status", Duration::from_secs(20), |r| {
        serde_json::from_str::<serde_json::Value>(&r.body).is_ok_and(|j| {
            j["recent_terminations"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
                && j["targets"][0]["sessions"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["pid"] == lee_id && s["fate"] == "reported")
                })
        })
    });
    assert_eq!(status.code, 200);
    let json: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let target = &json["targets"][0];
    assert_eq!(target["name"], "maria");
    assert_eq!(target["role"], "leading");
    let sessions = target["sessions"].as_array().unwrap();
    let lee_row = sessions.iter().find(|s| s["pid"] == lee_id).unwrap();
    assert_eq!(lee_row["rule"], "lifetime-watch");
    assert_eq!(lee_row["role"], "lee", "{lee_row:#}");
    assert!(
        sessions.iter().all(|s| s["pid"] != kim_id),
        "kim's ended session is still listed: {target:#}"
    );
    assert!(
        sessions.iter().all(|s| s["role"] != maria::AGENT),
        "curfew's own connections are listed as sessions: {target:#}"
    );
    let page = http_get(&address, "/").unwrap();
    assert_eq!(page.code, 200);
    assert!(
        page.body.contains("maria"),
        "the page does not name the target"
    );
    assert!(
        page.body
            .contains(&format!("<td class=\"num\">{lee_id}</td>")),
        "the page does not list lee's connection {lee_id}"
    );
    drop(kim);

    // The counters equal the audit log's, under the MariaDB target's name.
    let (_, samples) = matching_audit(&address, &audit, Duration::from_secs(15), |_, outcomes| {
        outcomes.get(&outcome("maria", "idle", "ended")) == Some(&1)
            && outcomes.get(&outcome("maria", "lifetime-watch", "report_only")) == Some(&1)
    });
    let value = |name: &str| target_value(&samples, name, "maria");
    assert_eq!(value("curfew_leader"), Some(1.0));
    assert_eq!(value("curfew_connected"), Some(1.0));
    assert_eq!(
        value("curfew_termination_lateness_seconds_count"),
        Some(1.0)
    );
    assert!(value("curfew_snapshot_duration_seconds_count").unwrap() >= 1.0);
    assert!(value("curfew_last_snapshot_age_seconds").unwrap() < 5.0);
    assert!(
        maria::alive(&mut lee).await,
        "the report-only rule ended lee"
    );

    // The MariaDB server stops: unhealthy, naming the target; it comes back: healthy again.
    let healthy = |r: &Response| r.code == 200;
    let unhealthy = |r: &Response| r.code == 503;
    poll(&address, "/healthz", Duration::from_secs(5), healthy);
    drop(lee);
    server.stop().unwrap();
    let r = poll(&address, "/healthz", Duration::from_secs(20), unhealthy);
    assert!(r.body.contains("FAIL target \"maria\""), "{}", r.body);
    let samples = parse_exposition(&http_get(&address, "/metrics").unwrap().body);
    assert!(
        samples.iter().any(|s| s.name == "curfew_connected"
            && s.labels.get("target").is_some_and(|t| t == "maria")
            && s.value == 0.0),
        "curfew_connected is not 0 for the stopped server"
    );
    server.restart().unwrap();
    poll(&address, "/healthz", Duration::from_secs(45), healthy);

    common::signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_audit_verifies(&audit);
}
