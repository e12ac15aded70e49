//! Warnings on a real server: a `session_warned` record before the `session_terminated` one,
//! the notify hooks (a command, a webhook) receiving the event, retried, and a hook that hangs
//! never delaying a termination.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "agent_common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use curfew_agent::AgentEvent;
use curfew_testkit::WebhookReceiver;
use serde_json::Value;

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The record of `event` about session `pid`.
fn record_of(records: &[Value], event: &str, pid: i32) -> Value {
    records
        .iter()
        .find(|r| r["event"] == event && r["session"]["pid"] == pid)
        .unwrap_or_else(|| panic!("no {event} record for pid {pid} in {records:#?}"))
        .clone()
}

/// A script that appends its standard input to `out`.
fn recording_script(dir: &Path, out: &Path) -> std::path::PathBuf {
    let script = dir.join("hook.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat >> '{}'\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Wait for a termination event of `pid`; its lateness.
async fn terminated(agent: &mut Agent, pid: i32, limit: Duration) -> Duration {
    agent
        .next(limit, |e| match terminated_pid(e) {
            Some((p, _, lateness)) if p == pid => Some(lateness),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("pid {pid} was not ended within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_is_recorded_before_the_end_and_the_command_hook_gets_it_as_json() {
    let cluster = cluster();
    let dir = scratch("warn-command");
    let out = dir.join("events.jsonl");
    let script = recording_script(dir.path(), &out);
    let policy = policy(
        &cluster,
        &format!(
            "[[rule]]\nname = \"inactivity\"\nidle = \"3s\"\nwarn = \"2s\"\nroles = [\"kim\"]\n\n\
             [notify]\ncommand = \"'{}'\"\n",
            script.display()
        ),
    );
    let sha = policy.sha256.clone();
    let mut agent = Agent::start(policy, &dir).await;
    agent.ready().await;
    let mut kim = connect(&cluster, "kim", "psql").await;
    let warned = agent
        .next(Duration::from_secs(10), |e| match e {
            AgentEvent::Warned {
                session,
                hooks,
                reason,
                ..
            } if session.pid == i64::from(kim.pid) => Some((hooks.clone(), reason.clone())),
            _ => None,
        })
        .await
        .expect("no warning event");
    assert_eq!(warned.0, ["command"]);
    let lateness = terminated(&mut agent, kim.pid, Duration::from_secs(10)).await;
    // Loose: other clusters share the machine's two cores (precision: `curfew bench`).
    assert!(lateness < Duration::from_secs(3), "ended {lateness:?} late");
    assert!(kim.ended_within(Duration::from_secs(5)).await.is_some());

    // The hook ran with the event on its standard input.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(line) = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
        {
            break line;
        }
        assert!(Instant::now() < deadline, "the command hook never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "session_warned", "{event}");
    assert_eq!(event["target"], "test");
    assert_eq!(event["rule"], "inactivity");
    assert_eq!(event["role"], "kim");
    assert_eq!(event["database"], "postgres");
    assert_eq!(event["pid"], kim.pid);
    assert_eq!(event["policy_sha256"], sha.as_str());
    assert!(event["deadline"].is_string() && event["backend_start"].is_string());
    assert!(event["reason"].as_str().unwrap().starts_with("idle for"));

    agent.stop().await;
    let records = records(&dir.join("audit.jsonl"));
    let warning = record_of(&records, "session_warned", kim.pid);
    let ended = record_of(&records, "session_terminated", kim.pid);
    assert!(
        warning["seq"].as_u64() < ended["seq"].as_u64(),
        "the warning was recorded after the end"
    );
    assert_eq!(warning["rule"], "inactivity");
    assert_eq!(warning["target"], "test");
    // Not an action: no intent, and the chain verified (Agent::stop) without an outcome.
    assert!(
        warning.get("intent").is_none_or(Value::is_null),
        "{warning}"
    );
    let reason = warning["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("will be ended at ")
            && reason.contains("by rule inactivity (idle for")
            && reason.contains("recorded for operators and queued for the notify hook (command)")
            && reason.contains("the agent cannot reach the user"),
        "{reason}"
    );
    assert_eq!(warning["detail"]["hooks"], serde_json::json!(["command"]));
    assert_eq!(warning["detail"]["lead"], "2s");
    assert_eq!(warning["detail"]["deadline"], event["deadline"]);
    assert_eq!(event["seq"], warning["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_hangs_delays_no_termination() {
    let cluster = cluster();
    let dir = scratch("warn-hang");
    let started = dir.join("started");
    let policy = policy(
        &cluster,
        &format!(
            "[[rule]]\nname = \"inactivity\"\nidle = \"2s\"\nwarn = \"1500ms\"\nroles = [\"kim\", \"lee\"]\n\n\
             [notify]\ncommand = \"sh -c 'echo started >> {}; exec sleep 30'\"\n",
            started.display()
        ),
    );
    let mut agent = Agent::start(policy, &dir).await;
    agent.ready().await;
    let mut kim = connect(&cluster, "kim", "psql").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut lee = connect(&cluster, "lee", "psql").await;
    // kim's hook is hanging while lee is warned and both are ended.
    for client in [&mut kim, &mut lee] {
        let lateness = terminated(&mut agent, client.pid, Duration::from_secs(8)).await;
        assert!(
            lateness < Duration::from_secs(3),
            "pid {} ended {lateness:?} late",
            client.pid
        );
        assert!(client.ended_within(Duration::from_secs(5)).await.is_some());
    }
    // The hook was running (and hanging) meanwhile.
    assert!(
        std::fs::read_to_string(&started).is_ok_and(|t| t.starts_with("started")),
        "the hook never started, so the test proves nothing"
    );
    // Stopping does not wait for the hook either (a short grace, then it is killed).
    let asked = Instant::now();
    agent.stop().await;
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        asked.elapsed()
    );
    let records = records(&dir.join("audit.jsonl"));
    assert_eq!(
        records
            .iter()
            .filter(|r| r["event"] == "session_warned")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_retried_after_a_server_error_and_failures_are_counted() {
    let cluster = cluster();
    let dir = scratch("warn-webhook");
    let flaky = WebhookReceiver::start(vec![500, 200]).await;
    let broken = WebhookReceiver::start(vec![503]).await;
    let policy = policy(
        &cluster,
        &format!(
            "[[rule]]\nname = \"inactivity\"\nidle = \"2s\"\nwarn = \"1s\"\nroles = [\"kim\"]\n\n\
             [notify]\nwebhook = \"http://127.0.0.1:{}/hook/SECRET-TOKEN\"\n",
            flaky.port
        ),
    );
    let mut agent = Agent::start(policy.clone(), &dir).await;
    agent.ready().await;
    let mut kim = connect(&cluster, "kim", "psql").await;
    terminated(&mut agent, kim.pid, Duration::from_secs(8)).await;
    assert!(kim.ended_within(Duration::from_secs(5)).await.is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    while flaky.count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the webhook was not retried: {:?}",
            flaky.seen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let seen = flaky.seen();
        let (head, body, first) = &seen[0];
        assert!(
            head.starts_with("POST /hook/SECRET-TOKEN HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["event"], "session_warned");
        assert_eq!(event["pid"], kim.pid);
        // The retry is the same event, after a pause.
        assert_eq!(&seen[1].1, body);
        assert!(seen[1].2.duration_since(*first) >= Duration::from_millis(900));
    }

    // A webhook that always fails: given up after every attempt, said to observers, without
    // the URL's path (it may hold a token).
    let text = format!(
        "[[rule]]\nname = \"inactivity\"\nidle = \"2s\"\nwarn = \"1s\"\nroles = [\"lee\"]\n\n\
         [notify]\nwebhook = \"http://127.0.0.1:{}/hook/SECRET-TOKEN\"\n",
        broken.port
    );
    agent
        .policy
        .send(Arc::new(common::policy(&cluster, &text)))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lee = connect(&cluster, "lee", "psql").await;
    let failed = agent
        .next(Duration::from_secs(20), |e| match e {
            AgentEvent::NotifyFailed { hook, error } => Some((*hook, error.clone())),
            _ => None,
        })
        .await
        .expect("the failing webhook was never given up on");
    assert_eq!(failed.0, "webhook");
    assert!(failed.1.contains("503"), "{}", failed.1);
    assert!(!failed.1.contains("SECRET"), "{}", failed.1);
    assert_eq!(broken.count(), curfew_agent::ATTEMPTS as usize);
    drop(lee);
    agent.stop().await;
}
