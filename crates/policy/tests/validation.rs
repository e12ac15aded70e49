//! Every validation error a policy author can make: the message, and the line:column it points at.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_policy::{Condition, Parsed, PolicyErrors, Severity, parse_policy_with};

/// A policy parsed as the binary parses it: target URLs checked by PostgreSQL's validator.
fn parse_policy(
    source: &str,
    text: &str,
    tzdb: &jiff::tz::TimeZoneDatabase,
) -> Result<Parsed, PolicyErrors> {
    parse_policy_with(source, text, tzdb, &[&curfew_postgres::POSTGRES_URLS])
}

/// The rendered errors for a policy text, as `validate` prints them.
fn errors(text: &str) -> Vec<String> {
    match parse_policy("t.toml", text, jiff::tz::db()) {
        Ok(p) => panic!(
            "expected errors, policy parsed with {} rules",
            p.policy.rules.len()
        ),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    }
}

/// The one error for a policy text.
fn error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "expected exactly one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

#[track_caller]
fn assert_error(text: &str, position: &str, fragment: &str) {
    let e = error(text);
    assert!(
        e.starts_with(&format!("t.toml:{position}: ")),
        "wrong position in {e:?}, want {position}"
    );
    assert!(e.contains(fragment), "{e:?} does not contain {fragment:?}");
}

#[test]
fn unknown_key_suggests_the_closest() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidel = \"5m\"\n",
        "3:1",
        "unknown key `idel` in rule \"a\"; did you mean `idle`?",
    );
    assert_error(
        "[agent]\nintervall = \"1s\"\n",
        "2:1",
        "unknown key `intervall` in [agent]; did you mean `interval`?",
    );
    assert_error(
        "[exempt]\nrole = [\"postgres\"]\n",
        "2:1",
        "did you mean `roles`?",
    );
    assert_error(
        "[agnet]\n",
        "1:2",
        "unknown key `agnet` in the policy; did you mean `agent`?",
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_keys() {
    assert_error(
        "[agent]\ncolour = \"red\"\n",
        "2:1",
        "expected one of: interval, audit_log, listen",
    );
}

#[test]
fn wrong_type() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = 15\n",
        "3:8",
        "`idle` in rule \"a\" must be a duration string like \"90s\", \"15m\" or \"1h30m\", not an integer",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\nroles = \"kim\"\n",
        "4:9",
        "must be a list of role names or patterns (\"analyst_*\"), not a string; write roles = [\"kim\"]",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nallow = [\"Mon 07:00-19:00\"]\ntimezone = \"UTC\"\nlock_logins = \"yes\"\n",
        "5:15",
        "`lock_logins` in rule \"a\" must be true or false, not a string",
    );
    assert_error(
        "rule = 3\n",
        "1:8",
        "`rule` must be an array of tables: write each one as [[rule]]",
    );
}

#[test]
fn bad_duration() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"15 minutes\"\n",
        "3:8",
        "`idle` in rule \"a\": \"15 minutes\" is not a duration; expected a number and a unit",
    );
}

#[test]
fn zero_or_negative_duration() {
    assert_error(
        "[[rule]]\nname = \"a\"\nlifetime = \"0s\"\n",
        "3:12",
        "a duration must be longer than zero, got \"0s\"",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle_in_transaction = \"-5m\"\n",
        "3:23",
        "a duration must be positive, not negative \"-5m\"",
    );
}

#[test]
fn unknown_time_zone() {
    assert_error(
        "[[rule]]\nname = \"a\"\nallow = [\"Mon-Fri 07:00-19:00\"]\ntimezone = \"America/New_Yrok\"\n",
        "4:12",
        "unknown time zone \"America/New_Yrok\" in rule \"a\"; did you mean \"America/New_York\"?",
    );
}

#[test]
fn malformed_window() {
    assert_error(
        "[[rule]]\nname = \"a\"\ntimezone = \"UTC\"\nallow = [\"Mon-Fri 07:00-19:00\", \"Mno 08:00-12:00\"]\n",
        "4:33",
        "\"Mno\" in window \"Mno 08:00-12:00\" is not a day (did you mean \"mon\"?)",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\ntimezone = \"UTC\"\nallow = [\"weekdays 7am-7pm\"]\n",
        "4:10",
        "\"7am\" in window \"weekdays 7am-7pm\" is not a time of day; expected HH:MM",
    );
}

