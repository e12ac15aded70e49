//! The report from hand-made records: counts, the period, the latest runs, the chain banner, and
//! escaping of hostile names.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_audit::{Entry, Problem, ProblemKind, SessionInfo, Verification};
use curfew_policy::explain::{Explanation, explain};
use curfew_policy::parse_policy;
use jiff::Timestamp;
use serde_json::json;

use crate::chart::tests::balanced;
use crate::{Input, Report, build};

const POLICY: &str = r#"
[[target]]
name = "primary"
url = "postgresql://curfew@db1/postgres"

[[rule]]
name = "inactivity"
description = "Interactive sessions idle for 15 minutes are ended."
idle = "15m"

[[rule]]
name = "working-hours"
allow = ["Mon-Fri 07:00-19:00"]
timezone = "America/New_York"

[[rule]]
name = "session-lifetime"
lifetime = "12h"
action = "report"
"#;

const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn policy() -> curfew_policy::Policy {
    parse_policy("curfew.toml", POLICY, jiff::tz::db())
        .unwrap()
        .policy
}

fn explanation() -> Explanation {
    explain(&policy())
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn entry(seq: u64, at: &str, event: &str) -> Entry {
    Entry {
        seq,
        ts: ts(at),
        event: event.to_owned(),
        target: Some("primary".to_owned()),
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

fn loaded(seq: u64, at: &str, sha: &str) -> Entry {
    Entry {
        target: None,
        detail: Some(
            json!({"source": "curfew.toml", "sha256": sha, "rules": 3, "targets": ["primary"]}),
        ),
        ..entry(seq, at, "policy_loaded")
    }
}

fn session(role: &str, application: &str) -> SessionInfo {
    SessionInfo {
        pid: 4242,
        backend_start: ts("2026-03-01T00:00:00Z"),
        role: role.to_owned(),
        database: "sales".to_owned(),
        client_addr: Some("10.0.0.7".to_owned()),
        application: application.to_owned(),
        state: "idle".to_owned(),
    }
}

fn ended(seq: u64, at: &str, rule: &str) -> Entry {
    Entry {
        rule: Some(rule.to_owned()),
        reason: Some("idle for 15m02s; limit 15m".to_owned()),
        session: Some(session("analyst_kim", "psql")),
        result: Some("ended".to_owned()),
        intent: Some(seq - 1),
        detail: Some(json!({"lateness_ms": 12.5})),
        ..entry(seq, at, "session_terminated")
    }
}

fn with_result(e: Entry, rule: &str, result: &str) -> Entry {
    Entry {
        rule: Some(rule.to_owned()),
        result: Some(result.to_owned()),
        ..e
    }
}

fn intact(records: u64) -> Verification {
    Verification {
        records,
        problems: vec![],
        last_hash: Some("feedface".to_owned()),
    }
}

fn report(entries: &[Entry], verification: &Verification, since: Option<&str>) -> Report {
    let explanation = explanation();
    let policy = policy();
    build(&Input {
        policy_source: "curfew.toml",
        policy_sha256: SHA,
        policy: &policy,
        explanation: &explanation,
        audit_path: "/var/lib/curfew/audit.jsonl",
        entries,
        verification,
        integrity: &Default::default(),
        since: since.map(ts),
        generated_at: ts("2026-03-03T18:00:00Z"),
    })
}

/// Three days: two terminations on the 1st, none on the 2nd, one on the 3rd.
fn three_days() -> Vec<Entry> {
    vec![
        loaded(1, "2026-03-01T00:00:00Z", SHA),
        ended(3, "2026-03-01T09:00:00Z", "inactivity"),
        ended(5, "2026-03-01T10:00:00Z", "working-hours"),
        with_result(
            entry(6, "2026-03-01T11:00:00Z", "termination_failed"),
            "inactivity",
            "failed",
        ),
        with_result(
            entry(7, "2026-03-02T11:00:00Z", "session_reported"),
            "session-lifetime",
            "report_only",
        ),
        with_result(
            entry(8, "2026-03-02T12:00:00Z", "session_reported"),
            "session-lifetime",
            "dry_run",
        ),
        ended(10, "2026-03-03T09:00:00Z", "inactivity"),
        Entry {
            target: Some("standby".to_owned()),
            ..ended(12, "2026-03-03T09:30:00Z", "inactivity")
        },
    ]
}

/// The chart inside a page.
fn svg_of(html: &str) -> &str {
    let start = html.find("<svg xmlns").unwrap();
    let end = html[start..].find("</svg>").unwrap() + start + "</svg>".len();
    &html[start..end]
}

#[test]
fn every_rule_appears_in_every_format() {
    let r = report(&three_days(), &intact(12), None);
    let html = r.to_html().unwrap();
    let md = r.to_markdown();
    let json = serde_json::to_string_pretty(&r).unwrap();
    for (i, rule) in r.conditions.rules.iter().enumerate() {
        assert!(
            html.contains(&format!("1.{} {}</h3>", i + 1, rule.name)),
            "{}",
            rule.name
        );
        assert!(
            md.contains(&format!("### 1.{} {}", i + 1, rule.name)),
            "{}",
            rule.name
        );
        assert!(json.contains(&rule.name));
        assert!(html.contains(&crate::text::prose(&rule.statement)));
    }
    assert!(html.contains("America/New_York") && md.contains("America/New_York"));
    assert!(html.contains("Report only: curfew records"));
    assert!(md.contains("Interactive sessions idle for 15 minutes are ended."));
    assert!(html.contains("Never ended by any rule") && md.contains("Never ended by any rule"));
    assert!(html.contains("Servers: primary."));
    // Self-contained: nothing fetched, nothing run.
    for needle in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle}");
    }
    assert!(html.contains("@media print"));
}

#[test]
fn terminations_are_counted_by_rule_target_and_day() {
    let r = report(&three_days(), &intact(12), None);
    let t = &r.terminations;
    assert_eq!(t.total, 4);
    assert_eq!(t.failed, 1);
    assert_eq!(t.reported, 2);
    assert_eq!(t.rules, ["inactivity", "working-hours", "session-lifetime"]);
    let counts: Vec<(&str, u64, u64, u64)> = t
        .by_rule
        .iter()
        .map(|c| (c.rule.as_str(), c.terminated, c.failed, c.reported))
        .collect();
    assert_eq!(
        counts,
        [
            ("inactivity", 3, 1, 0),
            ("working-hours", 1, 0, 0),
            ("session-lifetime", 0, 0, 2)
        ]
    );
    let targets: Vec<(&str, u64)> = t
        .by_target
        .iter()
        .map(|c| (c.target.as_str(), c.terminated))
        .collect();
    assert_eq!(targets, [("primary", 3), ("standby", 1)]);
    let days: Vec<(String, u64, Option<u64>)> = t
        .by_day
        .iter()
        .map(|d| {
            (
                d.date.to_string(),
                d.total,
                d.by_rule.get("inactivity").copied(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2026-03-01".to_owned(), 2, Some(1)),
            ("2026-03-02".to_owned(), 0, None),
            ("2026-03-03".to_owned(), 2, Some(2)),
        ]
    );
    // Newest first.
    let latest: Vec<u64> = t.latest.iter().map(|e| e.seq).collect();
    assert_eq!(latest, [12, 10, 5, 3]);
    assert_eq!(t.latest[0].application.as_deref(), Some("psql"));

    // The chart: well-formed, one bar segment per (day, rule) with terminations.
    let html = r.to_html().unwrap();
    let svg = svg_of(&html);
    balanced(svg).unwrap();
    let bars = &svg[svg.find(r#"<g class="bars">"#).unwrap()..];
    let bars = &bars[..bars.find("</g>").unwrap()];
    assert_eq!(bars.matches("<rect ").count(), 3);
    assert!(svg.contains("2026-03-03 · inactivity: 2"));
    // Markdown lists the busy days only, and says so.
    let md = r.to_markdown();
    assert!(md.contains("| 2026-03-01 | 2 | 1 | 1 |"), "{md}");
    assert!(md.contains("| 2026-03-03 | 2 | 2 |  |"), "{md}");
    assert!(!md.contains("| 2026-03-02 |"));
    assert!(md.contains("| session-lifetime | 0 | 0 | 2 |"));
}

#[test]
fn many_terminations_list_the_latest_twenty() {
    let mut entries = vec![loaded(1, "2026-03-01T00:00:00Z", SHA)];
    for i in 0..30u64 {
        let at = ts("2026-03-01T00:00:00Z")
            .checked_add(jiff::SignedDuration::from_mins(i as i64 * 90))
            .unwrap()
            .to_string();
        entries.push(ended(2 + i, &at, "inactivity"));
    }
    let r = report(&entries, &intact(31), None);
    assert_eq!(r.terminations.total, 30);
    assert_eq!(r.terminations.latest.len(), crate::LATEST);
    assert_eq!(r.terminations.latest[0].seq, 31);
    balanced(svg_of(&r.to_html().unwrap())).unwrap();
}

#[test]
fn since_excludes_older_records_but_keeps_the_policy_in_force() {
    let entries = vec![
        loaded(1, "2026-02-01T00:00:00Z", "1111"),
        loaded(2, "2026-02-10T00:00:00Z", "2222"),
        ended(4, "2026-02-15T00:00:00Z", "inactivity"),
        ended(6, "2026-03-01T12:00:00Z", "inactivity"),
        loaded(7, "2026-03-02T00:00:00Z", SHA),
        entry(8, "2026-03-02T00:00:01Z", "agent_started"),
    ];
    let r = report(&entries, &intact(8), Some("2026-03-01T00:00:00Z"));
    let history: Vec<(&str, bool)> = r
        .policy_history
        .iter()
        .map(|l| (l.sha256.as_str(), l.before_period))
        .collect();
    assert_eq!(history, [("2222", true), (SHA, false)]);
    assert_eq!(r.policy.matches_latest_loaded, Some(true));
    assert_eq!(r.terminations.total, 1);
    assert_eq!(r.audit_log.records, 6);
    assert_eq!(r.audit_log.records_in_period, 3);
    assert_eq!(r.period.from, Some(ts("2026-03-01T00:00:00Z")));
    let first = r.terminations.by_day.first().unwrap();
    assert_eq!(first.date.to_string(), "2026-03-01");
    assert_eq!(r.terminations.by_day.len(), 3);
    let html = r.to_html().unwrap();
    assert!(html.contains("in force when the period began"));
    assert!(html.contains(r#"title="2222""#));
    assert!(!html.contains("2026-02-15"));
    assert!(!html.contains("not the policy in force"));
    assert!(r.to_markdown().contains("in force when the period began"));
}

#[test]
fn a_policy_file_other_than_the_loaded_one_is_flagged() {
    let entries = vec![loaded(
        1,
        "2026-03-01T00:00:00Z",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    )];
    let r = report(&entries, &intact(1), None);
    assert_eq!(r.policy.matches_latest_loaded, Some(false));
    let html = r.to_html().unwrap();
    assert!(html.contains("The policy file is not the policy in force."));
    assert!(
        html.contains(r#"<code title="bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb">bbbbbbbbbbbb</code>"#)
    );
    assert!(
        r.to_markdown()
            .contains("The policy file is not the policy in force.")
    );

    let r = report(&[], &intact(0), None);
    assert_eq!(r.policy.matches_latest_loaded, None);
    assert!(
        r.to_html()
            .unwrap()
            .contains("No policy load is recorded in this log.")
    );
    assert!(
        r.to_markdown()
            .contains("No policy load is recorded in this log.")
    );
}

#[test]
fn locks_show_role_and_reason() {
    let detail = json!({
        "lock_id": 7, "role": "analyst_kim", "kind": "incident", "rule": null,
        "created_by": "alice", "created_at": "2026-03-02T08:00:00Z",
        "expires_at": "2026-03-09T08:00:00Z", "released_by": null, "released_at": null,
    });
    let entries = vec![
        loaded(1, "2026-03-01T00:00:00Z", SHA),
        Entry {
            reason: Some(r#"role "analyst_kim" locked: suspected credential theft"#.to_owned()),
            detail: Some(detail.clone()),
            ..entry(2, "2026-03-02T08:00:01Z", "lock_created")
        },
        Entry {
            reason: Some(r#"lock on role "analyst_kim" released by bob"#.to_owned()),
            detail: Some(
                json!({"role": "analyst_kim", "kind": "incident", "created_by": "alice",
                "released_by": "bob", "released_at": "2026-03-03T08:00:00Z"}),
            ),
            ..entry(3, "2026-03-03T08:00:01Z", "lock_released")
        },
        Entry {
            result: Some("disabled".to_owned()),
            detail: Some(json!({"role": "analyst_kim", "role_oid": 16384, "error": null})),
            ..entry(4, "2026-03-02T08:00:02Z", "login_locked")
        },
        entry(5, "2026-03-02T08:00:03Z", "agent_stopped"),
    ];
    let r = report(&entries, &intact(5), None);
    assert_eq!(r.locks.len(), 3);
    assert_eq!(r.locks[0].role.as_deref(), Some("analyst_kim"));
    assert_eq!(r.locks[0].kind.as_deref(), Some("incident"));
    assert_eq!(r.locks[1].released_by.as_deref(), Some("bob"));
    let html = r.to_html().unwrap();
    assert!(
        html.contains("role &#34;analyst_kim&#34; locked: suspected credential theft"),
        "{html}"
    );
    assert!(html.contains("<td>analyst_kim</td>"));
    assert!(html.contains("bob, 2026-03-03T08:00:00Z"));
    let md = r.to_markdown();
    assert!(md.contains(r#"role "analyst_kim" locked: suspected credential theft"#));
    assert!(md.contains("| analyst_kim |") && md.contains("| alice |"));
}

fn check(seq: u64, at: &str, target: &str, result: &str, id: &str) -> Entry {
    Entry {
        target: Some(target.to_owned()),
        result: Some(result.to_owned()),
        reason: Some("curfew check: 1 failed, 0 unknown, 1 passed".to_owned()),
        detail: Some(json!({
            "server": "PostgreSQL 17.2", "policy_sha256": SHA,
            "findings": [
                {"id": id, "title": "Sessions are ended", "requirement": "SRG", "status": "fail",
                 "observed": "no agent", "expected": "an agent", "fix": "run one"},
                {"id": "PG-LOG-CONNECTIONS", "status": "pass"},
            ],
        })),
        ..entry(seq, at, "configuration_checked")
    }
}

fn verified(seq: u64, at: &str, target: &str, evidence: &str) -> Entry {
    Entry {
        target: Some(target.to_owned()),
        result: Some("passed".to_owned()),
        reason: Some("1 passed live, 0 passed by evaluation, 0 failed, 0 not tested".to_owned()),
        detail: Some(json!({"rules": [
            {"rule": "inactivity", "method": "live", "status": "pass", "evidence": evidence},
            {"rule": "partial"},
            "not an object",
        ]})),
        ..entry(seq, at, "control_verified")
    }
}

#[test]
fn the_latest_check_and_verify_per_target_win_by_time() {
    let entries = vec![
        loaded(1, "2026-03-01T00:00:00Z", SHA),
        // File order and time order disagree: the later time wins.
        check(2, "2026-03-02T10:00:00Z", "primary", "failed", "V-LATEST"),
        check(3, "2026-03-01T10:00:00Z", "primary", "passed", "V-OLDER"),
        check(4, "2026-02-01T10:00:00Z", "standby", "passed", "V-STANDBY"),
        verified(5, "2026-03-01T10:00:00Z", "primary", "old evidence"),
        verified(
            6,
            "2026-03-02T10:00:00Z",
            "primary",
            "canary ended after 15m01s",
        ),
    ];
    let r = report(&entries, &intact(6), Some("2026-03-01T00:00:00Z"));
    let checks: Vec<(Option<&str>, u64, bool)> = r
        .checks
        .iter()
        .map(|c| (c.run.target.as_deref(), c.run.seq, c.run.before_period))
        .collect();
    assert_eq!(
        checks,
        [(Some("primary"), 2, false), (Some("standby"), 4, true)]
    );
    assert_eq!(r.checks[0].findings.len(), 2);
    assert_eq!(r.checks[0].findings[1].title, "");
    assert_eq!(r.verifications.len(), 1);
    assert_eq!(r.verifications[0].run.seq, 6);
    assert_eq!(r.verifications[0].rules.len(), 2);
    let html = r.to_html().unwrap();
    assert!(html.contains("V-LATEST") && !html.contains("V-OLDER"));
    assert!(html.contains("V-STANDBY") && html.contains("before the period; still the latest"));
    assert!(html.contains("canary ended after 15m01s") && !html.contains("old evidence"));
    assert!(html.contains("curfew check: 1 failed, 0 unknown, 1 passed"));
    assert!(!html.contains("No <code>curfew verify</code> run was recorded"));
    let md = r.to_markdown();
    assert!(md.contains("| fail | V-LATEST | Sessions are ended | no agent | an agent |"));
    assert!(md.contains("| inactivity | live | pass | canary ended after 15m01s |"));
}

#[test]
fn missing_check_and_verify_runs_are_said_not_omitted() {
    let r = report(&three_days(), &intact(12), None);
    let html = r.to_html().unwrap();
    assert!(html.contains("No <code>curfew verify</code> run was recorded in this log."));
    assert!(html.contains("No <code>curfew check</code> run was recorded in this log."));
    let md = r.to_markdown();
    assert!(md.contains("No `curfew verify` run was recorded in this log."));
    assert!(md.contains("No `curfew check` run was recorded in this log."));
}

#[test]
fn a_broken_chain_is_announced_at_the_top() {
    let broken = Verification {
        records: 12,
        problems: vec![Problem {
            line: 7,
            seq: Some(7),
            kind: ProblemKind::HashMismatch,
            message: "line 7 (seq 7) was edited: its hash does not match its bytes".to_owned(),
        }],
        last_hash: Some("feedface".to_owned()),
    };
    let r = report(&three_days(), &broken, None);
    assert!(!r.chain.intact);
    let html = r.to_html().unwrap();
    let banner = html.find("The audit chain is BROKEN.").unwrap();
    assert!(banner < html.find("1. Conditions").unwrap());
    let message = html.find("line 7 (seq 7) was edited").unwrap();
    assert!(message < html.find("1. Conditions").unwrap());
    assert!(html.contains("hash_mismatch"));
    assert!(html.contains("(audit chain BROKEN)</title>"));
    let md = r.to_markdown();
    assert!(md.find("The audit chain is BROKEN.").unwrap() < md.find("## 1. Conditions").unwrap());
    assert!(
        md.contains("| 7 | 7 | hash\\_mismatch | line 7 (seq 7) was edited")
            || md.contains("| 7 | 7 | hash_mismatch | line 7 (seq 7) was edited")
    );

    let r = report(&three_days(), &intact(12), None);
    let html = r.to_html().unwrap();
    assert!(!html.contains("The audit chain is BROKEN."));
    assert!(html.contains("<code>feedface</code>"));
}

#[test]
fn hostile_names_are_escaped_in_html_svg_and_markdown() {
    let hostile = "<script>alert(1)</script>";
    let mut e = ended(3, "2026-03-02T09:00:00Z", hostile);
    e.session = Some(session("x\"onload=\"y", hostile));
    e.reason = Some("a | b <img src=x>".to_owned());
    let entries = vec![loaded(1, "2026-03-01T00:00:00Z", SHA), e];
    let r = report(&entries, &intact(2), None);
    assert!(r.terminations.rules.contains(&hostile.to_owned()));
    let html = r.to_html().unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"));
    assert!(!html.contains("\"onload"));
    let svg = svg_of(&html);
    assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    balanced(svg).unwrap();
    let md = r.to_markdown();
    // Every `<` in the document is escaped, so no Markdown renderer sees raw HTML.
    for (at, _) in md.match_indices('<') {
        assert_eq!(
            &md[at - 1..at],
            "\\",
            "{}",
            &md[at.saturating_sub(20)..at + 10]
        );
    }
    assert!(md.contains("\\<script\\>alert(1)\\</script\\>"));
    assert!(md.contains("a \\| b"));
}

#[test]
fn json_is_the_model() {
    let r = report(&three_days(), &intact(12), None);
    let v: serde_json::Value =
        serde_json::from_str(&serde_json::to_string_pretty(&r).unwrap()).unwrap();
    assert_eq!(v["terminations"]["total"], 4);
    assert_eq!(v["terminations"]["by_day"][1]["date"], "2026-03-02");
    assert_eq!(v["terminations"]["by_day"][1]["total"], 0);
    assert_eq!(v["policy"]["sha256"], SHA);
    assert_eq!(v["chain"]["intact"], true);
    assert_eq!(v["conditions"]["rules"][0]["name"], "inactivity");
    assert_eq!(v["generated_at"], "2026-03-03T18:00:00Z");
}

#[test]
fn an_empty_log_renders() {
    let r = report(
        &[],
        &Verification {
            records: 0,
            problems: vec![],
            last_hash: None,
        },
        None,
    );
    assert_eq!(r.terminations.by_day.len(), 1);
    let html = r.to_html().unwrap();
    assert!(html.contains("No session was ended in the period."));
    assert!(html.contains("none (empty log)"));
    assert!(
        r.to_markdown()
            .contains("the whole log (it has no records)")
    );
}

#[test]
fn the_gateways_verify_results_are_shown_as_through_the_gateway() {
    let mut v = verified(2, "2026-03-02T10:00:00Z", "primary", "agent evidence");
    v.detail.as_mut().unwrap()["gateway"] = json!({"enforcement_point": "gateway", "results": [
        {"rule": "inactivity", "method": "live", "status": "live_pass",
         "evidence": "Through the curfew gateway: ... FATAL 57P05"},
    ]});
    let entries = vec![loaded(1, "2026-03-01T00:00:00Z", SHA), v];
    let r = report(&entries, &intact(2), Some("2026-03-01T00:00:00Z"));
    let md = r.to_markdown();
    assert!(
        md.contains("| inactivity | live | pass | agent evidence |"),
        "{md}"
    );
    assert!(
        md.contains("| inactivity | live through the gateway | live_pass | Through the curfew gateway: ... FATAL 57P05 |"),
        "{md}"
    );
}
