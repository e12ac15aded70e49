//! The evidence sections on hand-made records: canaries apart, compensating controls, policy
//! metadata and the control mapping, a stale verify, the actor of a lock, the sign-off.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_audit::{Entry, SessionInfo, Verification};
use curfew_policy::explain::explain;
use curfew_policy::parse_policy;
use jiff::Timestamp;
use serde_json::json;

use crate::{Input, Report, build};

const APPROVED: &str = r#"
[policy]
owner = "DBA team"
approved_by = "J. Smith, CISO"
version = "3"

[exempt]
roles = ["postgres"]

[[target]]
name = "db"
url = "postgresql://curfew@db1/postgres"

[[rule]]
name = "inactivity"
idle = "15m"
controls = ["NIST-800-171-3.1.11", "V-261910"]
"#;

const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn entry(seq: u64, at: &str, event: &str) -> Entry {
    Entry {
        seq,
        ts: ts(at),
        event: event.to_owned(),
        target: Some("db".to_owned()),
        rule: None,
        reason: None,
        session: None,
        result: None,
        intent: None,
        detail: None,
        prev: "prev".to_owned(),
        hash: format!("hash{seq}"),
    }
}

fn ended(seq: u64, at: &str, role: &str) -> Entry {
    let mut e = entry(seq, at, "session_terminated");
    e.rule = Some("inactivity".to_owned());
    e.session = Some(SessionInfo {
        pid: 100 + seq as i64,
        backend_start: ts("2026-03-01T08:00:00Z"),
        role: role.to_owned(),
        database: "postgres".to_owned(),
        client_addr: None,
        application: "psql".to_owned(),
        state: "idle".to_owned(),
    });
    e
}

fn loaded(seq: u64, at: &str, sha: &str) -> Entry {
    let mut e = entry(seq, at, "policy_loaded");
    e.target = None;
    e.detail = Some(json!({"sha256": sha, "source": "curfew.toml"}));
    e
}

fn report(policy_text: &str, entries: &[Entry]) -> Report {
    let policy = parse_policy("curfew.toml", policy_text, jiff::tz::db())
        .unwrap()
        .policy;
    let explanation = explain(&policy);
    let verification = Verification {
        records: entries.len() as u64,
        problems: vec![],
        last_hash: None,
    };
    build(&Input {
        policy_source: "curfew.toml",
        policy_sha256: SHA,
        policy: &policy,
        explanation: &explanation,
        audit_path: "audit.jsonl",
        entries,
        verification: &verification,
        integrity: &Default::default(),
        since: None,
        generated_at: ts("2026-03-01T12:00:00Z"),
    })
}

#[test]
fn canary_sessions_are_counted_apart_from_real_terminations() {
    let entries = [
        loaded(1, "2026-03-01T09:00:00Z", SHA),
        ended(2, "2026-03-01T10:00:00Z", "kim"),
        ended(3, "2026-03-01T10:01:00Z", "curfew_canary_0_17"),
    ];
    let r = report(APPROVED, &entries);
    assert_eq!(r.terminations.total, 1);
    assert_eq!(r.terminations.latest.len(), 1);
    assert_eq!(r.terminations.latest[0].role.as_deref(), Some("kim"));
    assert_eq!(r.evidence.completeness.canary_terminated, 1);
    assert!(
        r.to_markdown()
            .contains("canary sessions are counted apart: 1 ended")
    );
}

#[test]
fn what_curfew_cannot_end_is_stated_with_what_the_site_must_do() {
    let mut refused = entry(2, "2026-03-01T10:00:00Z", "termination_failed");
    refused.reason = Some(
        "the session belongs to a superuser, and only a superuser may end it (curfew's role is not one)"
            .to_owned(),
    );
    let entries = [loaded(1, "2026-03-01T09:00:00Z", SHA), refused];
    let r = report(APPROVED, &entries);
    let c = &r.evidence.compensating;
    assert_eq!(c.exempt_roles, ["postgres"]);
    assert_eq!(c.superuser_refusals.total, 1);
    assert!(c.statement.contains("postgres") && c.statement.contains("superuser"));
    let md = r.to_markdown();
    assert!(md.contains("## 10. Compensating controls"));
    assert!(md.contains("pgaudit") && md.contains("`curfew compile`"));
    let html = r.to_html().unwrap();
    assert!(html.contains("Sessions only a superuser may end: 1"));
}

