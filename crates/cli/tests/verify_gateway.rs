//! `curfew verify --through gateway` (issue 17) against a real server and a real `curfew
//! gateway`: canaries log in through the gateway with SCRAM passwords, and an idle rule (57P05),
//! an idle-in-transaction rule (25P03) and a violations rule (a WARNING after count − 1 errors,
//! the session still usable, then 57P01) pass live with the gateway's FATAL texts in the
//! evidence. With the gateway stopped the same rules fail, and no canary role is left behind.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::gateway_cluster::{PASSWORD, gateway_cluster, url};
use common::{Dir, KillOnDrop, agent, curfew, dir, lines_of, wait_for};
use curfew_sandbox::Cluster;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The cluster with what `curfew init` installs for the agent and the gateway.
async fn cluster(d: &Dir) -> Cluster {
    gateway_cluster(d, "CREATEROLE", "").await
}

/// Four rules for the canaries (`vq_*`), held to a 3-second test limit.
fn policy(cluster: &Cluster, d: &Dir, gateway_port: u16) -> String {
    let password = d.password_file(PASSWORD).display().to_string();
    format!(
        "[agent]\ninterval = \"1s\"\n\n\
         [[target]]\nname = \"db\"\nurl = \"{}\"\npassword_file = \"{password}\"\n\n\
         [[rule]]\nname = \"inactivity\"\nidle = \"10m\"\nroles = [\"vq_*\"]\n\n\
         [[rule]]\nname = \"open-transaction\"\nidle_in_transaction = \"10m\"\nroles = [\"vq_*\"]\n\n\
         [[rule]]\nname = \"misbehaviour\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\" }}\nroles = [\"vq_*\"]\n\n\
         [[rule]]\nname = \"connected\"\nlifetime = \"10m\"\nroles = [\"vq_*\"]\n\n\
         [verify]\ntest_limit = \"3s\"\n\n\
         [gateway]\nlisten = \"127.0.0.1:{gateway_port}\"\ntarget = \"db\"\n\
         auth_url = \"{}\"\nauth_password_file = \"{password}\"\n",
        url(cluster, "curfew_agent"),
        url(cluster, "curfew_gateway"),
    )
}

/// `curfew gateway -c POLICY --audit-log AUDIT`, listening.
fn gateway(policy: &Path, audit: &Path) -> KillOnDrop {
    let mut child = KillOnDrop(
        curfew()
            .args(["gateway", "-c"])
            .arg(policy)
            .arg("--audit-log")
            .arg(audit)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut child.0);
    wait_for(&lines, "curfew gateway listening", Duration::from_secs(30));
    std::thread::spawn(move || while lines.recv().is_ok() {});
    child
}

/// `curfew verify --through gateway --format json`: whether it passed, and its document.
fn verify(policy: &Path) -> (bool, serde_json::Value) {
    verify_with(policy, &["--through", "gateway", "--no-record"])
}

/// `curfew verify --format json ARGS -c POLICY`: whether it passed, and its document.
fn verify_with(policy: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let out = curfew()
        .args(["verify", "--format", "json"])
        .args(args)
        .arg("-c")
        .arg(policy)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), doc)
}

