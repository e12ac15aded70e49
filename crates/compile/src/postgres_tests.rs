//! Unit tests of the PostgreSQL mapping.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_support::{policy, prose};

fn only_rule(text: &str) -> Mapping {
    let policy = policy(text);
    map_rule(&policy.rules[0], Margin::Fixed(std::time::Duration::ZERO))
}

fn unmapped(text: &str) -> String {
    match only_rule(text) {
        Mapping::Unmapped(why) => why,
        other => panic!("expected no mapping, got {other:?}"),
    }
}

/// The script with the limits themselves (no margin): these tests are about what maps and how;
/// the margin has tests of its own.
fn sql(text: &str) -> String {
    compile(
        &policy(text),
        "t.toml",
        "0",
        Margin::Fixed(std::time::Duration::ZERO),
    )
}

/// The position of `needle` in `haystack`, failing the test when absent.
fn at(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{haystack}"))
}

#[test]
fn idle_rules_map_to_the_timeouts() {
    assert_eq!(
        only_rule("[[rule]]\nname = \"a\"\nidle = \"15m\"\nroles = [\"kim\"]\n"),
        Mapping::Native {
            setting: Setting::IdleSession,
            amount: 900_000,
            value: "'15min'".into(),
            databases: None,
            backstop: None,
        }
    );
    assert_eq!(
        only_rule("[[rule]]\nname = \"a\"\nidle_in_transaction = \"90s\"\ndatabases = [\"app\"]\n"),
        Mapping::Native {
            setting: Setting::IdleInTransaction,
            amount: 90_000,
            value: "'90s'".into(),
            databases: Some(vec!["app".into()]),
            backstop: None,
        }
    );
}

#[test]
fn values_use_the_largest_exact_unit() {
    assert_eq!(duration_value(900_000), "'15min'");
    assert_eq!(duration_value(5_400_000), "'90min'");
    assert_eq!(duration_value(7_200_000), "'2h'");
    assert_eq!(duration_value(172_800_000), "'2d'");
    assert_eq!(duration_value(1_500), "'1500ms'");
}

#[test]
fn max_sessions_maps_to_connection_limit_and_says_how_it_differs() {
    assert_eq!(
        only_rule("[[rule]]\nname = \"a\"\nmax_sessions = 2\nroles = [\"analyst_*\"]\n"),
        Mapping::Native {
            setting: Setting::ConnectionLimit,
            amount: 2,
            value: "2".into(),
            databases: None,
            backstop: None,
        }
    );
    let out = sql("[[rule]]\nname = \"a\"\nmax_sessions = 2\nroles = [\"analyst_*\"]\n");
    assert!(
        prose(&out)
            .contains("refuses a login beyond the limit instead of ending the newest session")
    );
    assert!(
        out.contains("CALL pg_temp.curfew_connection_limit('a', 2, roles => ARRAY['analyst_*']);")
    );
    let why = unmapped("[[rule]]\nname = \"a\"\nmax_sessions = 2\ndatabases = [\"app\"]\n");
    assert!(
        why.contains("counts a role's sessions in every database"),
        "{why}"
    );
}

#[test]
fn rules_without_a_native_equivalent_say_why() {
    let why = unmapped("[[rule]]\nname = \"a\"\nlifetime = \"12h\"\n");
    assert!(why.contains("no setting that limits how long a session stays connected"));
    let why = unmapped(
        "[[rule]]\nname = \"a\"\nallow = [\"Mon-Fri 07:00-19:00\"]\ntimezone = \"UTC\"\nlock_logins = true\n",
    );
    assert!(
        why.contains("time of day") && why.contains("disables the logins"),
        "{why}"
    );
    let why = unmapped(
        "[[rule]]\nname = \"a\"\naction = \"report\"\nviolations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\n",
    );
    assert!(why.starts_with("NOT ENFORCED"), "{why}");
    let why = unmapped("[[rule]]\nname = \"a\"\nidle = \"1m\"\naction = \"report\"\n");
    assert!(why.contains("report"), "{why}");
    let why = unmapped("[[rule]]\nname = \"a\"\nidle = \"1m\"\napplications = [\"psql\"]\n");
    assert!(why.contains("application name"), "{why}");
    let why = unmapped("[[rule]]\nname = \"a\"\nidle = \"1m\"\naddresses = [\"10.0.0.0/8\"]\n");
    assert!(why.contains("client address"), "{why}");
    let why = unmapped("[[rule]]\nname = \"a\"\nidle = \"30d\"\n");
    assert!(why.contains("2147483647 ms"), "{why}");
    // The reason is in the output, and no statement is.
    let out = sql("[[rule]]\nname = \"a\"\nlifetime = \"12h\"\n");
    assert!(prose(&out).contains("not expressible natively: PostgreSQL has no setting"));
    assert!(out.contains("Nothing to apply"), "{out}");
    assert!(!out.contains("BEGIN;") && !out.contains("CALL "), "{out}");
}

