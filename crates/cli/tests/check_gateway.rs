//! `curfew check` on what `curfew init` installed for the gateway, against a real server: a
//! clean init passes the gateway findings; each tampering (EXECUTE granted to PUBLIC, the owner
//! changed, the search_path removed, an extra grantee on the registry, the gateway's role made
//! a superuser) fails its finding with the statement that mends it, and the command exits 3.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;

use common::{cluster, curfew, dir};

const RULES: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n";

/// `curfew check --format json --no-record`: the exit code and the document.
fn check(policy: &Path) -> (Option<i32>, serde_json::Value) {
    let out = curfew()
        .args(["check", "--format", "json", "--no-record", "-c"])
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

/// The finding `id` of the only target.
fn finding(doc: &serde_json::Value, id: &str) -> serde_json::Value {
    doc["targets"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {doc:#}"))
        .clone()
}

/// The status of each gateway finding.
fn gateway_statuses(doc: &serde_json::Value) -> Vec<String> {
    [
        "CURFEW-GATEWAY-AUTH",
        "CURFEW-GATEWAY-REGISTRY",
        "CURFEW-GATEWAY-ROLE",
    ]
    .iter()
    .map(|id| finding(doc, id)["status"].as_str().unwrap().to_owned())
    .collect()
}

/// Checks after `tamper`, expects `id` to fail with `fix` in its fix, then runs `mend` (the
/// fix's statement) and expects the gateway findings to pass again.
#[track_caller]
fn tampered(cluster: &curfew_sandbox::Cluster, policy: &Path, tamper: &str, id: &str, fix: &str) {
    cluster.psql(tamper).unwrap();
    let (code, doc) = check(policy);
    assert_eq!(code, Some(3), "{doc:#}");
    let f = finding(&doc, id);
    assert_eq!(f["status"], "fail", "{tamper}: {f:#}");
    let given = f["fix"].as_str().unwrap();
    assert!(
        given.contains(fix),
        "{tamper}: {given:?} does not contain {fix:?}"
    );
    // The markdown report names it under "To fix", with the statement.
    let md = curfew()
        .args(["check", "--no-record", "-c"])
        .arg(policy)
        .output()
        .unwrap();
    assert_eq!(md.status.code(), Some(3));
    let md = String::from_utf8_lossy(&md.stdout);
    let to_fix = md.split("## To fix").nth(1).unwrap_or_default();
    assert!(
        to_fix.lines().any(|l| l.contains(id) && l.contains(fix)),
        "{md}"
    );
    // The statement given mends it.
    cluster.psql(fix).unwrap();
    let (_, doc) = check(policy);
    assert_eq!(
        gateway_statuses(&doc),
        ["pass", "pass", "pass"],
        "after {fix}: {doc:#}"
    );
}

#[test]
fn a_clean_init_passes_and_each_tampering_is_reported_with_its_fix() {
    let cluster = cluster();
    cluster.psql("CREATE ROLE curfew_gateway LOGIN;").unwrap();
    let d = dir("check-gateway");
    let policy = d.0.join("curfew.toml");
    std::fs::write(
        &policy,
        format!(
            "{}\n[gateway]\nauth_url = \"{}\"\n",
            common::policy_text(&cluster, RULES),
            cluster.url("curfew_gateway", "postgres")
        ),
    )
    .unwrap();
    // Before init: nothing is installed, and check says to run it.
    let (code, doc) = check(&policy);
    assert_eq!(code, Some(3), "{doc:#}");
    let auth = finding(&doc, "CURFEW-GATEWAY-AUTH");
    assert_eq!(auth["status"], "fail", "{auth:#}");
    assert!(
        auth["fix"].as_str().unwrap().contains("curfew init"),
        "{auth:#}"
    );

    let out = curfew()
        .args(["init", "--admin-user", "postgres", "-c"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, doc) = check(&policy);
    assert_eq!(gateway_statuses(&doc), ["pass", "pass", "pass"], "{doc:#}");

    tampered(
        &cluster,
        &policy,
        "GRANT EXECUTE ON FUNCTION curfew.gateway_secret(text) TO PUBLIC;",
        "CURFEW-GATEWAY-AUTH",
        "REVOKE EXECUTE ON FUNCTION curfew.gateway_secret(pg_catalog.text) FROM PUBLIC;",
    );
    tampered(
        &cluster,
        &policy,
        "CREATE ROLE mallory NOLOGIN; ALTER FUNCTION curfew.gateway_secret(text) OWNER TO mallory;",
        "CURFEW-GATEWAY-AUTH",
        "ALTER FUNCTION curfew.gateway_secret(pg_catalog.text) OWNER TO \"curfew_gateway_auth\";",
    );
    tampered(
        &cluster,
        &policy,
        "ALTER FUNCTION curfew.register_gateway_session(int4, text, inet, int4, inet, int4, text) RESET search_path;",
        "CURFEW-GATEWAY-REGISTRY",
        "ALTER FUNCTION curfew.register_gateway_session(pg_catalog.int4, pg_catalog.text, pg_catalog.inet, pg_catalog.int4, pg_catalog.inet, pg_catalog.int4, pg_catalog.text) SET search_path = pg_catalog, pg_temp;",
    );
    tampered(
        &cluster,
        &policy,
        "GRANT INSERT ON curfew.gateway_sessions TO kim;",
        "CURFEW-GATEWAY-REGISTRY",
        "REVOKE INSERT ON curfew.gateway_sessions FROM \"kim\";",
    );
    tampered(
        &cluster,
        &policy,
        "GRANT curfew_gateway TO kim;",
        "CURFEW-GATEWAY-ROLE",
        "REVOKE \"curfew_gateway\" FROM \"kim\";",
    );
    tampered(
        &cluster,
        &policy,
        "ALTER ROLE curfew_gateway_registry LOGIN;",
        "CURFEW-GATEWAY-REGISTRY",
        "ALTER ROLE \"curfew_gateway_registry\" NOLOGIN;",
    );
}
