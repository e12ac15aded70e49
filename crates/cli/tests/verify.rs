//! `curfew verify` against a real server: with no agent it fails at once and says why; with
//! the agent running, canary sessions (logging in with their own SCRAM passwords) are ended
//! by the rules under test — at an idle limit, a window edge, a session cap — the audit log
//! has each record, a canary role is locked and unlocked, what is not tested live is
//! EVALUATED or NOT TESTED with why (never a pass), and no canary role is left behind.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{agent, dir, lines_of, wait_for};
use curfew_sandbox::{Auth, Cluster, Options};

const RULES: &str = r#"
[[rule]]
name = "inactivity"
idle = "2s"
roles = ["analyst_*"]
member_of = ["humans"]

[[rule]]
name = "abandoned-transaction"
idle_in_transaction = "2s"

[[rule]]
name = "session-lifetime"
lifetime = "8s"
roles = ["analyst_*"]

[[rule]]
name = "long-idle"
idle = "15m"
roles = ["kim"]

[[rule]]
name = "old-maintenance"
deny = ["2020-01-01 00:00 - 2020-01-02 00:00"]
timezone = "UTC"

[[rule]]
name = "one-each"
max_sessions = 2
roles = ["cap_*"]

[[rule]]
name = "contractor-idle"
idle = "15m"
roles = ["contractor_*"]

[verify]
test_limit = "3s"
"#;

fn verify(policy: &Path, audit: &Path) -> (Option<i32>, serde_json::Value, String) {
    verify_with(policy, audit, &[])
}