#[test]
fn window_with_same_start_and_end() {
    assert_error(
        "[[rule]]\nname = \"a\"\ntimezone = \"UTC\"\nallow = [\"daily 08:00-08:00\"]\n",
        "4:10",
        "window \"daily 08:00-08:00\" starts and ends at the same time",
    );
}

#[test]
fn malformed_cidr() {
    assert_error(
        "[exempt]\naddresses = [\"10.20.0.0/16\", \"10.20.0/16\"]\n",
        "2:30",
        "\"10.20.0/16\" is not an address block; expected CIDR notation",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\naddresses = [\"10.20.1.0/16\"]\n",
        "4:14",
        "\"10.20.1.0/16\" has host bits set; did you mean \"10.20.0.0/16\"?",
    );
}

#[test]
fn duplicate_rule_name() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\n\n[[rule]]\nname = \"a\"\nlifetime = \"1h\"\n",
        "6:8",
        "duplicate rule name \"a\"; first defined at line 2",
    );
}

#[test]
fn rule_with_no_condition() {
    assert_error(
        "[[rule]]\nname = \"a\"\nroles = [\"kim\"]\n",
        "1:1",
        "rule \"a\" has no condition; add exactly one of idle, idle_in_transaction, lifetime, allow, deny, max_sessions, violations",
    );
}

#[test]
fn rule_with_two_conditions() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\nlifetime = \"1h\"\n",
        "4:1",
        "rule \"a\" has two conditions, `idle` and `lifetime`; each rule has exactly one",
    );
}

#[test]
fn lock_logins_needs_a_window_rule() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\nlock_logins = true\n",
        "4:15",
        "`lock_logins` in rule \"a\" only applies to `allow` or `deny` rules",
    );
}

#[test]
fn lock_logins_is_scoped_by_role_only() {
    assert_error(
        "[[rule]]\nname = \"a\"\nallow = [\"Mon 07:00-19:00\"]\ntimezone = \"UTC\"\nlock_logins = true\ndatabases = [\"sales\"]\n",
        "6:1",
        "rule \"a\" has lock_logins, which disables a role's login everywhere, so it can be scoped only by `roles` and `member_of`, not `databases`",
    );
}

#[test]
fn standbys_take_lock_state_from_a_primary() {
    let two = "[[target]]\nname = \"p1\"\nurl = \"postgresql://a@h1/d?sslmode=disable\"\n[[target]]\nname = \"p2\"\nurl = \"postgresql://a@h2/d?sslmode=disable\"\n";
    assert_error(
        &format!(
            "{two}[[target]]\nname = \"s\"\nurl = \"postgresql://a@h3/d?sslmode=disable\"\nstandby = true\n"
        ),
        "7:1",
        "standby target \"s\" must name its primary, e.g. primary = \"p1\"",
    );
    assert_error(
        &format!(
            "{two}[[target]]\nname = \"s\"\nurl = \"postgresql://a@h3/d?sslmode=disable\"\nstandby = true\nprimary = \"p3\"\n"
        ),
        "11:11",
        "standby target \"s\" names primary \"p3\", which is not a primary target; expected one of: p1, p2",
    );
    assert_error(
        "[[target]]\nname = \"p\"\nurl = \"postgresql://a@h/d?sslmode=disable\"\nprimary = \"x\"\n",
        "4:11",
        "`primary` in target \"p\" only applies to a standby (standby = true)",
    );
    let one = parse_policy(
        "t.toml",
        "[[target]]\nname = \"p\"\nurl = \"postgresql://a@h/d?sslmode=disable\"\n[[target]]\nname = \"s\"\nurl = \"postgresql://a@h2/d?sslmode=disable\"\nstandby = true\n",
        jiff::tz::db(),
    )
    .unwrap();
    assert_eq!(one.policy.targets[1].primary.as_deref(), Some("p"));
}

#[test]
fn warn_must_be_shorter_than_the_limit() {
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"15m\"\nwarn = \"15m\"\n",
        "4:8",
        "`warn` in rule \"a\" is 15m, which is not shorter than the `idle` limit 15m",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nmax_sessions = 2\nwarn = \"1m\"\n",
        "4:8",
        "`warn` in rule \"a\" has no meaning for a `max_sessions` rule",
    );
}

#[test]
fn deny_range_that_ends_before_it_starts() {
    assert_error(
        "[[rule]]\nname = \"a\"\ntimezone = \"UTC\"\ndeny = [\"2027-01-01 02:00 - 2026-12-31 22:00\"]\n",
        "4:9",
        "window \"2027-01-01 02:00 - 2026-12-31 22:00\" ends before it starts",
    );
}

