//! `curfew explain`: what it says happens to a user is what the running components do.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_policy::explain::explain;
use curfew_policy::parse_policy;

fn markdown(text: &str) -> String {
    let p = parse_policy("t.toml", text, jiff::tz::db()).unwrap().policy;
    explain(&p).to_markdown("t.toml", None)
}

/// Every line that mentions a warning.
fn warn_lines(md: &str) -> Vec<&str> {
    md.lines()
        .filter(|l| l.to_lowercase().contains("warn"))
        .collect()
}

#[test]
fn a_warning_is_described_as_a_record_and_a_hook_not_a_message_to_the_user() {
    let md = markdown("[[rule]]\nname = \"a\"\nidle = \"15m\"\nwarn = \"2m\"\n");
    let lines = warn_lines(&md);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = lines[0];
    assert!(line.contains("2 minutes before the session is ended, the agent records a `session_warned` audit record (no [notify] hook is configured)"), "{line}");
    assert!(line.contains("The session's user is not told"), "{line}");
    // Nothing promises the user a notice.
    for promise in ["notice", "the user is warned", "users are warned"] {
        assert!(!md.to_lowercase().contains(promise), "{promise}: {md}");
    }
}

#[test]
fn a_warning_names_the_hooks_configured() {
    let md = markdown(
        "[notify]\ncommand = \"/usr/local/bin/page-dba\"\nwebhook = \"https://hooks.example/x\"\n[[rule]]\nname = \"a\"\nidle = \"15m\"\nwarn = \"2m\"\naction = \"report\"\n",
    );
    let line = warn_lines(&md)[0];
    assert!(
        line.contains("before the rule would end the session, the agent records a `session_warned` audit record and runs the [notify] command and posts to the [notify] webhook"),
        "{line}"
    );
}

#[test]
fn no_warning_no_warning_line() {
    let md = markdown("[[rule]]\nname = \"a\"\nidle = \"15m\"\n");
    assert!(warn_lines(&md).is_empty(), "{md}");
}

#[test]
fn metadata_and_controls_are_shown() {
    let md = markdown(
        "[policy]\nowner = \"DBA team\"\napproved_by = \"J. Smith\"\nversion = \"3\"\neffective = \"2026-01-15\"\nreview_by = \"2027-01-15\"\nimplements = \"SSP AC-12\"\n[[rule]]\nname = \"a\"\nidle = \"15m\"\ncontrols = [\"NIST-800-171-3.1.11\", \"local:SEC-7\"]\n",
    );
    for line in [
        "- **Owner:** DBA team",
        "- **Approved by:** J. Smith",
        "- **Version:** 3",
        "- **Effective:** 2026-01-15",
        "- **Review by:** 2027-01-15",
        "- **Implements:** SSP AC-12",
        "- **Controls:** `NIST-800-171-3.1.11` (NIST SP 800-171 Rev. 2 3.1.11: terminate (automatically) a user session after a defined condition); `local:SEC-7` (SEC-7 (the organization's own requirement))",
    ] {
        assert!(md.contains(line), "missing {line:?} in {md}");
    }
    let bare = markdown("[[rule]]\nname = \"a\"\nidle = \"15m\"\n");
    assert!(
        bare.contains("does not say who owns or approved it"),
        "{bare}"
    );
}

#[test]
fn the_gateway_is_mentioned_when_configured() {
    let rule = "[[rule]]\nname = \"a\"\nidle = \"15m\"\n";
    let target = "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@db1/postgres\"\n";
    assert!(!markdown(&format!("{rule}{target}")).contains("gateway"));
    let md = markdown(&format!(
        "{rule}{target}[gateway]\nlisten = [\"127.0.0.1:6432\", \"[::1]:6432\"]\nserve_members_of = \"app\"\n"
    ));
    assert!(
        md.contains("Clients may also connect through the curfew gateway on 127.0.0.1:6432, [::1]:6432, which forwards each session to target \"db\", serving the members of role \"app\" except superusers."),
        "{md}"
    );
}
