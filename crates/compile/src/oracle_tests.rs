//! Unit tests of the Oracle mapping.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_support::{policy, prose};

fn only_rule(text: &str) -> Mapping {
    map_rule(&policy(text).rules[0], Margin::Default)
}

fn sql(text: &str) -> String {
    compile(&policy(text), "t.toml", "0", Margin::Default)
}

fn limit(text: &str) -> Limit {
    text.parse().unwrap()
}

#[test]
fn minutes_are_rounded_up() {
    assert_eq!(minutes_up(limit("15m").to_std()), (15, true));
    assert_eq!(minutes_up(limit("90s").to_std()), (2, false));
    assert_eq!(minutes_up(limit("1ms").to_std()), (1, false));
    assert_eq!(minutes_up(limit("60001ms").to_std()), (2, false));
    assert_eq!(minutes_up(limit("12h").to_std()), (720, true));
}

#[test]
fn rounding_is_said_where_it_happens() {
    assert_eq!(
        only_rule("[[rule]]\nname = \"a\"\nidle = \"90s\"\nroles = [\"kim\"]\n"),
        Mapping::Native {
            resource: Resource::IdleTime,
            amount: 2,
            rounding: Some("1m30s rounded up to 2 minutes".into()),
        }
    );
    let out = sql("[[rule]]\nname = \"a\"\nidle = \"90s\"\nroles = [\"kim\"]\n");
    assert!(out.contains("  IDLE_TIME 2\n"), "{out}");
    assert!(
        out.contains("--   IDLE_TIME 2: rule \"a\" (1m30s rounded up to 2 minutes)."),
        "{out}"
    );
    assert!(prose(&out).contains("Every limit is rounded UP to the next whole minute"));
    let out = sql("[[rule]]\nname = \"a\"\nlifetime = \"12h\"\nroles = [\"kim\"]\n");
    assert!(out.contains("  CONNECT_TIME 720\n"), "{out}");
    assert!(prose(&out).contains("CONNECT_TIME 720 (exact)"), "{out}");
}

#[test]
fn conditions_without_a_profile_limit_say_why() {
    let why = |text: &str| match only_rule(text) {
        Mapping::Unmapped(why) => why,
        other => panic!("expected no mapping, got {other:?}"),
    };
    assert!(
        why("[[rule]]\nname = \"a\"\nidle_in_transaction = \"5m\"\n")
            .contains("no limit on time spent idle inside a transaction")
    );
    assert!(
        why("[[rule]]\nname = \"a\"\ndeny = [\"daily 01:00-02:00\"]\ntimezone = \"UTC\"\n")
            .contains("no time-of-day")
    );
    assert!(
        why("[[rule]]\nname = \"a\"\nidle = \"5m\"\ndatabases = [\"app\"]\n")
            .contains("scoped by database")
    );
    assert!(why("[[rule]]\nname = \"a\"\nidle = \"5m\"\naction = \"report\"\n").contains("report"));
    let out = sql("[[rule]]\nname = \"a\"\nidle_in_transaction = \"5m\"\n");
    assert!(out.contains("No profile"), "{out}");
    assert!(
        !out.contains("\nCREATE PROFILE") && !out.contains("\nALTER SYSTEM"),
        "{out}"
    );
    // The sqlnet.ora lines are there in any case.
    assert!(out.contains("-- SQLNET.EXPIRE_TIME = 10\n"), "{out}");
}

#[test]
fn max_sessions_is_sessions_per_user() {
    let out = sql("[[rule]]\nname = \"a\"\nmax_sessions = 2\nroles = [\"kim\"]\n");
    assert!(out.contains("  SESSIONS_PER_USER 2;\n"), "{out}");
    assert!(prose(&out).contains("refuses a session beyond the limit at login"));
}

#[test]
fn named_users_get_their_profile_and_the_strictest_limit_wins() {
    let out = sql("[exempt]\nroles = [\"sys_*\"]\n\n\
         [[rule]]\nname = \"ten\"\nidle = \"10m\"\nroles = [\"appuser\", \"sys_x\"]\n\n\
         [[rule]]\nname = \"five\"\nidle = \"5m\"\nroles = [\"appuser\", \"sys_x\"]\n");
    assert!(
        out.contains("CREATE PROFILE \"CURFEW_1\" LIMIT\n  IDLE_TIME 5\n"),
        "{out}"
    );
    assert!(
        out.contains("ALTER USER \"appuser\" PROFILE \"CURFEW_1\";\n"),
        "{out}"
    );
    assert!(!out.contains("ALTER USER \"sys_x\""), "{out}");
    assert!(prose(&out).contains("\"sys_x\" is exempt"), "{out}");
}