#[test]
fn empty_allow_list() {
    assert_error(
        "[[rule]]\nname = \"a\"\ntimezone = \"UTC\"\nallow = []\n",
        "4:9",
        "`allow` in rule \"a\" is empty: an empty allow list would end every session at all times",
    );
}

#[test]
fn window_rule_needs_a_time_zone() {
    assert_error(
        "[[rule]]\nname = \"a\"\nallow = [\"Mon-Fri 07:00-19:00\"]\n",
        "3:1",
        "rule \"a\" has `allow` windows but no `timezone`",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\ntimezone = \"UTC\"\n",
        "4:12",
        "`timezone` in rule \"a\" only applies to `allow` or `deny` windows",
    );
}

#[test]
fn other_rule_mistakes() {
    assert_error(
        "[[rule]]\nidle = \"5m\"\n",
        "1:1",
        "[[rule]] #1 has no `name`",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\naction = \"terminat\"\n",
        "4:10",
        "`action` in rule \"a\" is \"terminat\"; did you mean \"terminate\"? expected \"terminate\" or \"report\"",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nmax_sessions = 0\n",
        "3:16",
        "`max_sessions` in rule \"a\" is 0; it must be at least 1",
    );
    assert_error(
        "[[rule]]\nname = \"a\"\nidle = \"5m\"\nroles = []\n",
        "4:9",
        "`roles` in rule \"a\" is empty, so it would match nothing",
    );
    assert_error(
        "[[rule]]\nname = \"p\"\naction = \"report\"\nviolations = { sqlstates = [\"4250\"], count = 3, within = \"10m\" }\n",
        "4:29",
        "\"4250\" in `violations` of rule \"p\" is not a SQLSTATE",
    );
    assert_error(
        "[[rule]]\nname = \"p\"\naction = \"report\"\nviolations = { sqlstates = [\"42501\"], count = 3 }\n",
        "4:14",
        "`violations` of rule \"p\" has no `within`",
    );
}

#[test]
fn target_mistakes() {
    assert_error(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://agent:hunter2@db1/postgres\"\n",
        "3:7",
        "`url` in target \"db\": the connection URL contains a password; remove it and name a file holding it with `password_file`",
    );
    assert_error(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://agent@db1/postgres?password=x\"\n",
        "3:7",
        "the connection URL contains a password",
    );
    assert_error(
        "[[target]]\nname = \"db\"\nurl = \"host=db1 user=agent\"\n",
        "3:7",
        "`url` in target \"db\": connection URL must start with postgresql://",
    );
    assert_error(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a@h/d?sslmode=verify_full\"\n",
        "3:7",
        "bad value for sslmode: \"verify_full\"; expected disable, prefer, require, verify-ca or verify-full",
    );
    assert_error(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a@h/d?sslrotcert=/ca.pem\"\n",
        "3:7",
        "unknown connection parameter \"sslrotcert\"",
    );
    assert_error(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a@h/d\"\n[[target]]\nname = \"db\"\nurl = \"postgresql://a@h2/d\"\n",
        "5:8",
        "duplicate target name \"db\"; first defined at line 2",
    );
    assert_error(
        "[[target]]\nname = \"db\"\n",
        "1:1",
        "[[target]] #1 has no `url`",
    );
}

#[test]
fn weak_tls_is_a_warning_at_the_url() {
    let parsed = parse_policy(
        "t.toml",
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a@db1/postgres?sslmode=require\"\n",
        jiff::tz::db(),
    )
    .unwrap();
    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("t.toml:3:7: warning: target \"db\" uses sslmode=require")),
        "{warnings:#?}"
    );
}

#[test]
fn agent_interval_has_a_floor() {
    assert_error(
        "[agent]\ninterval = \"10ms\"\n",
        "2:12",
        "it must be at least 100ms",
    );
}

#[test]
fn agent_listen_is_an_address_and_a_port() {
    assert_error(
        "[agent]\nlisten = \"127.0.0.1\"\n",
        "2:10",
        "must be an IP address and a port, not \"127.0.0.1\"; add a port: \"127.0.0.1:9187\"",
    );
    assert_error(
        "[agent]\nlisten = \"localhost:9187\"\n",
        "2:10",
        "write the address, not a name",
    );
    assert_error("[agent]\nlisten = 9187\n", "2:10", "an address string");
    let parsed = parse_policy(
        "t.toml",
        "[agent]\nlisten = \"[::1]:9187\"\n",
        jiff::tz::db(),
    )
    .unwrap();
    assert_eq!(
        parsed.policy.agent.listen,
        Some("[::1]:9187".parse().unwrap())
    );
    assert!(
        parsed
            .warnings
            .iter()
            .all(|w| !w.message.contains("listen"))
    );
}