#[test]
fn warnings_are_worded_as_what_the_agent_does() {
    let mut warned = entry(2, "2026-03-01T10:00:00Z", "session_warned");
    warned.rule = Some("inactivity".to_owned());
    let r = report(APPROVED, &[loaded(1, "2026-03-01T09:00:00Z", SHA), warned]);
    assert_eq!(r.evidence.completeness.warnings.total, 1);
    let md = r.to_markdown();
    assert!(md.contains("Warnings recorded: 1"));
    assert!(md.contains("the agent does not reach the user"));
    assert!(!md.contains("given by the curfew gateway"), "{md}");
}

#[test]
fn the_gateways_warnings_are_said_to_be_queued_to_the_user() {
    let mut agent = entry(2, "2026-03-01T10:00:00Z", "session_warned");
    agent.detail = Some(serde_json::json!({"deadline": "2026-03-01T10:02:00Z"}));
    let mut gateway = entry(3, "2026-03-01T10:01:00Z", "session_warned");
    gateway.detail = Some(serde_json::json!({"by": "gateway", "errors_counted": 2, "limit": 3}));
    let r = report(
        APPROVED,
        &[loaded(1, "2026-03-01T09:00:00Z", SHA), agent, gateway],
    );
    assert_eq!(r.evidence.completeness.warnings.total, 2);
    let md = r.to_markdown();
    assert!(md.contains("the agent does not reach the user"), "{md}");
    assert!(
        md.contains("1 of these was given by the curfew gateway, which also queued it to the user's session as a WARNING notice"),
        "{md}"
    );
}

#[test]
fn metadata_controls_and_the_mapping_name_what_answers_each_requirement() {
    let r = report(APPROVED, &[loaded(1, "2026-03-01T09:00:00Z", SHA)]);
    let m = &r.evidence.metadata;
    assert_eq!(m.approved_by.as_deref(), Some("J. Smith, CISO"));
    assert_eq!(
        m.rule_controls[0].controls,
        ["NIST-800-171-3.1.11", "V-261910"]
    );
    let rows = &r.evidence.control_mapping;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].control, "NIST SP 800-171 3.1.11[a]");
    assert_eq!(rows[0].status, "shown", "{:?}", rows[0]);
    assert_eq!(rows[0].rules, ["inactivity"]);
    // No heartbeat, no verify, no check: [b] and the STIG check are not shown, and say why.
    assert_eq!(rows[1].status, "not shown");
    assert!(rows[1].missing.contains("no heartbeats"));
    assert!(rows[1].missing.contains("no `curfew verify`"));
    assert_eq!(rows[2].control, "DISA STIG V-261910");
    assert!(rows[2].missing.contains("no `curfew check`"));
    assert_eq!(rows[2].rules, ["inactivity"]);

    let unapproved = APPROVED.replace("approved_by = \"J. Smith, CISO\"\n", "");
    let r = report(&unapproved, &[loaded(1, "2026-03-01T09:00:00Z", SHA)]);
    assert_eq!(r.evidence.control_mapping[0].status, "partly shown");
    assert!(
        r.evidence.control_mapping[0]
            .missing
            .contains("approved_by")
    );
    assert!(
        r.to_markdown()
            .contains("**Approved by:** not stated in [policy]")
    );
}

#[test]
fn a_verify_of_another_or_an_older_policy_is_flagged() {
    let verified = |seq, at: &str, sha: Option<&str>| {
        let mut e = entry(seq, at, "control_verified");
        e.result = Some("passed".to_owned());
        e.detail = Some(match sha {
            Some(sha) => json!({"policy_sha256": sha, "rules": []}),
            None => json!({"rules": []}),
        });
        e
    };
    let status = |entries: &[Entry]| {
        let r = report(APPROVED, entries);
        r.evidence.verify_currency[0].status.clone()
    };
    let load = loaded(1, "2026-03-01T09:00:00Z", SHA);
    assert_eq!(status(std::slice::from_ref(&load)), "absent");
    assert_eq!(
        status(&[load.clone(), verified(2, "2026-03-01T10:00:00Z", Some(SHA))]),
        "current"
    );
    assert_eq!(
        status(&[
            load.clone(),
            verified(2, "2026-03-01T10:00:00Z", Some(OTHER))
        ]),
        "other_policy"
    );
    // A verify from before the policy in force that does not say which policy it tested.
    assert_eq!(
        status(&[
            loaded(1, "2026-03-01T07:00:00Z", OTHER),
            verified(2, "2026-03-01T08:00:00Z", None),
            loaded(3, "2026-03-01T09:00:00Z", SHA),
        ]),
        "older_than_policy"
    );
    let r = report(
        APPROVED,
        &[load, verified(2, "2026-03-01T10:00:00Z", Some(OTHER))],
    );
    assert!(r.to_markdown().contains("**OTHER POLICY**"));
}

