//! One agent, one policy, a PostgreSQL and a MariaDB target (issue 18): idle sessions on both
//! are ended and recorded naming their target, exempt users and sessions that keep working are
//! left alone, and `curfew report` covers both targets. A policy that needs login locks on a
//! MariaDB target is accepted (they are tested in `mariadb_locks.rs`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::{agent, assert_audit_verifies, curfew, dir, lines_of, maria, wait_for};
use curfew_sandbox::MariaDbServer;
use mysql_async::prelude::Queryable;

/// A MariaDB server with curfew's account (its password in `password_file`) and the client
/// accounts `kim` and `boss`.
fn mariadb(password_file: &std::path::Path) -> MariaDbServer {
    maria::server_with(password_file, &["kim", "boss"])
}

/// The JSON object under the first key `name`, anywhere in `doc`.
fn find<'v>(doc: &'v serde_json::Value, name: &str) -> Option<&'v serde_json::Value> {
    match doc {
        serde_json::Value::Object(map) => map
            .get(name)
            .or_else(|| map.values().find_map(|v| find(v, name))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find(v, name)),
        _ => None,
    }
}

#[test]
fn one_agent_enforces_a_postgresql_and_a_mariadb_target_and_the_report_covers_both() {
    let cluster =
        curfew_testkit::cluster_with_agent_role("CREATE ROLE kim LOGIN; CREATE ROLE boss LOGIN;");
    let d = dir("mariadb-and-postgresql");
    let password_file = d.0.join("maria.password");
    let maria = mariadb(&password_file);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\naudit_log = \"{}\"\n\n\
             [[target]]\nname = \"pg\"\nurl = \"{}\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[exempt]]\nroles = [\"boss\"]\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"3s\"\nroles = [\"kim\", \"boss\"]\n",
            audit.display(),
            cluster.url("curfew_agent", "postgres"),
            maria.url("curfew_agent", ""),
            password_file.display(),
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    let seen = wait_for(&lines, "this agent leads", Duration::from_secs(30));
    assert!(
        !seen.iter().any(|l| l.contains("agent-secret")),
        "the password was logged: {seen:?}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_pg_idle, _, pg_idle_ended) = common::session(&cluster, "kim").await;
        let (_pg_boss, _, pg_boss_ended) = common::session(&cluster, "boss").await;
        let (pg_busy, _, pg_busy_ended) = common::session(&cluster, "kim").await;
        let mut maria_idle = maria::client(&maria, "kim").await;
        let mut maria_boss = maria::client(&maria, "boss").await;
        let mut maria_busy = maria::client(&maria, "kim").await;
        // The busy sessions run a statement every second, well inside their 3 s limit.
        let until = Instant::now() + Duration::from_secs(9);
        while Instant::now() < until {
            pg_busy.simple_query("select 1").await.unwrap();
            maria_busy.query_drop("SELECT 1").await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        pg_idle_ended
            .recv_timeout(Duration::from_secs(10))
            .expect("the idle PostgreSQL session was not ended");
        assert!(
            !maria::alive(&mut maria_idle).await,
            "the idle MariaDB session was not ended"
        );
        assert!(
            pg_boss_ended.try_recv().is_err(),
            "an exempt session was ended"
        );
        assert!(
            pg_busy_ended.try_recv().is_err(),
            "a busy session was ended"
        );
        assert!(
            maria::alive(&mut maria_boss).await,
            "an exempt session was ended"
        );
        assert!(
            maria::alive(&mut maria_busy).await,
            "a busy session was ended"
        );
    });
    common::signal(&child, "TERM");
    let _ = child.wait();

    let records: Vec<curfew_audit::Entry> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut ended: Vec<&str> = records
        .iter()
        .filter(|r| r.event == "session_terminated")
        .map(|r| r.target.as_deref().unwrap_or("?"))
        .collect();
    ended.sort_unstable();
    assert_eq!(
        ended,
        ["maria", "pg"],
        "one idle session ended on each target"
    );
    assert_audit_verifies(&audit);

    // Nothing anchors the log (neither target has an anchor store): the report renders and
    // exits 3, as on PostgreSQL alone.
    let out = curfew()
        .args(["report", "--format", "json", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["terminations"]["total"], 2, "{doc:#}");
    let coverage = find(&doc, "coverage").expect("no coverage in the report");
    let mut covered: Vec<&str> = coverage["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    covered.sort_unstable();
    assert_eq!(covered, ["maria", "pg"], "{coverage:#}");
}

#[test]
fn a_policy_needing_login_locks_on_a_mariadb_target_is_accepted() {
    let d = dir("mariadb-lock-accepted");
    let policy = d.0.join("curfew.toml");
    std::fs::write(
        &policy,
        "[[target]]\nname = \"pg\"\nurl = \"postgresql://curfew_agent@/postgres?host=/tmp\"\n\n\
         [[target]]\nname = \"maria\"\nurl = \"mariadb://curfew_agent@127.0.0.1:3306/\"\n\n\
         [[rule]]\nname = \"night\"\nallow = [\"Mon-Fri 07:00-19:00\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"kim\"]\n",
    )
    .unwrap();
    let out = curfew()
        .args(["validate", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("not supported"), "{stderr}");
}

#[test]
fn idle_in_transaction_and_lifetime_rules_end_mariadb_sessions() {
    let d = dir("mariadb-rules");
    let password_file = d.0.join("maria.password");
    let maria = mariadb(&password_file);
    maria
        .admin_sql(
            "CREATE USER 'lee'@'127.0.0.1';
             CREATE DATABASE app;
             CREATE TABLE app.t (id INT PRIMARY KEY) ENGINE=InnoDB;
             INSERT INTO app.t VALUES (1);
             GRANT ALL ON app.* TO 'kim'@'127.0.0.1';",
        )
        .unwrap();
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"in-transaction\"\nidle_in_transaction = \"2s\"\nroles = [\"kim\"]\n\n\
             [[rule]]\nname = \"lifetime\"\nlifetime = \"5s\"\nroles = [\"lee\"]\n",
            maria.url("curfew_agent", ""),
            password_file.display(),
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    let seen = wait_for(&lines, "this agent leads", Duration::from_secs(30));
    // It leads with the leader lock: no "one agent per target" warning any more.
    assert!(
        !seen.iter().any(|l| l.contains("run exactly one agent")),
        "the old warning: {seen:?}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut in_transaction = maria::client(&maria, "kim").await;
        in_transaction
            .query_drop("START TRANSACTION")
            .await
            .unwrap();
        in_transaction
            .query_drop("SELECT * FROM app.t WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();
        // Idle too, but outside a transaction: no rule applies to it.
        let mut idle = maria::client(&maria, "kim").await;
        let mut busy = maria::client(&maria, "lee").await;
        let until = Instant::now() + Duration::from_secs(12);
        let mut busy_ended = false;
        while Instant::now() < until && !busy_ended {
            busy_ended = busy.query_drop("SELECT 1").await.is_err();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(busy_ended, "a session past its lifetime was not ended");
        assert!(
            !maria::alive(&mut in_transaction).await,
            "a session idle in a transaction was not ended"
        );
        assert!(
            maria::alive(&mut idle).await,
            "a session no rule names was ended"
        );
    });
    common::signal(&child, "TERM");
    let _ = child.wait();
    let mut ended: Vec<String> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .map(|e| format!("{}/{}", e.target.unwrap(), e.rule.unwrap()))
        .collect();
    ended.sort_unstable();
    assert_eq!(ended, ["maria/in-transaction", "maria/lifetime"]);
    assert_audit_verifies(&audit);
}
