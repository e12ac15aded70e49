//! `curfew verify` on a MariaDB target through the `curfew` binary (issue 18): with no agent
//! it fails at once and says why, and makes no canary; with the agent running, canary
//! accounts (random passwords, `'%'` hosts) are ended live by an idle rule, an
//! idle-in-transaction rule and a lifetime rule (a running `SELECT SLEEP`), each with the
//! agent's `session_terminated` record named by connection id, and at a window edge and a
//! session cap; a canary account is locked and unlocked through the MariaDB ledger ("this
//! account is locked" in between); a `member_of` rule is NOT TESTED (roles are not read); no
//! canary account is left in `mysql.global_priv`, even after a run interrupted while a canary
//! runs a statement. A policy with a PostgreSQL and a MariaDB target is verified in one run;
//! a read-only MariaDB is evaluated.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{agent, dir, lines_of, wait_for};
use curfew_sandbox::{MariaDbOptions, MariaDbServer};

const RULES: &str = r#"
[[rule]]
name = "grouped"
idle = "2s"
roles = ["team_*"]
member_of = ["humans"]

[[rule]]
name = "inactivity"
idle = "2s"
roles = ["idle_*"]

[[rule]]
name = "abandoned-transaction"
idle_in_transaction = "2s"

[[rule]]
name = "session-lifetime"
lifetime = "6s"
roles = ["analyst_*"]

[[rule]]
name = "year-end"
deny = ["2030-12-31 22:00 - 2031-01-01 02:00"]
timezone = "UTC"

[[rule]]
name = "reporting"
max_sessions = 2
roles = ["report_*"]
"#;

/// A server with curfew's account as `curfew init` leaves it (no `CREATE USER`: canaries and
/// account locks go through its procedures).
fn mariadb(password_file: &Path) -> MariaDbServer {
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql("CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'agent-secret';")
        .unwrap();
    common::maria::install_curfew(&server);
    std::fs::write(password_file, "agent-secret\n").unwrap();
    std::fs::set_permissions(password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    server
}

fn target_text(name: &str, server: &MariaDbServer, password_file: &Path) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n",
        server.url("curfew_agent", ""),
        password_file.display()
    )
}

/// `curfew verify --format json`: the exit code, the document, standard error.
fn verify(policy: &Path, audit: &Path) -> (Option<i32>, serde_json::Value, String) {
    let out = common::curfew()
        .args(["verify", "--format", "json", "--audit-log"])
        .arg(audit)
        .arg("-c")
        .arg(policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code(), json, stderr)
}