#[test]
fn the_person_behind_a_lock_and_the_sign_off_are_shown() {
    let mut lock = entry(2, "2026-03-01T10:00:00Z", "lock_created");
    lock.detail = Some(json!({
        "role": "kim", "kind": "incident",
        "actor": {"os_user": "alice", "uid": 1000, "db_role": "dba"}
    }));
    let r = report(APPROVED, &[loaded(1, "2026-03-01T09:00:00Z", SHA), lock]);
    assert_eq!(
        r.locks[0].actor.as_deref(),
        Some("alice (uid 1000) as role dba")
    );
    let md = r.to_markdown();
    assert!(md.contains("alice (uid 1000) as role dba"));
    assert!(md.contains("## 13. Sign-off") && md.contains("J. Smith, CISO"));
    let html = r.to_html().unwrap();
    assert!(html.contains("alice (uid 1000) as role dba"));
    assert!(html.contains("13. Sign-off") && html.contains("Signature"));
}

#[test]
fn a_role_merely_containing_the_canary_mark_is_not_a_canary() {
    // Anyone able to create roles could name one this way; its terminations still count.
    let entries = [
        loaded(1, "2026-03-01T09:00:00Z", SHA),
        ended(2, "2026-03-01T10:00:00Z", "ops_curfew_canary_x"),
    ];
    let r = report(APPROVED, &entries);
    assert_eq!(r.terminations.total, 1);
    assert_eq!(r.evidence.completeness.canary_terminated, 0);
}

#[test]
fn report_only_rules_answer_no_requirement_and_an_unanchored_log_is_a_doubt() {
    let text = format!(
        "{APPROVED}\n[[rule]]\nname = \"staged\"\nlifetime = \"6h\"\naction = \"report\"\ncontrols = [\"NIST-800-171-3.1.11\", \"V-261910\"]\n\n[[rule]]\nname = \"probing\"\naction = \"report\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\" }}\ncontrols = [\"NIST-800-171-3.1.11\"]\n"
    );
    let r = report(&text, &[loaded(1, "2026-03-01T09:00:00Z", SHA)]);
    for row in &r.evidence.control_mapping {
        assert_eq!(row.rules, ["inactivity"], "{row:?}");
    }
    // Nothing outside the log confirmed it (no anchors were given to the report).
    assert!(
        r.evidence.control_mapping[1]
            .missing
            .contains("not confirmed by anchors"),
        "{:?}",
        r.evidence.control_mapping[1]
    );
    assert!(
        r.evidence.control_mapping[2]
            .missing
            .contains("not confirmed by anchors")
    );
}

#[test]
fn a_policy_past_its_review_date_is_not_fully_shown() {
    let text = APPROVED.replace(
        "version = \"3\"\n",
        "version = \"3\"\nreview_by = \"2026-02-01\"\n",
    );
    let r = report(&text, &[loaded(1, "2026-03-01T09:00:00Z", SHA)]);
    let a = &r.evidence.control_mapping[0];
    assert_eq!(a.status, "partly shown", "{a:?}");
    assert!(a.missing.contains("review date (2026-02-01"), "{a:?}");
}

#[test]
fn a_violations_rule_that_ends_sessions_is_shown_as_covering_gateway_sessions_only() {
    let text = format!(
        "{APPROVED}\n[gateway]\nlisten = \"127.0.0.1:6432\"\ntarget = \"db\"\n\n[[rule]]\nname = \"probing\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\" }}\ncontrols = [\"NIST-800-171-3.1.11\"]\n"
    );
    let r = report(&text, &[loaded(1, "2026-03-01T09:00:00Z", SHA)]);
    let b = &r.evidence.control_mapping[1];
    assert_eq!(b.rules, ["inactivity", "probing"], "{b:?}");
    assert_ne!(b.status, "shown", "{b:?}");
    assert!(
        b.missing
            .contains("rule probing (violations) ends only sessions through the curfew gateway"),
        "{b:?}"
    );
}
