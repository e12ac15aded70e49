//! `curfew verify` against a real server: with no agent it fails at once and says why; with
//! the agent running, canary sessions (logging in with their own SCRAM passwords) are ended
//! by the rules under test, the audit log has each record, the other rules are checked by
//! evaluation, and no canary role is left behind.

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
lifetime = "4s"
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
max_sessions = 3
roles = ["analyst_*"]

[[rule]]
name = "contractor-idle"
idle = "15m"
roles = ["contractor_*"]

[verify]
test_limit = "3s"
"#;

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

fn result<'d>(doc: &'d serde_json::Value, rule: &str) -> &'d serde_json::Value {
    doc["targets"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no result for {rule}: {doc:#}"))
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
    let inactivity = result(&doc, "inactivity");
    assert_eq!(inactivity["status"], "fail");
    assert!(
        inactivity["evidence"]
            .as_str()
            .unwrap()
            .contains("No curfew agent enforces the policy"),
        "{inactivity:#}"
    );
    assert_eq!(result(&doc, "long-idle")["status"], "pass");
    assert!(stderr.contains("4 rules failed verification"), "{stderr}");
    let md = common::curfew()
        .args(["verify", "--no-record", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(md.status.code(), Some(3));
    let md = String::from_utf8_lossy(&md.stdout);
    for needle in [
        "| FAIL | inactivity | idle | live test | No curfew agent enforces",
        "| PASS | long-idle | idle | checked by evaluation | Not tested live: the rule names its roles exactly (\"kim\")",
        "## Rule \"old-maintenance\"",
    ] {
        assert!(md.contains(needle), "{needle} not in\n{md}");
    }

    // With the agent: every rule passes, live or by evaluation.
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let started = std::time::Instant::now();
    let (code, doc, stderr) = verify(&policy, &audit);
    // A figure for the record, not an assertion: the live tests wait at once, so this is about
    // the longest limit (4s) plus the agent's interval.
    eprintln!(
        "verify with four live rules took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for (rule, method) in [
        ("inactivity", "live"),
        ("abandoned-transaction", "live"),
        ("session-lifetime", "live"),
        ("long-idle", "evaluation"),
        ("old-maintenance", "evaluation"),
        ("one-each", "evaluation"),
        ("contractor-idle", "live"),
    ] {
        let r = result(&doc, rule);
        assert_eq!(
            (r["status"].as_str(), r["method"].as_str()),
            (Some("pass"), Some(method)),
            "{rule}: {r:#}\n{stderr}"
        );
    }
    assert_eq!(code, Some(0), "{doc:#}\n{stderr}");
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