fn result<'d>(target: &'d serde_json::Value, rule: &str) -> &'d serde_json::Value {
    target["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(target["mechanisms"].as_array().unwrap())
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no result for {rule}: {target:#}"))
}

fn text_of<'d>(r: &'d serde_json::Value, key: &str) -> &'d str {
    r[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {r:#}"))
}

/// The canary accounts on the server (verify's names carry `curfew_canary_`).
fn canaries(server: &MariaDbServer) -> String {
    server
        .admin_sql(
            "SELECT CONCAT(User, '@', Host) FROM mysql.global_priv \
             WHERE User LIKE '%curfew\\_canary\\_%'",
        )
        .unwrap()
}

/// The connection id and user of each `session_terminated` record.
fn terminated(audit: &Path) -> Vec<(i64, String, String)> {
    curfew_audit::read(audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .map(|e| {
            let s = e.session.unwrap();
            (s.pid, s.role, e.rule.unwrap_or_default())
        })
        .collect()
}

#[test]
fn verify_passes_live_on_mariadb_with_the_agent_and_fails_without_it() {
    let d = dir("mariadb-verify");
    let password_file = d.0.join("maria.password");
    let maria = mariadb(&password_file);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n{}{RULES}",
            target_text("maria", &maria, &password_file)
        ),
    )
    .unwrap();

    // No agent: the live tests fail at once, saying why, and no canary is made.
    let (code, doc, stderr) = verify(&policy, &audit);
    assert_eq!(code, Some(3), "{doc:#}\n{stderr}");
    let target = &doc["targets"][0];
    assert!(
        text_of(target, "server").starts_with("MariaDB 1"),
        "{target:#}"
    );
    let inactivity = result(target, "inactivity");
    assert_eq!(inactivity["status"], "fail", "{inactivity:#}");
    assert!(
        text_of(inactivity, "status_line")
            .starts_with("FAIL: No curfew agent enforces the policy on target \"maria\""),
        "{inactivity:#}"
    );
    assert_eq!(
        result(target, "login locks (curfew lock)")["status"],
        "fail"
    );
    assert_eq!(canaries(&maria), "", "a canary was left behind");

    // With the agent.
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    wait_for(&lines, "this agent leads", Duration::from_secs(30));
    let (code, doc, stderr) = verify(&policy, &audit);
    let target = &doc["targets"][0];
    assert_eq!(code, Some(0), "{doc:#}\n{stderr}");
    assert!(text_of(target, "agent").contains("enforcing"), "{target:#}");
    let records = terminated(&audit);
    for (rule, canary_statement) in [
        ("inactivity", "SELECT 1"),
        (
            "abandoned-transaction",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        ),
        ("session-lifetime", "SELECT SLEEP("),
    ] {
        let r = result(target, rule);
        assert_eq!(r["status"], "live_pass", "{r:#}");
        let evidence = text_of(r, "evidence");
        for needle in [
            canary_statement,
            "SET SESSION wait_timeout = 31536000",
            "gone from information_schema.PROCESSLIST",
            "Using it then failed, as it should",
            "session_terminated, rule",
        ] {
            assert!(evidence.contains(needle), "{needle} not in {evidence}");
        }
        // The evidence names the connection id the agent's record names.
        let (id, user, _) = records
            .iter()
            .find(|(id, user, named)| {
                named == rule
                    && evidence.contains(&format!("(connection {id})"))
                    && user.contains("curfew_canary_")
            })
            .unwrap_or_else(|| panic!("no record of {rule}'s canary in {records:?}: {evidence}"));
        assert!(user.contains("curfew_canary_"), "{user}");
        assert!(*id > 0);
    }
    // A window edge a few seconds ahead (the canary busy in SLEEP until then), and a
    // session cap: the newest of three sessions ended, the two older kept.
    let edge = result(target, "year-end");
    assert_eq!(edge["status"], "live_pass", "{edge:#}");
    assert!(
        text_of(edge, "status_line").starts_with("LIVE PASS at a window edge"),
        "{edge:#}"
    );
    assert!(
        text_of(edge, "evidence").contains("session_terminated, rule \"year-end\""),
        "{edge:#}"
    );
    let cap = result(target, "reporting");
    assert_eq!(cap["status"], "live_pass", "{cap:#}");
    let evidence = text_of(cap, "evidence");
    for needle in [
        "The 2 older sessions were still there and usable",
        "session_terminated, rule \"reporting\"",
    ] {
        assert!(evidence.contains(needle), "{needle} not in {evidence}");
    }
    let grouped = result(target, "grouped");
    assert_eq!(grouped["status"], "not_tested", "{grouped:#}");
    assert!(
        text_of(grouped, "evidence").contains("not tested on MariaDB: roles are not read"),
        "{grouped:#}"
    );
    let lock = result(target, "login locks (curfew lock)");
    assert_eq!(lock["status"], "live_pass", "{lock:#}");
    let evidence = text_of(lock, "evidence");
    for needle in [
        "incident lock",
        "login disabled",
        "refused: \"this account is locked\"",
        "restored the login",
        "A new login then worked (connection",
    ] {
        assert!(evidence.contains(needle), "{needle} not in {evidence}");
    }
    assert!(
        target["cleanup"].as_array().unwrap().is_empty(),
        "{target:#}"
    );
    assert_eq!(canaries(&maria), "", "a canary was left behind");
    // Nothing verify made is still locked or listed.
    let sessions = maria
        .admin_sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER LIKE '%curfew\\_canary\\_%'",
        )
        .unwrap();
    assert_eq!(sessions, "0");

    // Interrupted (SIGTERM, as Ctrl-C) while a canary runs a statement: its session is ended
    // and its account dropped all the same.
    let slow = d.0.join("slow.toml");
    std::fs::write(
        &slow,
        format!(
            "[agent]\ninterval = \"1s\"\n\n{}\
             [[rule]]\nname = \"slow\"\nlifetime = \"4m\"\nroles = [\"slow_*\"]\n",
            target_text("maria", &maria, &password_file)
        ),
    )
    .unwrap();
    let verify_run = common::curfew()
        .args(["verify", "--no-record", "-c"])
        .arg(&slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !canaries(&maria).contains("slow_curfew_canary_") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no canary account appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Once it runs its statement.
    while maria
        .admin_sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER LIKE 'slow\\_curfew\\_canary\\_%' AND INFO LIKE 'SELECT SLEEP%'",
        )
        .unwrap()
        != "1"
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the canary never ran its statement"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    common::signal(&verify_run, "TERM");
    let out = verify_run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        canaries(&maria),
        "",
        "a canary outlived the interrupted run"
    );
    let sessions = maria
        .admin_sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER LIKE 'slow\\_curfew%'",
        )
        .unwrap();
    assert_eq!(sessions, "0");
    drop(child);
}

#[test]
fn a_policy_with_a_postgresql_and_a_mariadb_target_is_verified_in_one_run() {
    let d = dir("mariadb-verify-mixed");
    let password_file = d.0.join("maria.password");
    let maria = mariadb(&password_file);
    let cluster = common::cluster();
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n[[target]]\nname = \"pg\"\nurl = \"{}\"\n\n{}\
             [[rule]]\nname = \"inactivity\"\nidle = \"2s\"\n",
            cluster.url("curfew_agent", "postgres"),
            target_text("maria", &maria, &password_file)
        ),
    )
    .unwrap();
    // No agent on either: both targets are verified (not refused) and both fail, saying why.
    let (code, doc, stderr) = verify(&policy, &audit);
    assert_eq!(code, Some(3), "{doc:#}\n{stderr}");
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{doc:#}");
    for (target, name, server) in [
        (&targets[0], "pg", "PostgreSQL "),
        (&targets[1], "maria", "MariaDB "),
    ] {
        assert_eq!(target["target"], name);
        assert!(text_of(target, "server").starts_with(server), "{target:#}");
        let r = result(target, "inactivity");
        assert!(
            text_of(r, "status_line").starts_with(&format!(
                "FAIL: No curfew agent enforces the policy on target \"{name}\""
            )),
            "{r:#}"
        );
    }
    assert!(stderr.contains("4 tests failed verification"), "{stderr}");

    // A read-only MariaDB (a replica) takes no canary account: its rules are evaluated.
    maria.admin_sql("SET GLOBAL read_only = ON;").unwrap();
    let out = common::curfew()
        .args([
            "verify",
            "--format",
            "json",
            "--no-record",
            "--target",
            "maria",
            "-c",
        ])
        .arg(&policy)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = result(&doc["targets"][0], "inactivity");
    assert_eq!(r["status"], "evaluated", "{r:#}");
    assert!(text_of(r, "status_line").contains("read-only"), "{r:#}");
    assert_eq!(canaries(&maria), "");
}
