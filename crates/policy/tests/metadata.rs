//! `[policy]` metadata, rule `controls`, and `violations` rules (the gateway's alone): what
//! is accepted, and each refusal with its line:column.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_policy::explain::explain;
use curfew_policy::parse_policy;

const RULE: &str = "[[rule]]\nname = \"a\"\nidle = \"5m\"\n";

fn errors(text: &str) -> Vec<String> {
    match parse_policy("t.toml", text, jiff::tz::db()) {
        Ok(_) => panic!("expected errors, the policy parsed"),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn assert_error(text: &str, position: &str, fragment: &str) {
    let all = errors(text);
    assert_eq!(all.len(), 1, "expected exactly one error, got {all:#?}");
    let e = &all[0];
    assert!(
        e.starts_with(&format!("t.toml:{position}: ")),
        "wrong position in {e:?}, want {position}"
    );
    assert!(e.contains(fragment), "{e:?} does not contain {fragment:?}");
}

#[test]
fn metadata_is_accepted_and_kept() {
    let text = format!(
        "[policy]\nowner = \"DBA team\"\napproved_by = \"J. Smith, CISO\"\nversion = \"3.1\"\neffective = \"2026-01-15\"\nreview_by = \"2027-01-15\"\nimplements = \"SSP AC-12 rev 3\"\n{RULE}"
    );
    let p = parse_policy("t.toml", &text, jiff::tz::db())
        .unwrap()
        .policy;
    assert_eq!(p.meta.approved_by.as_deref(), Some("J. Smith, CISO"));
    assert_eq!(p.meta.effective.as_deref(), Some("2026-01-15"));
    assert_eq!(p.meta.review_by.as_deref(), Some("2027-01-15"));
}

#[test]
fn dates_must_be_calendar_dates() {
    assert_error(
        &format!("[policy]\neffective = \"15/01/2026\"\n{RULE}"),
        "2:13",
        "`effective` in [policy] is \"15/01/2026\", not a date; write it as YYYY-MM-DD",
    );
    assert_error(
        &format!("[policy]\nreview_by = \"2026-02-30\"\n{RULE}"),
        "2:13",
        "`review_by` in [policy] is \"2026-02-30\", not a date",
    );
    assert_error(
        &format!("[policy]\neffective = \"2026-1-5\"\n{RULE}"),
        "2:13",
        "not a date",
    );
    assert_error(
        &format!("[policy]\neffective = 2026-01-05T10:00:00\n{RULE}"),
        "2:13",
        "`effective` in [policy] is \"2026-01-05T10:00:00\", not a date",
    );
    assert_error(
        &format!("[policy]\neffective = 7\n{RULE}"),
        "2:13",
        "`effective` in [policy] must be a date like 2026-01-31, not an integer",
    );
    // A TOML date needs no quotes.
    let text = format!("[policy]\neffective = 2026-01-05\n{RULE}");
    let p = parse_policy("t.toml", &text, jiff::tz::db())
        .unwrap()
        .policy;
    assert_eq!(p.meta.effective.as_deref(), Some("2026-01-05"));
}

#[test]
fn review_comes_after_effect() {
    assert_error(
        &format!("[policy]\neffective = \"2026-06-01\"\nreview_by = \"2026-05-31\"\n{RULE}"),
        "3:13",
        "`review_by` in [policy] is 2026-05-31, before `effective` 2026-06-01",
    );
    // The same day is allowed.
    let text = format!("[policy]\neffective = \"2026-06-01\"\nreview_by = \"2026-06-01\"\n{RULE}");
    assert!(parse_policy("t.toml", &text, jiff::tz::db()).is_ok());
}

#[test]
fn unknown_policy_keys_are_refused() {
    assert_error(
        &format!("[policy]\napproved = \"x\"\n{RULE}"),
        "2:1",
        "unknown key `approved` in [policy]; did you mean `approved_by`?",
    );
}

#[test]
fn controls_are_known_ids_or_local() {
    let text = "[[rule]]\nname = \"a\"\nidle = \"5m\"\ncontrols = [\"NIST-800-171-3.1.11\", \"AC-12\", \"NIST-800-53-AC-12\", \"AC.L2-3.1.11\", \"V-261910\", \"V-220295\", \"V-235185\", \"V-253717\", \"local:SEC-POL-7.2\"]\n";
    let p = parse_policy("t.toml", text, jiff::tz::db()).unwrap().policy;
    assert_eq!(p.rules[0].controls.len(), 9);
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\ncontrols = [\"AC-12\", \"V-261901\"]\n",
        "4:22",
        "`controls` in rule \"a\": unknown control \"V-261901\"; did you mean \"V-261910\"?",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\ncontrols = [\"SEC-7\"]\n",
        "4:13",
        "an organization's own id is written \"local:<id>\"",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\ncontrols = [\"AC-12\", \"AC-12\"]\n",
        "4:22",
        "control \"AC-12\" is listed twice in rule \"a\"",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\ncontrols = \"AC-12\"\n",
        "4:12",
        "write controls = [\"AC-12\"]",
    );
}

const VIOLATIONS: &str = "violations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\n";

#[test]
fn a_violations_rule_that_would_terminate_is_refused_with_the_reason() {
    assert_error(
        &format!("[[rule]]\nname = \"probe\"\n{VIOLATIONS}"),
        "3:1",
        "rule \"probe\" has a `violations` condition, which needs the curfew gateway: only the gateway sees a session's errors",
    );
    assert_error(
        &format!("[[rule]]\nname = \"probe\"\naction = \"terminate\"\n{VIOLATIONS}"),
        "4:1",
        "keep the rule as documentation with action = \"report\"",
    );
}

#[test]
fn a_report_only_violations_rule_is_shown_as_not_enforced() {
    let text = format!("[[rule]]\nname = \"probe\"\naction = \"report\"\n{VIOLATIONS}");
    let parsed = parse_policy("t.toml", &text, jiff::tz::db()).unwrap();
    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "t.toml:4:1: warning: rule \"probe\" is NOT ENFORCED: with action = \"report\" no running curfew component acts on it (the gateway counts errors only for rules that end sessions), so this rule ends nothing and records nothing; it is kept as documentation"
        ]
    );
    let p = parsed.policy;
    let e = explain(&p);
    assert!(!e.rules[0].enforced);
    assert_eq!(e.rules[0].enforced_by, "none");
    let md = e.to_markdown("t.toml", None);
    assert!(md.contains("**Enforced by:** NOT ENFORCED"), "{md}");
    assert!(!md.contains("gateway only"), "{md}");
    assert!(!md.to_lowercase().contains("is ended."), "{md}");
    assert!(curfew_policy::explain::summary(&p.rules[0]).contains("NOT ENFORCED"));
}

const GATEWAY: &str = "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@db1/postgres\"\n[gateway]\nlisten = [\"127.0.0.1:6432\"]\nserve_members_of = \"app\"\n";

#[test]
fn an_ending_violations_rule_is_accepted_with_a_gateway_and_says_exactly_what_enforces_it() {
    let text = format!("[[rule]]\nname = \"probe\"\n{VIOLATIONS}{GATEWAY}");
    let parsed = parse_policy("t.toml", &text, jiff::tz::db()).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let e = explain(&parsed.policy);
    let rule = &e.rules[0];
    assert!(rule.enforced);
    assert_eq!(rule.enforced_by, "gateway");
    assert_eq!(
        rule.enforcement,
        "the curfew gateway, for sessions through it; direct sessions are not watched"
    );
    let summary = curfew_policy::explain::summary(&parsed.policy.rules[0]);
    assert!(summary.contains("gateway sessions only"), "{summary}");
    assert!(!summary.contains("NOT ENFORCED"), "{summary}");
}

#[test]
fn a_per_role_violations_rule_says_its_count_spans_gateways_and_how_it_falls_back() {
    let text = format!(
        "[[rule]]\nname = \"probe\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\", per = \"role\" }}\n{GATEWAY}"
    );
    let parsed = parse_policy("t.toml", &text, jiff::tz::db()).unwrap();
    let e = explain(&parsed.policy);
    assert!(
        e.rules[0]
            .enforcement
            .ends_with("(per-role counts are kept in the database for every gateway (the functions `curfew init` installs); when that count fails or takes over 2 s, a gateway's own count decides, which sees only its own sessions)"),
        "{}",
        e.rules[0].enforcement
    );
    assert!(
        e.rules[0]
            .statement
            .contains("across its role's sessions on every gateway")
    );
}

#[test]
fn a_report_only_violations_rule_stays_not_enforced_with_a_gateway() {
    let text = format!("[[rule]]\nname = \"probe\"\naction = \"report\"\n{VIOLATIONS}{GATEWAY}");
    let parsed = parse_policy("t.toml", &text, jiff::tz::db()).unwrap();
    assert_eq!(parsed.warnings.len(), 1);
    let e = explain(&parsed.policy);
    assert!(!e.rules[0].enforced);
    assert_eq!(e.rules[0].enforced_by, "none");
}

#[test]
fn a_rules_message_is_kept_as_written() {
    let text = "[[rule]]\nname = \"a\"\nidle = \"5m\"\nmessage = \"Session closed per ACME policy 4.2 — call x1234\"\n";
    let parsed = parse_policy("t.toml", text, jiff::tz::db()).unwrap();
    assert_eq!(
        parsed.policy.rules[0].message.as_deref(),
        Some("Session closed per ACME policy 4.2 — call x1234")
    );
    let plain = parse_policy("t.toml", RULE, jiff::tz::db()).unwrap();
    assert_eq!(plain.policy.rules[0].message, None);
}

#[test]
fn a_bad_message_is_refused_at_its_place() {
    assert_error(
        &format!("{RULE}message = 3\n"),
        "4:11",
        "`message` in rule \"a\" must be a string (the text clients see), not an integer",
    );
    assert_error(
        &format!("{RULE}message = \"  \"\n"),
        "4:11",
        "`message` in rule \"a\" is empty",
    );
    assert_error(
        &format!("{RULE}message = \"{}\"\n", "x".repeat(1001)),
        "4:11",
        "is 1001 characters long; at most 1000 are allowed",
    );
    assert_error(
        &format!("{RULE}message = \"closed\\u001b[2Jnow\"\n"),
        "4:11",
        "contains the control character \\u{1b}",
    );
    assert_error(
        &format!("{RULE}message = \"two\\nlines\"\n"),
        "4:11",
        "contains the control character \\n",
    );
    // Exactly 1000 characters (not bytes) is accepted.
    let text = format!("{RULE}message = \"{}\"\n", "é".repeat(1000));
    assert!(parse_policy("t.toml", &text, jiff::tz::db()).is_ok());
}

#[test]
fn client_text_keeps_curfews_words_in_the_detail() {
    use curfew_policy::login_refusal::{ClientText, client_text};
    assert_eq!(
        client_text(Some("Closed by policy"), "idle for 5m (rule a)".to_owned()),
        ClientText {
            message: "Closed by policy".to_owned(),
            detail: Some("idle for 5m (rule a)".to_owned()),
        }
    );
    assert_eq!(client_text(None, "own".to_owned()).detail, None);
}

#[test]
fn audit_include_statement_is_off_by_default_and_must_be_a_boolean() {
    let off = parse_policy("t.toml", RULE, jiff::tz::db()).unwrap().policy;
    assert!(!off.audit.include_statement);
    let text = format!("[audit]\ninclude_statement = true\n{RULE}");
    let on = parse_policy("t.toml", &text, jiff::tz::db())
        .unwrap()
        .policy;
    assert!(on.audit.include_statement);
    assert_error(
        &format!("[audit]\ninclude_statement = \"yes\"\n{RULE}"),
        "2:21",
        "include_statement",
    );
}

#[test]
fn a_per_role_window_beyond_a_week_is_refused_as_the_shared_count_would() {
    let gateway =
        "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n[gateway]\n";
    let rule = |within: &str, per: &str| {
        format!(
            "[[rule]]\nname = \"v\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"{within}\", per = \"{per}\" }}\n{gateway}"
        )
    };
    assert!(parse_policy("t.toml", &rule("7d", "role"), jiff::tz::db()).is_ok());
    assert!(parse_policy("t.toml", &rule("8d", "session"), jiff::tz::db()).is_ok());
    assert_error(
        &rule("8d", "role"),
        "3:59",
        "at most 7d with per = \"role\"",
    );
}