/// The gateway's result for `rule`: its status and evidence.
fn gateway_result(doc: &serde_json::Value, rule: &str) -> (String, String) {
    let results = doc["targets"][0]["gateway"]["results"].as_array().unwrap();
    let r = results
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no result for {rule}: {doc:#}"));
    (
        r["status"].as_str().unwrap().to_owned(),
        r["evidence"].as_str().unwrap().to_owned(),
    )
}

fn canaries_left(cluster: &Cluster) -> String {
    cluster
        .psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'vq\\_%'")
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_pass_through_the_gateway_with_its_fatal_texts_and_fail_without_it() {
    let d = dir("verify-gateway");
    let cluster = cluster(&d).await;
    let port = free_port();
    let policy_file = d.write("curfew.toml", &policy(&cluster, &d, port), 0o600);
    let audit = d.join("gateway.jsonl");

    let running = gateway(&policy_file, &audit);
    let started = Instant::now();
    let (passed, doc) = verify(&policy_file);
    let took = started.elapsed();
    assert!(passed, "{doc:#}");
    let target = &doc["targets"][0];
    assert_eq!(target["enforcement_point"], "agent");
    // --through gateway: the agent's tests did not run.
    assert_eq!(target["results"].as_array().unwrap().len(), 0, "{doc:#}");
    assert_eq!(target["gateway"]["enforcement_point"], "gateway");
    assert_eq!(target["gateway"]["address"], format!("127.0.0.1:{port}"));

    let (status, evidence) = gateway_result(&doc, "inactivity");
    assert_eq!(status, "live_pass", "{evidence}");
    assert!(
        evidence.contains("received FATAL 57P05 \"terminating connection: idle for")
            && evidence.contains("(rule inactivity)\"")
            && evidence.contains("HINT: "),
        "{evidence}"
    );
    let (status, evidence) = gateway_result(&doc, "open-transaction");
    assert_eq!(status, "live_pass", "{evidence}");
    assert!(
        evidence.contains("received FATAL 25P03 ")
            && evidence.contains("(rule open-transaction)\""),
        "{evidence}"
    );
    let (status, evidence) = gateway_result(&doc, "misbehaviour");
    assert_eq!(status, "live_pass", "{evidence}");
    assert!(
        evidence.contains("received WARNING 01000 \"one more error with SQLSTATE 42501")
            && evidence.contains("`SELECT 1` still worked")
            && evidence.contains(
                "received FATAL 57P01 \"terminating connection: 3 errors 42501 by this session within 10m; limit 3 (rule misbehaviour)\""
            ),
        "{evidence}"
    );
    assert!(!evidence.contains("pw-"), "no password in evidence");
    // A locked role's login through the gateway is refused with the lock's FATAL 28000.
    let (status, evidence) = gateway_result(&doc, "login locks (curfew lock) through the gateway");
    assert_eq!(status, "live_pass", "{evidence}");
    assert!(
        evidence.contains("the client received FATAL 28000 \"logins for role")
            && evidence.contains("are closed by an incident lock")
            && evidence.contains("The lock was released."),
        "{evidence}"
    );
    let (status, evidence) = gateway_result(&doc, "connected");
    assert_eq!(status, "live_pass", "{evidence}");
    assert!(
        evidence.contains("received FATAL 57P01 ") && evidence.contains("(rule connected)\""),
        "{evidence}"
    );
    assert!(
        evidence.contains("The gateway serves every role but superusers"),
        "{evidence}"
    );
    assert_eq!(canaries_left(&cluster), "0");
    assert!(took < Duration::from_secs(90), "took {took:?}");

    // The Markdown document has the gateway's section, its FATAL quoted.
    let out = curfew()
        .args(["verify", "--through", "gateway", "--no-record", "-c"])
        .arg(&policy_file)
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{md}");
    assert!(
        md.contains(&format!(
            "## Enforced by the curfew gateway (canaries through 127.0.0.1:{port}, plaintext TCP"
        )) && md.contains("**5 LIVE PASS, 0 EVALUATED (not live proofs), 0 NOT TESTED, 0 FAIL.**")
            && md.contains("received FATAL 25P03"),
        "{md}"
    );
    assert_eq!(canaries_left(&cluster), "0");

    // The gateway stopped: nothing can pass through it, and the evidence says why.
    drop(running);
    let (passed, doc) = verify(&policy_file);
    assert!(!passed, "{doc:#}");
    for rule in [
        "inactivity",
        "open-transaction",
        "misbehaviour",
        "connected",
    ] {
        let (status, evidence) = gateway_result(&doc, rule);
        assert_eq!(status, "fail", "{rule}: {evidence}");
        assert!(
            evidence.contains(&format!(
                "could not log in through the gateway at 127.0.0.1:{port}"
            )),
            "{evidence}"
        );
    }
    assert_eq!(canaries_left(&cluster), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_both_the_agent_and_the_gateway_are_tested_each_named() {
    let d = dir("verify-both");
    let cluster = cluster(&d).await;
    let port = free_port();
    let policy_file = d.write("curfew.toml", &policy(&cluster, &d, port), 0o600);
    let agent_audit = d.join("agent.jsonl");
    let mut agent = agent(&policy_file, &agent_audit);
    let lines = lines_of(&mut agent.0);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    std::thread::spawn(move || while lines.recv().is_ok() {});
    let _gateway = gateway(&policy_file, &d.join("gateway.jsonl"));

    let audit = agent_audit.display().to_string();
    let (passed, doc) = verify_with(&policy_file, &["--audit-log", &audit]);
    assert!(passed, "{doc:#}");
    let target = &doc["targets"][0];
    assert_eq!(target["enforcement_point"], "agent");
    let direct: Vec<(&str, &str)> = target["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    // The agent ends the idle canaries of direct connections; violations only the gateway sees.
    assert_eq!(
        direct,
        [
            ("inactivity", "live_pass"),
            ("open-transaction", "live_pass"),
            ("misbehaviour", "not_tested"),
            ("connected", "live_pass"),
        ]
    );
    for rule in [
        "inactivity",
        "open-transaction",
        "misbehaviour",
        "connected",
    ] {
        let (status, evidence) = gateway_result(&doc, rule);
        assert_eq!(status, "live_pass", "{rule}: {evidence}");
    }
    // The record names both enforcement points.
    let records = std::fs::read_to_string(&agent_audit).unwrap();
    let verified = records
        .lines()
        .find(|l| l.contains("\"control_verified\""))
        .unwrap();
    assert!(
        verified.contains("\"enforcement_point\":\"agent\"")
            && verified.contains("\"enforcement_point\":\"gateway\""),
        "{verified}"
    );
    assert_eq!(canaries_left(&cluster), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_not_enforcing_the_tested_limit_fails_the_idle_tests() {
    let d = dir("verify-gateway-lax");
    let cluster = cluster(&d).await;
    let port = free_port();
    let text = policy(&cluster, &d, port);
    let policy_file = d.write("curfew.toml", &text, 0o600);
    // The gateway runs without `[verify] test_limit`: it holds the canaries to the rules' 10m,
    // so nothing it does ends them within verify's wait.
    let lax = d.write(
        "gateway.toml",
        &text.replace("[verify]\ntest_limit = \"3s\"\n", ""),
        0o600,
    );
    let _gateway = gateway(&lax, &d.join("gateway.jsonl"));

    let (passed, doc) = verify(&policy_file);
    assert!(!passed, "{doc:#}");
    for rule in ["inactivity", "open-transaction", "connected"] {
        let (status, evidence) = gateway_result(&doc, rule);
        assert_eq!(status, "fail", "{rule}: {evidence}");
        assert!(
            evidence.contains("was not ended within")
                && evidence.contains("the gateway did not end it"),
            "{evidence}"
        );
    }
    // The violations rule does not depend on the test limit.
    assert_eq!(gateway_result(&doc, "misbehaviour").0, "live_pass");
    assert_eq!(canaries_left(&cluster), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_role_rule_passes_on_the_count_across_gateways_and_fails_on_the_gateways_own() {
    let d = dir("verify-gateway-per-role");
    let cluster = cluster(&d).await;
    let port = free_port();
    let text = policy(&cluster, &d, port).replace(
        "count = 3, within = \"10m\" }",
        "count = 3, within = \"10m\", per = \"role\" }",
    );
    let policy_file = d.write("curfew.toml", &text, 0o600);
    let _gateway = gateway(&policy_file, &d.join("gateway.jsonl"));

    let (passed, doc) = verify(&policy_file);
    assert!(passed, "{doc:#}");
    let (status, evidence) = gateway_result(&doc, "misbehaviour");
    assert_eq!(status, "live_pass", "{evidence}");
    assert!(
        evidence.contains("on every gateway count)")
            && evidence.contains("curfew.count_gateway_violation answered"),
        "{evidence}"
    );

    // Without the shared count the gateway's own decides: the rule still ends sessions, but
    // not across gateways, and verify says so.
    cluster
        .psql("REVOKE EXECUTE ON FUNCTION curfew.count_gateway_violation(text, text, text, int4, text) FROM curfew_gateway")
        .unwrap();
    let (passed, doc) = verify(&policy_file);
    assert!(!passed, "{doc:#}");
    let (status, evidence) = gateway_result(&doc, "misbehaviour");
    assert_eq!(status, "fail", "{evidence}");
    assert!(
        evidence.starts_with(
            "Through the curfew gateway: The WARNING came from the gateway's own count"
        ),
        "{evidence}"
    );
    assert_eq!(canaries_left(&cluster), "0");
}

#[test]
fn through_gateway_without_a_gateway_is_a_usage_error() {
    let d = dir("verify-no-gateway");
    let policy = d.write(
        "curfew.toml",
        "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@127.0.0.1:1/postgres?sslmode=disable\"\n\n\
         [[rule]]\nname = \"inactivity\"\nidle = \"5m\"\n",
        0o600,
    );
    let out = curfew()
        .args(["verify", "--through", "gateway", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--through gateway: the policy has no [gateway]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
