//! The report's explanation claims nothing that does not run: a warning is a record and a hook,
//! not a message to the user; a `violations` rule is NOT ENFORCED; controls are listed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_audit::Verification;
use curfew_policy::explain::explain;
use curfew_policy::parse_policy;

use crate::{Input, build};

const POLICY: &str = r#"
[[rule]]
name = "inactivity"
idle = "15m"
warn = "2m"
controls = ["NIST-800-171-3.1.11", "V-261910"]

[[rule]]
name = "probing"
action = "report"
violations = { sqlstates = ["42501"], count = 3, within = "10m" }
"#;

#[test]
fn warnings_and_unenforced_rules_are_stated_as_they_are() {
    let policy = parse_policy("curfew.toml", POLICY, jiff::tz::db())
        .unwrap()
        .policy;
    let explanation = explain(&policy);
    let verification = Verification {
        records: 0,
        problems: vec![],
        last_hash: None,
    };
    let report = build(&Input {
        policy_source: "curfew.toml",
        policy_sha256: "aa",
        policy: &policy,
        explanation: &explanation,
        audit_path: "audit.jsonl",
        entries: &[],
        verification: &verification,
        integrity: &Default::default(),
        since: None,
        generated_at: "2026-03-03T18:00:00Z".parse().unwrap(),
    });
    let md = report.to_markdown();
    let html = report.to_html().unwrap();
    assert!(md.contains("- **Warning:** 2 minutes before the session is ended, the agent records a `session_warned` audit record (no [notify] hook is configured). The session's user is not told"), "{md}");
    assert!(html.contains("<dt>Warning</dt><dd>2 minutes before the session is ended, the agent records a <code>session_warned</code> audit record (no [notify] hook is configured). The session&#39;s user is not told"), "{html}");
    assert!(
        md.contains("- **Enforced by:** NOT ENFORCED: no running curfew component"),
        "{md}"
    );
    assert!(
        html.contains("<dt>Enforced by</dt><dd><strong>NOT ENFORCED: no running curfew component"),
        "{html}"
    );
    assert!(
        md.contains("- **Controls:** `NIST-800-171-3.1.11` (NIST SP 800-171 Rev. 2 3.1.11"),
        "{md}"
    );
    assert!(
        html.contains("<dt>Controls</dt><dd><code>NIST-800-171-3.1.11</code>"),
        "{html}"
    );
    for text in [&md, &html] {
        assert!(!text.contains("gateway only"), "{text}");
    }
    assert!(md.contains("- **Enforced by:** the curfew agent"), "{md}");
    assert!(!md.contains("before the session is ended\n"), "{md}");
}
