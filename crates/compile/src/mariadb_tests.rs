//! The MariaDB/MySQL script's text: what maps, what is commented out and why, quoting.

#![allow(clippy::unwrap_used)]

use crate::test_support::{policy, prose};
use crate::{Dialect, Margin, compile, compile_with};

fn mariadb(text: &str) -> String {
    compile(&policy(text), Dialect::MariaDb, "t.toml", "abc")
}

fn statements(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .collect()
}

#[test]
fn an_idle_rule_for_everyone_sets_the_server_wide_timeouts_above_its_limit() {
    let out = mariadb(
        "[[rule]]\nname = \"idle\"\nidle = \"15m\"\n\n[[rule]]\nname = \"long\"\nidle = \"1h\"\n\n\
         [[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\n",
    );
    // The strictest rule wins: 15 minutes plus 90 s.
    assert_eq!(
        statements(&out),
        vec![
            "SET GLOBAL wait_timeout = 990;",
            "SET GLOBAL interactive_timeout = 990;",
            "SET GLOBAL idle_transaction_timeout = 360;",
        ]
    );
    assert!(
        out.starts_with(
            "-- curfew compile --dialect mariadb\n-- Policy: t.toml\n-- SHA-256: abc\n"
        )
    );
    let text = prose(&out);
    assert!(
        text.contains("SET SESSION wait_timeout = 31536000"),
        "{text}"
    );
    assert!(text.contains("[mariadb] wait_timeout = 990"), "{text}");
    let exact = compile_with(
        &policy("[[rule]]\nname = \"idle\"\nidle = \"15m\"\n"),
        Dialect::MariaDb,
        "t.toml",
        "abc",
        Margin::Fixed(std::time::Duration::ZERO),
    );
    assert!(exact.contains("SET GLOBAL wait_timeout = 900;"), "{exact}");
}

#[test]
fn exemptions_comment_the_timeouts_out_and_scoped_rules_say_why() {
    let out = mariadb(
        "[exempt]\nroles = [\"backup\"]\n\n[[rule]]\nname = \"idle\"\nidle = \"15m\"\n\n\
         [[rule]]\nname = \"kim\"\nidle = \"5m\"\nroles = [\"kim\"]\n\n\
         [[rule]]\nname = \"night\"\ndeny = [\"Mon-Sun 22:00-06:00\"]\ntimezone = \"UTC\"\n\n\
         [[rule]]\nname = \"life\"\nlifetime = \"8h\"\n",
    );
    assert!(statements(&out).is_empty(), "{out}");
    assert!(
        out.contains("\n-- SET GLOBAL wait_timeout = 990;\n"),
        "{out}"
    );
    let text = prose(&out);
    assert!(
        text.contains(
            "COMMENTED OUT: they would also end the sessions this policy exempts (users \"backup\")"
        ),
        "{text}"
    );
    assert!(text.contains("rule \"kim\""), "{text}");
    assert!(
        text.contains("wait_timeout is server-wide in MariaDB"),
        "{text}"
    );
    assert!(
        text.contains("no setting that depends on the time of day"),
        "{text}"
    );
    assert!(
        text.contains("no setting that limits how long a session stays connected"),
        "{text}"
    );
}

#[test]
fn max_sessions_alters_each_account_with_names_that_cannot_break_out() {
    let out = mariadb(
        "[exempt]\nroles = [\"boss\"]\n\n[[rule]]\nname = \"two\"\nmax_sessions = 2\nroles = [\"o'k`x\", \"boss\"]\n\n\
         [[rule]]\nname = \"five\"\nmax_sessions = 5\nroles = [\"o'k`x\"]\n\n\
         [[rule]]\nname = \"pattern\"\nmax_sessions = 1\nroles = [\"app_*\"]\n",
    );
    // Hex literals, whatever the SQL mode; the largest limit first, so the strictest wins.
    let five = out.find("MAX_USER_CONNECTIONS 5'").unwrap();
    let two = out.find("MAX_USER_CONNECTIONS 2'").unwrap();
    assert!(five < two, "{out}");
    assert_eq!(
        out.matches("WHERE User = X'6f276b6078' AND is_role = 'N'")
            .count(),
        2,
        "{out}"
    );
    assert!(
        !out.contains("X'626f7373'"),
        "the exempt user got a limit: {out}"
    );
    assert!(out.contains("DELIMITER //\nBEGIN NOT ATOMIC\n"));
    assert!(prose(&out).contains("its user patterns are not expanded"));
    let mysql = compile(
        &policy("[[rule]]\nname = \"two\"\nmax_sessions = 2\nroles = [\"a`b\"]\n"),
        Dialect::MySql,
        "t.toml",
        "abc",
    );
    assert!(statements(&mysql).is_empty(), "{mysql}");
    assert!(
        mysql.contains("-- ALTER USER `a``b`@`<host>` WITH MAX_USER_CONNECTIONS 2;"),
        "{mysql}"
    );
    let tx = compile(
        &policy("[[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\n"),
        Dialect::MySql,
        "t.toml",
        "abc",
    );
    assert!(
        prose(&tx).contains("MySQL has no timeout for idle transactions"),
        "{tx}"
    );
    assert!(prose(&tx).contains("Nothing to apply"), "{tx}");
}

#[test]
fn comments_in_the_script_cannot_be_broken_out_of() {
    let out = mariadb(
        "[[rule]]\nname = \"x\\nDROP DATABASE mysql; --\"\nidle = \"1m\"\nroles = [\"kim\"]\n",
    );
    assert!(!out.lines().any(|l| l.starts_with("DROP")), "{out}");
}
