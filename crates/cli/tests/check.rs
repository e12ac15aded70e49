//! `curfew check` against real servers: a default sandbox shows the expected findings (and the
//! termination requirement passes once an agent leads); a sandbox configured as the security
//! guide says, with the agent running, shows none.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{agent, cluster, curfew, dir, lines_of, wait_for};
use curfew_sandbox::{Auth, Cluster, Options, TestPki};

const RULES: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n";

/// `curfew check --format json`: the exit code and the document.
fn check(policy: &Path) -> (Option<i32>, serde_json::Value) {
    let out = curfew()
        .args(["check", "--format", "json", "-c"])
        .arg(policy)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

/// The IDs of the findings with this status, in order.
fn with_status(doc: &serde_json::Value, status: &str) -> Vec<String> {
    doc["targets"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == status)
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_default_sandbox_shows_the_expected_findings() {
    let cluster = cluster();
    let d = dir("check-default");
    let policy = d.0.join("curfew.toml");
    std::fs::write(&policy, common::policy_text(&cluster, RULES)).unwrap();

    // Without the grants, what curfew's role cannot read is unknown, not passed.
    let (code, doc) = check(&policy);
    assert_eq!(code, Some(3), "{doc:#}");
    assert_eq!(
        with_status(&doc, "unknown"),
        ["PG-TLS-VERSION", "PG-HBA-METHOD", "PG-HBA-TLS"]
    );

    cluster
        .psql(
            "GRANT pg_read_all_settings TO curfew_agent;
             GRANT SELECT ON pg_hba_file_rules TO curfew_agent;
             GRANT EXECUTE ON FUNCTION pg_hba_file_rules() TO curfew_agent;",
        )
        .unwrap();
    let (code, doc) = check(&policy);
    assert_eq!(code, Some(3));
    assert_eq!(
        with_status(&doc, "unknown"),
        Vec::<String>::new(),
        "{doc:#}"
    );
    assert_eq!(
        with_status(&doc, "fail"),
        [
            "V-261910",
            "PG-SSL",
            "PG-LOG-CONNECTIONS",
            "PG-LOG-DISCONNECTIONS",
            "PG-IDLE-IN-TRANSACTION",
            "PG-STATEMENT-TIMEOUT",
            "PG-DEAD-CONNECTIONS",
            "PG-HBA-METHOD",
        ],
        "{doc:#}"
    );
    assert_eq!(doc["passed"], false);
    let findings = doc["targets"][0]["findings"].as_array().unwrap();
    let hba = findings
        .iter()
        .find(|f| f["id"] == "PG-HBA-METHOD")
        .unwrap();
    assert!(
        hba["observed"]
            .as_str()
            .unwrap()
            .contains("local all all trust"),
        "{hba:#}"
    );
    for f in findings {
        for key in ["id", "requirement", "observed", "expected", "fix"] {
            assert!(f[key].is_string(), "{key} missing in {f:#}");
        }
        // Every failed finding says why it fails.
        assert_eq!(f["status"] == "fail", f["why"].is_string(), "{f:#}");
    }
    // The same host: the clocks agree, and the evidence says whose clock is whose.
    let clock = findings.iter().find(|f| f["id"] == "CURFEW-CLOCK").unwrap();
    assert_eq!(clock["status"], "pass", "{clock:#}");
    assert!(
        clock["observed"]
            .as_str()
            .unwrap()
            .contains("Session ages come from the server's clock"),
        "{clock:#}"
    );

    // An agent in a dry run ends nothing: it does not lead, and the requirement is not met.
    let audit = d.0.join("audit.jsonl");
    let mut dry = common::agent_command(&policy, &audit)
        .arg("--dry-run")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let dry_lines = lines_of(&mut dry);
    wait_for(&dry_lines, "connected (", Duration::from_secs(20));
    let (_, doc) = check(&policy);
    let v = &doc["targets"][0]["findings"][0];
    assert_eq!(
        (v["id"].as_str(), v["status"].as_str()),
        (Some("V-261910"), Some("fail"))
    );
    assert!(
        v["observed"]
            .as_str()
            .unwrap()
            .contains("no curfew agent leads"),
        "{v:#}"
    );
    common::signal(&dry, "TERM");
    dry.wait().unwrap();

    // Regression (issue 13, item 1): any role can take curfew's advisory lock and name its
    // application as the leader does; check took it for the agent.
    cluster.psql("CREATE ROLE mallory LOGIN").unwrap();
    let mut squatter = common::hold_leader_lock(
        &cluster,
        "mallory",
        "curfew agent: enforcing policy sha256:000000000000",
    );
    let (_, doc) = check(&policy);
    let v = &doc["targets"][0]["findings"][0];
    assert_eq!(v["status"], "fail", "{v:#}");
    assert!(
        v["observed"]
            .as_str()
            .unwrap()
            .contains("not a curfew agent"),
        "{v:#}"
    );
    let _ = squatter.kill();
    let _ = squatter.wait();

    // An agent that enforces this policy meets it.
    let mut running = agent(&policy, &audit);
    let lines = lines_of(&mut running);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let (code, doc) = check(&policy);
    assert_eq!(code, Some(3));
    assert!(
        !with_status(&doc, "fail").contains(&"V-261910".to_owned()),
        "{doc:#}"
    );
    let out = curfew()
        .args(["check", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| pass | V-261910 |"), "{md}");
    assert!(
        md.contains("| FAIL | PG-SSL |") && md.contains("## To fix"),
        "{md}"
    );
    assert!(
        md.contains("a curfew agent enforces this policy on this server"),
        "{md}"
    );
    common::signal(&running, "TERM");
    running.wait().unwrap();
}

/// A cluster configured as the security guide says: TLS with SCRAM only, connections logged,
/// timeouts set, dead connections detected, the local superuser by peer authentication.
fn hardened(d: &Path) -> (Cluster, String) {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let settings = [
        ("log_connections", "on"),
        ("log_disconnections", "on"),
        ("idle_in_transaction_session_timeout", "10min"),
        ("statement_timeout", "5min"),
        ("authentication_timeout", "30s"),
        ("tcp_keepalives_idle", "300"),
        ("client_connection_check_interval", "10s"),
        ("ssl_min_protocol_version", "TLSv1.2"),
    ];
    let cluster = Cluster::start(Options {
        auth: Auth::Scram,
        tls: Some(pki.server.clone()),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // The sandbox trusts its Unix socket; replace that with peer authentication (any local OS
    // user may be the superuser here, through an ident map: this is a test machine).
    std::fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        "local     all all                peer map=sandbox\n\
         hostssl   all all 127.0.0.1/32   scram-sha-256\n\
         hostssl   all all ::1/128        scram-sha-256\n\
         hostnossl all all 0.0.0.0/0      reject\n\
         hostnossl all all ::/0           reject\n",
    )
    .unwrap();
    std::fs::write(
        cluster.data_dir().join("pg_ident.conf"),
        "sandbox /^(.*)$ postgres\n",
    )
    .unwrap();
    cluster
        .psql(
            "SELECT pg_reload_conf();
             CREATE ROLE curfew_agent LOGIN PASSWORD 'agent-password';
             GRANT pg_read_all_stats, pg_signal_backend, pg_read_all_settings TO curfew_agent;
             GRANT SELECT ON pg_hba_file_rules TO curfew_agent;
             GRANT EXECUTE ON FUNCTION pg_hba_file_rules() TO curfew_agent;",
        )
        .unwrap();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let secret = d.join("password");
    std::fs::write(&secret, "agent-password").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = format!(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}\"\npassword_file = \"{}\"\n",
        cluster.port(),
        ca.display(),
        secret.display()
    );
    (cluster, target)
}

#[test]
fn a_sandbox_configured_per_the_security_guide_with_the_agent_running_shows_no_finding() {
    let d = dir("check-hardened");
    let (cluster, target) = hardened(&d.0);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\naudit_log = \"{}\"\n\n{target}\n{RULES}",
            audit.display()
        ),
    )
    .unwrap();
    let mut running = agent(&policy, &audit);
    let lines = lines_of(&mut running);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let (code, doc) = check(&policy);
    assert_eq!(with_status(&doc, "fail"), Vec::<String>::new(), "{doc:#}");
    // Recorded in the audit log the agent writes too, as one chain.
    let checked: Vec<curfew_audit::Entry> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "configuration_checked")
        .collect();
    assert_eq!(checked.len(), 1);
    assert_eq!(checked[0].result.as_deref(), Some("passed"));
    // Who ran it: the real uid and the role the target's URL connects as.
    let actor = &checked[0].detail.as_ref().unwrap()["actor"];
    assert_eq!(actor["uid"], rustix::process::getuid().as_raw(), "{actor}");
    assert_eq!(actor["db_role"], "curfew_agent", "{actor}");
    assert_eq!(
        with_status(&doc, "unknown"),
        Vec::<String>::new(),
        "{doc:#}"
    );
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["passed"], true);
    common::signal(&running, "TERM");
    running.wait().unwrap();
    common::assert_audit_verifies(&audit);
    drop(cluster);
}

#[test]
fn an_unreachable_target_is_a_failed_finding_and_the_others_are_still_checked() {
    let cluster = cluster();
    let d = dir("check-unreachable");
    let policy = d.0.join("curfew.toml");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    std::fs::write(
        &policy,
        format!(
            "[[target]]\nname = \"gone\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{port}/postgres?sslmode=disable&connect_timeout=2\"\n\n{}",
            common::policy_text(&cluster, RULES)
        ),
    )
    .unwrap();
    let (code, doc) = check(&policy);
    assert_eq!(code, Some(3));
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{doc:#}");
    assert_eq!(targets[0]["target"], "gone");
    assert_eq!(targets[0]["findings"][0]["id"], "CURFEW-CONNECT");
    assert_eq!(targets[0]["findings"][0]["status"], "fail");
    assert_eq!(targets[1]["target"], "db");
    assert!(targets[1]["findings"].as_array().unwrap().len() > 10);
}
