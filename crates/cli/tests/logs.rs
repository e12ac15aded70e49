//! The agent's logs, audit log and HTTP endpoint never show the password, even at debug level
//! and when authentication fails; JSON logs are one object per line.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{agent_command, assert_audit_verifies, dir, http_get, lines_of, wait_for};
use curfew_sandbox::{Auth, Cluster, Options};

const WRONG: &str = "wrong-Pa55word-first";
const RIGHT: &str = "right-Pa55word-then";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_json_logs_audit_or_http_even_when_authentication_fails() {
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(&format!(
            "CREATE ROLE curfew_agent LOGIN PASSWORD '{RIGHT}';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE kim LOGIN PASSWORD 'kim';"
        ))
        .unwrap();
    let d = dir("logs");
    let secret = d.0.join("password");
    std::fs::write(&secret, WRONG).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\nlisten = \"127.0.0.1:0\"\n\n\
             [[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{}/postgres?sslmode=disable\"\n\
             password_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n",
            cluster.port(),
            secret.display()
        ),
    )
    .unwrap();
    let mut child = agent_command(&policy, &audit)
        .args(["--log-format", "json"])
        .env("CURFEW_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let lines = lines_of(&mut child);
    let mut seen = wait_for(
        &lines,
        "password authentication failed",
        Duration::from_secs(20),
    );
    // The right password: the next attempt (it reads the file each time) connects.
    std::fs::write(&secret, RIGHT).unwrap();
    seen.extend(wait_for(
        &lines,
        "this agent leads",
        Duration::from_secs(30),
    ));
    let address = seen
        .iter()
        .find_map(|l| l.split("http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=kim password=kim dbname=postgres",
        cluster.port()
    );
    let (kim, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, ended) = std::sync::mpsc::channel();
    tokio::spawn(async move {
        let _ = connection.await;
        let _ = tx.send(());
    });
    kim.simple_query("SELECT 1").await.unwrap();
    ended.recv_timeout(Duration::from_secs(15)).unwrap();
    seen.extend(wait_for(&lines, "ended pid", Duration::from_secs(5)));
    let pages: Vec<String> = ["/", "/status", "/metrics", "/healthz"]
        .iter()
        .map(|p| http_get(&address, p).unwrap().body)
        .collect();
    common::signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    seen.extend(lines.try_iter());

    for line in &seen {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            object["level"].is_string() && object["timestamp"].is_string(),
            "{line}"
        );
        for secret in [WRONG, RIGHT] {
            assert!(
                !line.contains(secret),
                "a log line shows the password: {line}"
            );
        }
    }
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    for secret in [WRONG, RIGHT] {
        assert!(
            !audit_text.contains(secret),
            "the audit log shows the password"
        );
        for page in &pages {
            assert!(!page.contains(secret), "an HTTP page shows the password");
        }
    }
    // Session events carry structured fields, not only a sentence: `target` is curfew's
    // target (the tracing target is not shown).
    let ended: serde_json::Value = seen
        .iter()
        .find(|l| l.contains("ended pid"))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(ended["event"], "session_terminated", "{ended}");
    assert_eq!(ended["target"], "db", "{ended}");
    assert_eq!(ended["role"], "kim", "{ended}");
    assert_eq!(ended["rule"], "idle", "{ended}");
    assert!(ended["pid"].as_i64().is_some_and(|p| p > 0), "{ended}");
    assert!(
        seen.iter().any(|l| l.contains("\"level\":\"DEBUG\"")),
        "debug logging was not on, so the test proves less than it says"
    );
    assert_audit_verifies(&audit);
}

#[test]
fn a_rejected_policy_is_reported_as_json_when_the_log_is_json() {
    let d = dir("logs-bad");
    let policy = d.0.join("curfew.toml");
    std::fs::write(
        &policy,
        "[agent]\nlisten = \"localhost:9187\"\n\n[[rule]]\nname = \"a\"\nidel = \"5m\"\n",
    )
    .unwrap();
    let out = common::curfew()
        .args(["agent", "--log-format", "json", "--audit-log"])
        .arg(d.0.join("audit.jsonl"))
        .arg("-c")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("curfew.toml:2:10: `listen`")
                && m.contains("write the address, not a name")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("curfew.toml:6:1: unknown key `idel`")),
        "{messages:#?}"
    );
    assert!(lines.iter().all(|l| l["level"] == "ERROR"), "{stderr}");
}