#[test]
fn overlapping_scopes_get_a_combined_profile() {
    let out = sql(
        "[[rule]]\nname = \"idle\"\nidle = \"15m\"\nmember_of = [\"humans\"]\n\n\
         [[rule]]\nname = \"one\"\nmax_sessions = 1\nroles = [\"analyst_*\"]\n\n\
         [[rule]]\nname = \"app\"\nmax_sessions = 20\nroles = [\"appuser\"]\n",
    );
    for name in [
        "CURFEW_1",
        "CURFEW_2",
        "CURFEW_3",
        "CURFEW_1_2",
        "CURFEW_1_3",
        "CURFEW_2_3",
        "CURFEW_1_2_3",
    ] {
        assert!(
            out.contains(&format!("CREATE PROFILE \"{name}\" LIMIT")),
            "{out}"
        );
    }
    assert!(
        out.contains(
            "CREATE PROFILE \"CURFEW_1_2\" LIMIT\n  IDLE_TIME 15\n  CONNECT_TIME DEFAULT\n  SESSIONS_PER_USER 1;"
        ),
        "{out}"
    );
    // Both session limits apply to a user in scopes 2 and 3: the smaller.
    assert!(
        out.contains("CREATE PROFILE \"CURFEW_2_3\" LIMIT\n  IDLE_TIME DEFAULT\n  CONNECT_TIME DEFAULT\n  SESSIONS_PER_USER 1;"),
        "{out}"
    );
    assert!(
        out.contains("ALTER USER \"appuser\" PROFILE \"CURFEW_3\";"),
        "{out}"
    );
    assert!(
        prose(&out).contains("If \"appuser\" is also in scope 1"),
        "{out}"
    );
    assert!(
        prose(&out).contains("username LIKE 'analyst\\_%' ESCAPE '\\'"),
        "{out}"
    );
}

#[test]
fn many_scopes_get_one_profile_each() {
    let rules: String = (0..5)
        .map(|i| {
            format!(
                "[[rule]]\nname = \"r{i}\"\nidle = \"{}m\"\nroles = [\"u{i}\"]\n\n",
                i + 1
            )
        })
        .collect();
    let out = sql(&rules);
    assert_eq!(out.matches("\nCREATE PROFILE").count(), 5, "{out}");
    assert!(prose(&out).contains("There are 5 scopes"), "{out}");
    assert!(
        out.contains("ALTER USER \"u4\" PROFILE \"CURFEW_5\";"),
        "{out}"
    );
}

#[test]
fn names_oracle_cannot_hold_are_not_used() {
    let out = sql("[[rule]]\nname = \"a\"\nidle = \"5m\"\nroles = [\"a\\\"b\", \"o'brien ü\"]\n");
    assert!(!out.contains("ALTER USER \"a\""), "{out}");
    assert!(
        prose(&out).contains("cannot contain a double quote"),
        "{out}"
    );
    assert!(
        out.contains("ALTER USER \"o'brien ü\" PROFILE \"CURFEW_1\";"),
        "{out}"
    );
}

#[test]
fn profiles_keep_the_limits_unless_a_margin_is_asked_for() {
    let text = "[[rule]]\nname = \"a\"\nidle = \"15m\"\nroles = [\"kim\"]\n";
    assert_eq!(
        map_rule(&policy(text).rules[0], Margin::Default),
        Mapping::Native {
            resource: Resource::IdleTime,
            amount: 15,
            rounding: None
        }
    );
    let with = map_rule(
        &policy(text).rules[0],
        Margin::Fixed(std::time::Duration::from_secs(90)),
    );
    assert_eq!(
        with,
        Mapping::Native {
            resource: Resource::IdleTime,
            amount: 17,
            rounding: Some("15m plus a margin of 1m30s rounded up to 17 minutes".into())
        }
    );
}