#[test]
fn the_output_warns_that_users_can_override_the_settings() {
    let out = sql("[[rule]]\nname = \"a\"\nidle = \"15m\"\nwarn = \"2m\"\n");
    let prose = prose(&out);
    assert!(
        prose.contains("any user can override them for their own session"),
        "{out}"
    );
    assert!(prose.contains("SET idle_session_timeout = 0"), "{out}");
    assert!(prose.contains("The rule's warn lead (2m) has no native equivalent; curfew's agent records a session_warned audit record then (the session's user is not told)."));
}

#[test]
fn the_strictest_limit_is_set_last() {
    let out = sql(
        "[[rule]]\nname = \"ten\"\nidle = \"10m\"\nmember_of = [\"humans\"]\n\n\
         [[rule]]\nname = \"five\"\nidle = \"5m\"\nroles = [\"analyst_*\"]\n\n\
         [[rule]]\nname = \"twenty\"\nidle = \"20m\"\n",
    );
    let twenty = at(&out, "CALL pg_temp.curfew_set('twenty'");
    let ten = at(&out, "CALL pg_temp.curfew_set('ten'");
    let five = at(&out, "CALL pg_temp.curfew_set('five'");
    assert!(twenty < ten && ten < five, "{out}");
    assert!(prose(&out).contains("the strictest (smallest) wins"));
    // A rule without a role scope covers every role: no roles/member_of arguments.
    assert!(out.contains("CALL pg_temp.curfew_set('twenty', 'idle_session_timeout', '20min');"));
}

#[test]
fn database_rules_use_in_database_and_keep_the_strictest() {
    let out = sql(
        "[[rule]]\nname = \"wide\"\nidle = \"5m\"\nmember_of = [\"humans\"]\n\n\
         [[rule]]\nname = \"app\"\nidle = \"10m\"\nmember_of = [\"humans\"]\ndatabases = [\"app*\"]\n",
    );
    let wide = at(
        &out,
        "CALL pg_temp.curfew_set('wide', 'idle_session_timeout', '5min', member_of => ARRAY['humans']);",
    );
    let app = at(
        &out,
        "CALL pg_temp.curfew_set('app', 'idle_session_timeout', '10min', member_of => ARRAY['humans'], databases => ARRAY['app*']);",
    );
    // The role-wide 5 minutes again in app*, after the database-specific 10 minutes.
    let again = at(
        &out,
        "CALL pg_temp.curfew_set('wide', 'idle_session_timeout', '5min', member_of => ARRAY['humans'], databases => ARRAY['app*']);",
    );
    assert!(wide < app && app < again, "{out}");
    assert!(prose(&out).contains("set again in databases \"app*\""));
    // A database-specific limit smaller than the role-wide one needs nothing more.
    let out = sql("[[rule]]\nname = \"wide\"\nidle = \"10m\"\n\n\
         [[rule]]\nname = \"app\"\nidle = \"5m\"\ndatabases = [\"app\"]\n");
    assert_eq!(
        out.matches("CALL pg_temp.curfew_set('wide'").count(),
        1,
        "{out}"
    );
}

#[test]
fn exemptions_are_left_out_or_switched_off() {
    let out = sql(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@db1/postgres\"\n\n\
         [exempt]\nroles = [\"postgres\"]\nmember_of = [\"dba*\"]\ndatabases = [\"maintenance\"]\napplications = [\"pg_dump\"]\n\n\
         [[rule]]\nname = \"a\"\nidle = \"15m\"\nmember_of = [\"humans\"]\n",
    );
    assert!(out.contains("unnest(ARRAY['postgres']::text[])"), "{out}");
    assert!(out.contains("unnest(ARRAY['dba*']::text[])"), "{out}");
    assert!(
        out.contains("r.rolname <> ALL (ARRAY['curfew_agent']::text[])"),
        "{out}"
    );
    let last = at(
        &out,
        "CALL pg_temp.curfew_set('[exempt] databases', 'idle_session_timeout', '0', member_of => ARRAY['humans'], databases => ARRAY['maintenance']);",
    );
    assert!(last > at(&out, "CALL pg_temp.curfew_set('a'"));
    assert!(
        prose(&out).contains("[exempt] applications \"pg_dump\": cannot be expressed natively")
    );
}

