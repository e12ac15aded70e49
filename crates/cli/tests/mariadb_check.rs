//! `curfew check` on a MariaDB target, through the binary against a throwaway MariaDB server
//! (issue 18): the STIG-mapped findings with stable ids, accounts without passwords named
//! when curfew may read them (UNKNOWN when not), a native timeout that preempts curfew, the
//! exact REVOKE for a privilege beyond the need and the exact GRANT for one missing; `plan`
//! on the same target, and `verify` running on it (failing with no agent).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{curfew, dir, text};
use curfew_sandbox::{MariaDbOptions, MariaDbServer};

/// `curfew check --format json` on `policy`: exit code and the findings by id.
fn check(policy: &Path) -> (i32, serde_json::Value, String) {
    let out = curfew()
        .args(["check", "--format", "json", "--no-record", "-c"])
        .arg(policy)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", text(&out.stderr)));
    (out.status.code().unwrap(), doc, text(&out.stderr))
}

fn finding<'d>(doc: &'d serde_json::Value, id: &str) -> &'d serde_json::Value {
    doc["targets"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {doc:#}"))
}

fn write_policy(d: &Path, server: &MariaDbServer, user: &str) -> std::path::PathBuf {
    let password_file = d.join(format!("{user}.password"));
    std::fs::write(&password_file, "agent-secret\n").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let policy = d.join(format!("{user}.toml"));
    std::fs::write(
        &policy,
        format!(
            "[[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"15m\"\n",
            server.url(user, ""),
            password_file.display(),
        ),
    )
    .unwrap();
    policy
}

#[test]
fn check_judges_a_mariadb_target_with_stig_mapped_findings() {
    let d = dir("mariadb-check");
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql(
            "CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'curfew_agent'@'127.0.0.1';
             CREATE USER 'greedy'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS, CONNECTION ADMIN, SUPER ON *.* TO 'greedy'@'127.0.0.1';
             CREATE USER 'short'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS ON *.* TO 'short'@'127.0.0.1';
             CREATE USER 'kim'@'%';
             SET GLOBAL wait_timeout = 600;",
        )
        .unwrap();
    let policy = write_policy(&d.0, &server, "curfew_agent");

    let (code, doc, stderr) = check(&policy);
    assert_eq!(code, 3, "failed findings exit 3: {doc:#} {stderr}");
    assert!(!stderr.contains("postgresql://"), "{stderr}");
    assert!(!format!("{doc}{stderr}").contains("agent-secret"));
    assert!(
        doc["targets"][0]["server"]
            .as_str()
            .unwrap()
            .starts_with("MariaDB 1"),
        "{doc:#}"
    );
    let timeout = finding(&doc, "CURFEW-MARIADB-TIMEOUT");
    assert_eq!(timeout["status"], "fail");
    assert!(
        timeout["requirement"]
            .as_str()
            .unwrap()
            .contains("V-253717 (MADB-10-006200)")
    );
    assert!(
        timeout["why"]
            .as_str()
            .unwrap()
            .contains("wait_timeout = 10m00s ends sessions before curfew's rule \"idle\""),
        "{timeout:#}"
    );
    // interactive_timeout keeps its default (8h): above the limit, a backstop only.
    assert!(
        !timeout["why"]
            .as_str()
            .unwrap()
            .contains("interactive_timeout")
    );
    assert_eq!(finding(&doc, "CURFEW-MARIADB-TLS")["status"], "fail");
    assert_eq!(finding(&doc, "CURFEW-MARIADB-LOGGING")["status"], "fail");
    assert_eq!(finding(&doc, "CURFEW-MARIADB-PRIVILEGES")["status"], "pass");
    // The sandbox shows addresses (skip_name_resolve ON), read from the server itself.
    let names = finding(&doc, "CURFEW-MARIADB-NAMES");
    assert_eq!(names["status"], "pass", "{names:#}");
    assert!(
        names["observed"]
            .as_str()
            .unwrap()
            .contains("skip_name_resolve = ON"),
        "{names:#}"
    );
    // Same host, same clock.
    assert_eq!(finding(&doc, "CURFEW-CLOCK")["status"], "pass");
    // curfew's account may not read the accounts: neither passed nor failed.
    let nopassword = finding(&doc, "CURFEW-MARIADB-NOPASSWORD");
    assert_eq!(nopassword["status"], "unknown", "{nopassword:#}");

    // Allowed to read them, it names the account without a password (and only accounts).
    server
        .admin_sql(
            "GRANT SELECT ON mysql.global_priv TO 'curfew_agent'@'127.0.0.1';
             SET GLOBAL wait_timeout = 28800;",
        )
        .unwrap();
    let (_, doc, _) = check(&policy);
    let nopassword = finding(&doc, "CURFEW-MARIADB-NOPASSWORD");
    assert_eq!(nopassword["status"], "fail", "{nopassword:#}");
    let observed = nopassword["observed"].as_str().unwrap();
    assert!(observed.contains("`kim`@`%`"), "{observed}");
    assert!(
        !observed.contains("curfew_agent") && !observed.contains("mariadb.sys"),
        "{observed}"
    );
    assert_eq!(finding(&doc, "CURFEW-MARIADB-TIMEOUT")["status"], "pass");

    // More than it needs: the exact REVOKE.
    let (_, doc, _) = check(&write_policy(&d.0, &server, "greedy"));
    let privileges = finding(&doc, "CURFEW-MARIADB-PRIVILEGES");
    assert_eq!(privileges["status"], "fail");
    assert!(
        privileges["fix"]
            .as_str()
            .unwrap()
            .starts_with("REVOKE SUPER ON *.* FROM `greedy`@`127.0.0.1`;"),
        "{privileges:#}"
    );

    // Less than it needs: the exact GRANT, and the rest named as not checked.
    let (code, doc, _) = check(&write_policy(&d.0, &server, "short"));
    assert_eq!(code, 3);
    let privileges = finding(&doc, "CURFEW-MARIADB-PRIVILEGES");
    assert_eq!(privileges["status"], "fail");
    assert_eq!(
        privileges["fix"],
        "GRANT CONNECTION ADMIN ON *.* TO `short`@`127.0.0.1`;"
    );
    assert_eq!(finding(&doc, "CURFEW-MARIADB-TLS")["status"], "unknown");
    assert_eq!(finding(&doc, "CURFEW-CLOCK")["status"], "unknown");
}

#[test]
fn plan_reads_a_mariadb_target_and_verify_runs_on_it() {
    let d = dir("mariadb-plan");
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql(
            "CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'curfew_agent'@'127.0.0.1';
             CREATE USER 'kim'@'127.0.0.1';",
        )
        .unwrap();
    let policy = write_policy(&d.0, &server, "curfew_agent");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kim = runtime.block_on(async {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(server.port())
            .prefer_socket(false)
            .user(Some("kim"));
        mysql_async::Conn::new(opts).await.unwrap()
    });
    let out = curfew()
        .args(["plan", "--format", "json", "--at", "+20m", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let plans: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let plan = &plans[0];
    assert_eq!(plan["target"], "maria");
    assert!(
        plan["server"].as_str().unwrap().starts_with("MariaDB 1"),
        "{plan:#}"
    );
    let sessions = plan["sessions"].as_array().unwrap();
    let kim_session = sessions
        .iter()
        .find(|s| s["role"] == "kim")
        .unwrap_or_else(|| panic!("kim's session is not in the plan: {plan:#}"));
    // Twenty minutes on, idle past the 15-minute rule.
    assert_eq!(kim_session["rule"], "idle", "{kim_session:#}");
    assert!(
        !sessions.iter().any(|s| s["role"] == "curfew_agent"),
        "curfew's own connection is in the plan: {plan:#}"
    );
    drop(kim);

    // verify runs on it (mariadb_verify.rs tests it live): with no agent, it fails saying why.
    let out = curfew()
        .args(["verify", "--no-record", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("No curfew agent enforces the policy on target \"maria\""),
        "{stdout}"
    );
}

#[test]
fn check_store_fails_a_database_wide_grant_on_curfew_and_passes_table_grants() {
    let d = dir("mariadb-check-store");
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql(
            "CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'curfew_agent'@'127.0.0.1';
             CREATE DATABASE curfew;
             CREATE TABLE curfew.anchor (seq BIGINT);
             GRANT ALL ON curfew.* TO 'curfew_agent'@'127.0.0.1';",
        )
        .unwrap();
    let policy = write_policy(&d.0, &server, "curfew_agent");

    // Its own database-wide grant is seen even where mysql.db is not readable.
    let (_, doc, _) = check(&policy);
    // No agent runs: nobody leads.
    let leader = finding(&doc, "CURFEW-MARIADB-LEADER");
    assert_eq!(leader["status"], "fail", "{leader:#}");
    assert!(
        leader["why"]
            .as_str()
            .unwrap()
            .contains("no curfew agent leads"),
        "{leader:#}"
    );
    let store = finding(&doc, "CURFEW-MARIADB-STORE");
    assert_eq!(store["status"], "fail", "{store:#}");
    let fix = store["fix"].as_str().unwrap();
    assert!(
        fix.starts_with("REVOKE ")
            && fix.contains(" ON `curfew`.* FROM `curfew_agent`@`127.0.0.1`;"),
        "{store:#}"
    );

    // Table grants as `curfew init` gives: the rest unreadable is unknown, readable passes.
    server
        .admin_sql(
            "REVOKE ALL ON curfew.* FROM 'curfew_agent'@'127.0.0.1';
             GRANT SELECT, INSERT ON curfew.anchor TO 'curfew_agent'@'127.0.0.1';",
        )
        .unwrap();
    let (_, doc, _) = check(&policy);
    assert_eq!(finding(&doc, "CURFEW-MARIADB-STORE")["status"], "unknown");
    server
        .admin_sql("GRANT SELECT ON mysql.db TO 'curfew_agent'@'127.0.0.1';")
        .unwrap();
    let (_, doc, _) = check(&policy);
    let store = finding(&doc, "CURFEW-MARIADB-STORE");
    assert_eq!(store["status"], "pass", "{store:#}");

    // Another account writing through a wildcard database grant fails, with its REVOKE.
    server
        .admin_sql(
            "CREATE USER 'app'@'%' IDENTIFIED BY 'x';
             GRANT SELECT, INSERT ON `curfe_`.* TO 'app'@'%';",
        )
        .unwrap();
    let (_, doc, _) = check(&policy);
    let store = finding(&doc, "CURFEW-MARIADB-STORE");
    assert_eq!(store["status"], "fail", "{store:#}");
    assert!(
        store["fix"]
            .as_str()
            .unwrap()
            .contains("REVOKE INSERT ON `curfe_`.* FROM `app`@`%`;"),
        "{store:#}"
    );

    // With an agent enforcing this policy, it leads.
    let mut child = common::agent(&policy, &d.0.join("audit.jsonl"));
    let lines = common::lines_of(&mut child);
    common::wait_for(
        &lines,
        "this agent leads",
        std::time::Duration::from_secs(30),
    );
    let (_, doc, _) = check(&policy);
    let leader = finding(&doc, "CURFEW-MARIADB-LEADER");
    assert_eq!(leader["status"], "pass", "{leader:#}");
}
