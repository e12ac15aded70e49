//! Target URLs through the parser: kept as text without validators, checked by the validator of
//! their scheme with them, and every refusal or warning reported at the URL's `file:line:col`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_policy::{UrlValidator, ValidUrl, parse_policy, parse_policy_with};

/// A second database's URLs, as a MariaDB adapter will bring them: `mysql://user@host`, with a
/// warning for `ssl=off` and a refusal for a URL without a user.
struct MysqlUrls;

impl UrlValidator for MysqlUrls {
    fn schemes(&self) -> &[&str] {
        &["mysql"]
    }

    fn validate(&self, text: &str) -> Result<ValidUrl, String> {
        let rest = text.strip_prefix("mysql://").ok_or("not mysql://")?;
        let (user, host) = rest.split_once('@').ok_or("the MySQL URL names no user")?;
        let warnings = if host.ends_with("?ssl=off") {
            vec!["connects without TLS".to_owned()]
        } else {
            Vec::new()
        };
        Ok(ValidUrl {
            login_role: user.to_owned(),
            warnings,
            limits: curfew_policy::AdapterLimits::default(),
        })
    }
}

fn target(url: &str) -> String {
    format!("[[target]]\nname = \"db\"\nurl = \"{url}\"\n")
}

fn errors(text: &str, validators: &[&dyn UrlValidator]) -> Vec<String> {
    match parse_policy_with("t.toml", text, jiff::tz::db(), validators) {
        Ok(_) => panic!("expected errors for {text}"),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    }
}

#[test]
fn without_validators_the_url_is_text_at_its_place() {
    let text = target("host=db1 user=agent");
    let parsed = parse_policy("t.toml", &text, jiff::tz::db()).unwrap();
    let url = &parsed.policy.targets[0].url;
    assert_eq!(url.text, "host=db1 user=agent");
    assert_eq!(&text[url.span.clone()], "\"host=db1 user=agent\"");
    assert_eq!(url.login_role, None);
    assert!(parsed.warnings.is_empty(), "{:#?}", parsed.warnings);
}

#[test]
fn the_validator_of_the_scheme_gives_the_login_role_and_warnings() {
    let parsed = parse_policy_with(
        "t.toml",
        &target("mysql://curfew@db1?ssl=off"),
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS, &MysqlUrls],
    )
    .unwrap();
    assert_eq!(
        parsed.policy.targets[0].url.login_role.as_deref(),
        Some("curfew")
    );
    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["t.toml:3:7: warning: target \"db\" connects without TLS"]
    );
    let postgres = parse_policy_with(
        "t.toml",
        &target("postgresql://db1/postgres?user=carol&sslmode=verify-full"),
        jiff::tz::db(),
        &[&MysqlUrls, &curfew_postgres::POSTGRES_URLS],
    )
    .unwrap();
    assert_eq!(
        postgres.policy.targets[0].url.login_role.as_deref(),
        Some("carol")
    );
}

#[test]
fn a_refusal_is_reported_at_the_url() {
    assert_eq!(
        errors(&target("mysql://db1"), &[&MysqlUrls]),
        ["t.toml:3:7: `url` in target \"db\": the MySQL URL names no user"]
    );
}

#[test]
fn a_scheme_no_validator_reads_is_refused() {
    // One validator: its own refusal (it knows what people mistake for its URLs).
    assert_eq!(
        errors(&target("mysql://a@db1"), &[&curfew_postgres::POSTGRES_URLS]),
        [
            "t.toml:3:7: `url` in target \"db\": connection URL must start with postgresql:// (got \"mysql://a@db1\")"
        ]
    );
    // Several: every scheme accepted.
    assert_eq!(
        errors(
            &target("redis://a@db1"),
            &[&curfew_postgres::POSTGRES_URLS, &MysqlUrls]
        ),
        [
            "t.toml:3:7: `url` in target \"db\": connection URL must start with one of postgresql://, postgres://, mysql://"
        ]
    );
    // None registered: nothing can read it.
    assert_eq!(
        errors(&target("postgresql://a@db1"), &[]),
        [
            "t.toml:3:7: `url` in target \"db\": no database adapter is registered to read connection URLs"
        ]
    );
}

/// An adapter that can neither lock logins nor read roles, as the MariaDB one today.
struct LimitedUrls;

impl UrlValidator for LimitedUrls {
    fn schemes(&self) -> &[&str] {
        &["limited"]
    }

    fn validate(&self, _text: &str) -> Result<ValidUrl, String> {
        Ok(ValidUrl {
            login_role: "agent".to_owned(),
            warnings: Vec::new(),
            limits: curfew_policy::AdapterLimits {
                no_login_locks: Some("cannot lock logins here"),
                no_role_memberships: Some("reads no roles"),
            },
        })
    }
}

/// Regression: a SIGHUP reload skipped the CLI's start-up refusal of lock rules on MariaDB: the
/// adapter's limits are checked where every load (start, SIGHUP, `validate`) checks URLs.
#[test]
fn what_an_adapter_cannot_do_is_refused_or_warned_about_at_its_url() {
    let lock_rule = "[[rule]]\nname = \"night\"\nallow = [\"Mon-Fri 07:00-19:00\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"kim\"]\n";
    let text = format!("{}\n{lock_rule}", target("limited://db1"));
    assert_eq!(
        errors(&text, &[&LimitedUrls]),
        [
            "t.toml:3:7: target \"db\" cannot lock logins here (rule \"night\" has lock_logins = true); keep lock rules to policies whose targets can lock logins"
        ]
    );
    // The same rule reporting only, and a member_of rule: accepted, the latter with a warning.
    let report = lock_rule.replace(
        "lock_logins = true\n",
        "lock_logins = true\naction = \"report\"\n",
    );
    let members = "[[rule]]\nname = \"idle\"\nidle = \"15m\"\nmember_of = [\"humans\"]\n";
    let parsed = parse_policy_with(
        "t.toml",
        &format!("{}\n{report}\n{members}", target("limited://db1")),
        jiff::tz::db(),
        &[&LimitedUrls],
    )
    .unwrap();
    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "t.toml:3:7: warning: target \"db\" reads no roles: rule \"idle\"'s `member_of` matches no session there"
        ]
    );
    // A PostgreSQL target has no such limits.
    let pg = target("postgresql://curfew@db1/postgres?sslmode=verify-full");
    assert!(
        parse_policy_with(
            "t.toml",
            &format!("{pg}\n{lock_rule}"),
            jiff::tz::db(),
            &[&curfew_postgres::POSTGRES_URLS]
        )
        .is_ok()
    );
}