/// An `[[exempt]]` entry of several keys exempts some sessions of its roles only: the roles keep
/// their settings, and the script says so.
#[test]
fn a_combined_exemption_leaves_the_roles_their_settings_and_says_so() {
    let out = sql(
        "[[exempt]]\nroles = [\"backup\"]\napplications = [\"pg_dump\"]\n\n\
         [[exempt]]\nroles = [\"postgres\"]\n\n\
         [[rule]]\nname = \"a\"\nidle = \"15m\"\n",
    );
    assert!(out.contains("unnest(ARRAY['postgres']::text[])"), "{out}");
    assert!(!out.contains("ARRAY['backup']"), "{out}");
    assert!(
        prose(&out).contains(
            "[[exempt]] #1 (roles \"backup\" and applications \"pg_dump\"): cannot be expressed natively"
        ),
        "{}",
        prose(&out)
    );
}

#[test]
fn names_are_literals_and_comments_cannot_be_broken_out_of() {
    let out = sql(
        "[[rule]]\nname = \"evil\\nDROP TABLE t; --\"\nidle = \"1m\"\nroles = [\"o'brien \\\"x\\\" ü\"]\n",
    );
    assert!(out.contains("roles => ARRAY['o''brien \"x\" ü']"), "{out}");
    assert!(
        out.contains("CALL pg_temp.curfew_set('evil\\nDROP TABLE t; --'"),
        "{out}"
    );
    for line in out.lines() {
        assert!(!line.starts_with("DROP TABLE t"), "{out}");
    }
}

#[test]
fn the_dollar_quote_tag_avoids_names_that_contain_it() {
    let out = sql(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a%24curfew%24b@db1/postgres\"\n\n\
         [[rule]]\nname = \"a\"\nidle = \"1m\"\n",
    );
    assert!(out.contains("'a$curfew$b'"), "{out}");
    assert!(out.contains("LANGUAGE sql STABLE AS $curfew1$"), "{out}");
}

/// Issue 13: a native timeout equal to curfew's limit ends the session at the instant the agent
/// would, and the agent then records `no_longer_matched` instead of why it ended.
#[test]
fn timeouts_are_a_backstop_a_margin_above_the_limits() {
    let text = "[[rule]]\nname = \"a\"\nidle = \"15m\"\nroles = [\"kim\"]\n\n\
                [[rule]]\nname = \"b\"\nidle_in_transaction = \"5s\"\nroles = [\"kim\"]\n";
    let out = compile(&policy(text), "t.toml", "0", Margin::Default);
    // 15m + a tenth (90s); 5s + the 1-minute floor.
    assert!(
        out.contains(
            "CALL pg_temp.curfew_set('a', 'idle_session_timeout', '990s', roles => ARRAY['kim']);"
        ),
        "{out}"
    );
    assert!(
        out.contains("CALL pg_temp.curfew_set('b', 'idle_in_transaction_session_timeout', '65s', roles => ARRAY['kim']);"),
        "{out}"
    );
    assert!(
        prose(&out).contains("a backstop behind the agent (the rule's 15m plus a margin of 1m30s)"),
        "{}",
        prose(&out)
    );
    assert!(prose(&out).contains("Margin: each timeout is set above curfew's limit by the larger of 1 minute and a tenth of the limit"));
    let fixed = compile(
        &policy(text),
        "t.toml",
        "0",
        Margin::Fixed(std::time::Duration::from_secs(120)),
    );
    assert!(fixed.contains("'idle_session_timeout', '17min'"), "{fixed}");
    assert!(
        prose(&fixed).contains("by 2m (curfew compile --margin)"),
        "{}",
        prose(&fixed)
    );
}

#[test]
fn a_margin_past_the_largest_timeout_is_cut_to_fit() {
    let mapped = map_rule(
        &policy("[[rule]]\nname = \"a\"\nidle = \"24d\"\n").rules[0],
        Margin::Default,
    );
    let Mapping::Native {
        amount, backstop, ..
    } = mapped
    else {
        panic!("{mapped:?}")
    };
    assert_eq!(amount, i64::from(i32::MAX));
    assert!(
        backstop
            .unwrap()
            .contains("cut to PostgreSQL's largest value")
    );
}