#[test]
fn agent_listen_beyond_loopback_is_warned_about() {
    let parsed = parse_policy(
        "t.toml",
        "[agent]\nlisten = \"0.0.0.0:9187\"\n",
        jiff::tz::db(),
    )
    .unwrap();
    assert!(
        parsed
            .warnings
            .iter()
            .any(|w| w.message.contains("not loopback")),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn syntax_errors_are_located() {
    let e = error("[[rule]]\nname = \"a\nidle = \"5m\"\n");
    assert!(e.starts_with("t.toml:2:"), "{e}");
    assert!(e.contains("TOML syntax"), "{e}");
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = "\
[agent]
interval = \"0s\"

[[rule]]
name = \"a\"
idel = \"5m\"

[[rule]]
name = \"b\"
timezone = \"Mars/Olympus\"
allow = [\"Mon 08:00-08:00\"]
";
    let all = errors(text);
    let positions: Vec<&str> = all.iter().map(|e| e.split(": ").next().unwrap()).collect();
    assert_eq!(
        positions,
        // No "has no condition" for rule a: the unknown `idel` already says what is wrong.
        ["t.toml:2:12", "t.toml:6:1", "t.toml:10:12", "t.toml:11:10"],
        "{all:#?}"
    );
}

#[test]
fn the_design_example_parses() {
    let text = include_str!("../../../examples/curfew.toml");
    let parsed = parse_policy("examples/curfew.toml", text, jiff::tz::db())
        .unwrap_or_else(|e| panic!("{e}"));
    let p = parsed.policy;
    assert!(
        parsed
            .warnings
            .iter()
            .all(|w| w.severity == Severity::Warning)
    );
    assert!(p.rules.len() >= 6);
    assert!(
        p.rules
            .iter()
            .any(|r| matches!(r.condition, Condition::Allow(_)) && r.lock_logins)
    );
}

#[test]
fn an_empty_policy_parses_but_misses_a_rule_and_a_target() {
    let parsed = parse_policy("t.toml", "", jiff::tz::db()).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(
        parsed.policy.missing(),
        [curfew_policy::Missing::Rule, curfew_policy::Missing::Target]
    );
    let shown = curfew_policy::Missing::Rule
        .diagnostic("t.toml", curfew_policy::Severity::Error)
        .to_string();
    assert_eq!(
        shown,
        "t.toml:1:1: the policy defines no [[rule]], so it would end no session; add at least one [[rule]]"
    );
    let whole = parse_policy(
        "t.toml",
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a@h/d?sslmode=verify-full\"\n[[rule]]\nname = \"i\"\nidle = \"1m\"\n",
        jiff::tz::db(),
    )
    .unwrap();
    assert!(whole.policy.missing().is_empty());
}

#[test]
fn verify_test_limit_is_a_positive_duration() {
    assert_error(
        "[verify]\ntest_limit = \"0s\"\n",
        "2:14",
        "longer than zero",
    );
    assert_error("[verify]\ntest_limit = 5\n", "2:14", "a duration string");
    assert_error("[verify]\ncanary = \"x\"\n", "2:1", "test_limit");
}

#[test]
fn a_heartbeat_shorter_than_the_interval_is_refused_and_the_default_follows_a_long_interval() {
    let text = "[agent]\ninterval = \"5s\"\nheartbeat = \"2s\"\n";
    let errors = curfew_policy::parse_policy("t.toml", text, jiff::tz::db()).unwrap_err();
    let shown = errors.to_string();
    assert!(shown.contains("t.toml:3:13"), "{shown}");
    assert!(shown.contains("shorter than `interval`"), "{shown}");

    let text = "[agent]\ninterval = \"2m\"\n";
    let parsed = curfew_policy::parse_policy("t.toml", text, jiff::tz::db()).unwrap();
    assert_eq!(parsed.policy.agent.heartbeat.to_string(), "2m");
    let parsed = curfew_policy::parse_policy("t.toml", "", jiff::tz::db()).unwrap();
    assert_eq!(parsed.policy.agent.heartbeat.to_string(), "1m");
}
