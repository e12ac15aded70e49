//! `[notify]`: a command that cannot be split into words, or a webhook that is not an HTTP URL,
//! is refused where it is written.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_policy::parse_policy;

fn errors(text: &str) -> Vec<String> {
    match parse_policy("t.toml", text, jiff::tz::db()) {
        Ok(_) => panic!("expected errors, the policy parsed"),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    }
}

const RULE: &str = "[[rule]]\nname = \"a\"\nidle = \"5m\"\nwarn = \"1m\"\n\n";

#[test]
fn a_command_with_an_unclosed_quote_is_refused_at_its_position() {
    let all = errors(&format!(
        "{RULE}[notify]\ncommand = \"/usr/local/bin/page 'on call\"\n"
    ));
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].starts_with("t.toml:7:11: "), "{}", all[0]);
    assert!(all[0].contains("cannot be split into words"), "{}", all[0]);
}

#[test]
fn a_command_with_quoted_words_and_an_https_webhook_are_accepted() {
    let parsed = parse_policy(
        "t.toml",
        &format!(
            "{RULE}[notify]\ncommand = \"/usr/local/bin/page --to 'on call'\"\nwebhook = \"https://hooks.example.com/T0/x\"\n"
        ),
        jiff::tz::db(),
    )
    .unwrap();
    assert_eq!(
        parsed.policy.notify.command.as_deref(),
        Some("/usr/local/bin/page --to 'on call'")
    );
    assert!(parsed.policy.notify.webhook.is_some());
    let all = errors(&format!("{RULE}[notify]\nwebhook = \"ftp://x/\"\n"));
    assert!(
        all[0].contains("must be an http:// or https:// URL"),
        "{all:#?}"
    );
    let all = errors(&format!(
        "{RULE}[notify]\nwebhook = \"https://bot:S3CRET@hooks.example.com/\"\n"
    ));
    assert!(
        all[0].contains("must not hold a user name or password"),
        "{all:#?}"
    );
    assert!(!all[0].contains("S3CRET"), "{all:#?}");
}