fn verify_with(
    policy: &Path,
    audit: &Path,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let out = common::curfew()
        .args(["verify", "--format", "json", "--audit-log"])
        .arg(audit)
        .args(extra)
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

fn result<'d>(doc: &'d serde_json::Value, rule: &str) -> &'d serde_json::Value {
    let target = &doc["targets"][0];
    target["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(target["mechanisms"].as_array().unwrap())
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no result for {rule}: {doc:#}"))
}

fn text_of<'d>(r: &'d serde_json::Value, key: &str) -> &'d str {
    r[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {r:#}"))
}

/// Every result has one of the four statuses, and only a live test can pass.
fn assert_statuses_are_plain(doc: &serde_json::Value) {
    let target = &doc["targets"][0];
    for r in target["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(target["mechanisms"].as_array().unwrap())
    {
        let status = text_of(r, "status");
        assert!(
            ["live_pass", "evaluated", "not_tested", "fail"].contains(&status),
            "{r:#}"
        );
        let line = text_of(r, "status_line");
        let label = match status {
            "live_pass" => "LIVE PASS",
            "evaluated" => "EVALUATED (not a live proof): ",
            "not_tested" => "NOT TESTED: ",
            _ => "FAIL: ",
        };
        assert!(line.starts_with(label), "{r:#}");
        if status == "live_pass" {
            assert_eq!(r["method"], "live", "{r:#}");
        }
    }
}

#[test]
fn verify_passes_with_the_agent_running_and_fails_without_it() {
    let d = dir("verify");
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "CREATE ROLE curfew_agent LOGIN CREATEROLE PASSWORD 'agent-password';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE humans NOLOGIN;
             GRANT humans TO curfew_agent WITH ADMIN OPTION;
             CREATE ROLE kim LOGIN;",
        )
        .unwrap();
    let secret = d.0.join("password");
    std::fs::write(&secret, "agent-password").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n[[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{}/postgres?sslmode=disable\"\npassword_file = \"{}\"\n{RULES}",
            cluster.port(),
            secret.display()
        ),
    )
    .unwrap();

    // No agent: the live tests fail at once, saying why; evaluations still run.
    let (code, doc, stderr) = verify(&policy, &audit);
    assert_eq!(code, Some(3), "{doc:#}\n{stderr}");
    assert_statuses_are_plain(&doc);
    let inactivity = result(&doc, "inactivity");
    assert_eq!(inactivity["status"], "fail");
    assert!(
        text_of(inactivity, "status_line").starts_with("FAIL: No curfew agent enforces the policy"),
        "{inactivity:#}"
    );
    assert_eq!(result(&doc, "long-idle")["status"], "evaluated");
    assert_eq!(result(&doc, "login locks (curfew lock)")["status"], "fail");
    // Six live rules and the login lock.
    assert!(stderr.contains("7 tests failed verification"), "{stderr}");
    let md = common::curfew()
        .args(["verify", "--no-record", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(md.status.code(), Some(3));
    let md = String::from_utf8_lossy(&md.stdout);
    for needle in [
        "| FAIL: No curfew agent enforces the policy on target \"db\"",
        "| EVALUATED (not a live proof): not tested live: the rule names its roles exactly (\"kim\")",
        "| long-idle | idle | checked by evaluation |",
        "## Rule \"long-idle\"",
        "0 LIVE PASS, 1 EVALUATED (not live proofs), 0 NOT TESTED, 7 FAIL",
    ] {
        assert!(md.contains(needle), "{needle} not in\n{md}");
    }

    // With the agent: every rule that can be is tested live; the one that names its role
    // exactly is evaluated, and says it is not a live proof.
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let started = std::time::Instant::now();
    let (code, doc, stderr) = verify(&policy, &audit);
    // A figure for the record, not an assertion: the live tests wait at once, so this is about
    // the longest limit (8s) plus the agent's interval.
    eprintln!(
        "verify with six live rules and a lock test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_statuses_are_plain(&doc);
    for (rule, status) in [
        ("inactivity", "live_pass"),
        ("abandoned-transaction", "live_pass"),
        ("session-lifetime", "live_pass"),
        ("long-idle", "evaluated"),
        ("old-maintenance", "live_pass"),
        ("one-each", "live_pass"),
        ("contractor-idle", "live_pass"),
        // No ledger here (`curfew init` not run) and no lock_logins rule: said, not failed.
        ("login locks (curfew lock)", "not_tested"),
    ] {
        let r = result(&doc, rule);
        assert_eq!(
            r["status"].as_str(),
            Some(status),
            "{rule}: {r:#}\n{stderr}"
        );
    }
    assert!(
        text_of(result(&doc, "login locks (curfew lock)"), "status_line").contains("curfew init"),
        "{doc:#}"
    );
    assert_eq!(code, Some(0), "{doc:#}\n{stderr}");
    // The window edge, ended at the edge by the rule, and the cap, the newest of three ended.
    let edge = result(&doc, "old-maintenance");
    for needle in [
        "after the edge",
        "session_terminated, rule \"old-maintenance\"",
        "test edge of this window rule",
    ] {
        assert!(
            text_of(edge, "evidence").contains(needle),
            "{needle}: {edge:#}"
        );
    }
    let cap = result(&doc, "one-each");
    assert_eq!(
        text_of(cap, "status_line"),
        "LIVE PASS with 3 canary sessions of one role: the newest ended, the 2 older kept"
    );
    for needle in [
        "The 2 older sessions were still there and usable",
        "session_terminated, rule \"one-each\"",
        "session 3 of 3 of its role",
    ] {
        assert!(
            text_of(cap, "evidence").contains(needle),
            "{needle}: {cap:#}"
        );
    }
    let evidence = result(&doc, "inactivity")["evidence"].as_str().unwrap();
    for needle in [
        "member of humans",
        "SET idle_session_timeout = 0",
        "Using it then failed",
        "session_terminated, rule \"inactivity\"",
    ] {
        assert!(evidence.contains(needle), "{needle} not in {evidence}");
    }
    assert!(
        result(&doc, "session-lifetime")["evidence"]
            .as_str()
            .unwrap()
            .contains("pg_sleep"),
    );
    // A 15-minute rule tested in seconds: the canary was held to the test limit, and the rule's
    // own limit was evaluated alongside.
    let contractor = result(&doc, "contractor-idle");
    assert!(
        contractor["evidence"]
            .as_str()
            .unwrap()
            .contains("test_limit (3s) stood in for the rule's 15m"),
        "{contractor:#}"
    );
    assert_eq!(
        text_of(contractor, "status_line"),
        "LIVE PASS at the test limit 3s; the configured 15m was not waited — run with --full --max-wait 15m"
    );
    assert_eq!(
        contractor["probes"][0]["at"], "idle 14m59s",
        "{contractor:#}"
    );
    let left = cluster
        .psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE '%curfew_canary%'")
        .unwrap();
    assert_eq!(left.trim(), "0", "canary roles left behind");

    // The results are in the audit log, next to the agent's own records, and the chain holds.
    let verified: Vec<serde_json::Value> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .flatten()
        .filter(|e| e.event == "control_verified")
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(
        verified
            .iter()
            .map(|e| e["result"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["failed", "passed"]
    );
    assert_eq!(verified[1]["detail"]["rules"].as_array().unwrap().len(), 7);
    // Who ran it: the real uid and the role the target's URL connects as.
    let actor = &verified[1]["detail"]["actor"];
    assert_eq!(actor["uid"], rustix::process::getuid().as_raw(), "{actor}");
    assert_eq!(actor["db_role"], "curfew_agent", "{actor}");
    assert_eq!(verified[1]["detail"]["counts"]["live_pass"], 6);
    // The policy's hash, as the agent's policy_loaded records carry it.
    let loaded: Vec<serde_json::Value> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .flatten()
        .filter(|e| e.event == "policy_loaded")
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert!(!loaded.is_empty());
    assert_eq!(
        verified[1]["detail"]["policy_sha256"],
        loaded[0]["detail"]["sha256"]
    );
    assert_eq!(
        verified[1]["detail"]["policy_sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );

    // Without CREATEROLE no canary can be made: a failure that says what to grant, not a pass
    // by evaluation.
    cluster
        .psql("ALTER ROLE curfew_agent NOCREATEROLE")
        .unwrap();
    let (code, doc, stderr) = verify(&policy, &audit);
    assert_eq!(code, Some(3), "{doc:#}\n{stderr}");
    let r = result(&doc, "abandoned-transaction");
    assert_eq!(
        (r["status"].as_str(), r["method"].as_str()),
        (Some("fail"), Some("live"))
    );
    assert!(
        r["evidence"].as_str().unwrap().contains("needs CREATEROLE"),
        "{r:#}"
    );
    common::signal(&agent, "TERM");
    let _ = agent.wait();
    common::assert_audit_verifies(&audit);
}

/// `examples/curfew.toml`, its targets replaced by the sandbox, its audit log and listener by
/// the test's: the rules themselves unchanged.
fn example_on(port: u16, secret: &Path, audit: &Path) -> String {
    let example =
        std::fs::read_to_string(common::workspace().join("examples/curfew.toml")).unwrap();
    let start = example
        .find("\n[[target]]")
        .expect("the example names a target");
    let end = example
        .find("\n# Never touched")
        .expect("the example has [[exempt]]");
    let target = format!(
        "[[target]]\nname = \"primary\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{port}/postgres?sslmode=disable\"\npassword_file = \"{}\"\n\n",
        secret.display()
    );
    let text = format!("{}{target}{}", &example[..start], &example[end..]);
    let replaced = text.replace("listen = \"127.0.0.1:9187\"", "").replace(
        "audit_log = \"/var/lib/curfew/audit.jsonl\"",
        &format!("audit_log = \"{}\"", audit.display()),
    );
    assert!(
        !replaced.contains("9187") && replaced.contains(&audit.display().to_string()),
        "the example's [agent] section changed: adjust this test"
    );
    replaced
}

#[test]
fn verify_on_the_example_policy_tests_a_window_edge_a_session_cap_and_a_login_lock_live() {
    let d = dir("verify-example");
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "CREATE ROLE curfew_agent LOGIN CREATEROLE PASSWORD 'agent-password';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE humans NOLOGIN;
             GRANT humans TO curfew_agent WITH ADMIN OPTION;
             ALTER ROLE postgres PASSWORD 'admin-password';",
        )
        .unwrap();
    let secret = d.0.join("password");
    let admin_secret = d.0.join("admin-password");
    for (file, text) in [
        (&secret, "agent-password"),
        (&admin_secret, "admin-password"),
    ] {
        std::fs::write(file, text).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let audit = d.0.join("audit.jsonl");
    let policy = d.0.join("curfew.toml");
    let text = example_on(cluster.port(), &secret, &audit);
    std::fs::write(&policy, &text).unwrap();
    // The ledger, as the README says: `curfew init` by an administrator.
    let init = common::curfew()
        .args(["init", "--admin-user", "postgres", "--admin-password-file"])
        .arg(&admin_secret)
        .arg("-c")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", common::text(&init.stderr));
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));

    // Whether New York's working hours let an analyst's canary in now (they decide two rules).
    let parsed = curfew_policy::parse_policy("t.toml", &text, jiff::tz::db())
        .unwrap()
        .policy;
    let hours = parsed
        .rules
        .iter()
        .find(|r| r.name == "working-hours")
        .unwrap();
    let now = jiff::Timestamp::now();
    let state = hours.condition.schedule().unwrap().state_at(now);
    let near_boundary = state
        .until
        .is_some_and(|u| u.duration_since(now) < jiff::SignedDuration::from_mins(2));

    let started = std::time::Instant::now();
    let (code, doc, stderr) = verify_with(&policy, &audit, &["--max-wait", "1m"]);
    eprintln!(
        "verify on the example policy took {:.1}s (New York working hours {})",
        started.elapsed().as_secs_f64(),
        if state.inside { "open" } else { "closed" }
    );
    assert_eq!(code, Some(0), "{doc:#}\n{stderr}");
    assert_statuses_are_plain(&doc);
    // Live: a window edge, and the login lock (the ledger the lock_logins rule relies on).
    let edge = result(&doc, "year-end-maintenance");
    assert_eq!(edge["status"], "live_pass", "{edge:#}\n{stderr}");
    assert!(
        text_of(edge, "status_line").starts_with("LIVE PASS at a window edge set 6s ahead"),
        "{edge:#}"
    );
    assert!(
        text_of(edge, "evidence").contains("session_terminated, rule \"year-end-maintenance\""),
        "{edge:#}"
    );
    // A session cap no window decides: live at any hour.
    let reporting = result(&doc, "reporting-sessions");
    assert_eq!(reporting["status"], "live_pass", "{reporting:#}\n{stderr}");
    assert!(
        text_of(reporting, "evidence").contains("session_terminated, rule \"reporting-sessions\""),
        "{reporting:#}"
    );
    let lock = result(&doc, "login locks (curfew lock)");
    assert_eq!(lock["status"], "live_pass", "{lock:#}\n{stderr}");
    for needle in [
        "Locked it as `curfew lock` does",
        "login disabled, and its open session",
        "A new login as it was refused",
        "restored the login",
        "A new login then worked",
        "working-hours",
    ] {
        assert!(
            text_of(lock, "evidence").contains(needle),
            "{needle}: {lock:#}"
        );
    }
    // The analysts' window and session cap: live while New York's working hours let an
    // analyst's canary in; otherwise evaluated, saying why (never a pass).
    let window = result(&doc, "working-hours");
    let cap = result(&doc, "one-session-each");
    if near_boundary {
        eprintln!("working hours change within two minutes: either outcome is right");
    } else if state.inside {
        assert_eq!(window["status"], "live_pass", "{window:#}");
        assert_eq!(cap["status"], "live_pass", "{cap:#}");
        assert!(
            text_of(cap, "evidence").contains("session_terminated, rule \"one-session-each\""),
            "{cap:#}"
        );
    } else {
        assert_eq!(window["status"], "evaluated", "{window:#}");
        assert!(
            text_of(window, "status_line").contains("window is closed now"),
            "{window:#}"
        );
        assert_eq!(cap["status"], "evaluated", "{cap:#}");
        assert!(
            text_of(cap, "status_line").contains("\"working-hours\""),
            "{cap:#}"
        );
    }
    // Long limits are evaluated, exact names too, and report-only and gateway rules are not
    // tested: each says why.
    for (rule, status, why) in [
        ("inactivity", "evaluated", "longer than --max-wait"),
        (
            "abandoned-transaction",
            "evaluated",
            "longer than --max-wait",
        ),
        ("session-lifetime", "evaluated", "longer than --max-wait"),
        (
            "app-stuck-transaction",
            "evaluated",
            "names its roles exactly (\"appuser\")",
        ),
        ("backup-lifetime-staged", "not_tested", "report-only"),
    ] {
        let r = result(&doc, rule);
        assert_eq!(r["status"], status, "{rule}: {r:#}");
        assert!(text_of(r, "status_line").contains(why), "{rule}: {r:#}");
    }
    let probing = result(&doc, "privilege-probing");
    assert_ne!(probing["status"], "live_pass", "{probing:#}");
    // The document says the same, in rows an assessor reads.
    let md = common::curfew()
        .args(["verify", "--no-record", "--max-wait", "1m", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let md = common::text(&md.stdout);
    eprintln!("{md}");
    for needle in [
        "| LIVE PASS at a window edge set 6s ahead for a canary (the rule's own windows are evaluated, not waited) | year-end-maintenance | deny | live test |",
        "| LIVE PASS: a canary role locked through the ledger could not log in, and could again once unlocked | login locks (curfew lock) | login_lock | live test |",
        "| EVALUATED (not a live proof): not tested live: the rule names its roles exactly (\"appuser\")",
        "| NOT TESTED: a report-only rule ends no session",
        "EVALUATED: the engine's verdicts at the rule's boundaries agree with the policy — not a live proof.",
        " NOT TESTED, 0 FAIL.**",
    ] {
        assert!(md.contains(needle), "{needle} not in\n{md}");
    }
    // Nothing left behind: no canary role, no lock in force.
    let left = cluster
        .psql(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE '%curfew_canary%')
                  + (SELECT count(*) FROM curfew.lock WHERE released_at IS NULL)",
        )
        .unwrap();
    assert_eq!(left.trim(), "0", "canary roles or locks left behind");
    common::signal(&agent, "TERM");
    let _ = agent.wait();
    common::assert_audit_verifies(&audit);
}
