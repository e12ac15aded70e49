#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_support::{policy, prose};

const POLICY: &str = r#"
[[target]]
name = "primary"
url = "postgres://curfew_agent@db/postgres"

[exempt]
roles = ["backup"]

[[rule]]
name = "after-hours"
allow = ["mon-fri 07:00-19:00"]
timezone = "Europe/Berlin"
member_of = ["humans"]
lock_logins = true

[[rule]]
name = "inactivity"
idle = "15m"
"#;

fn closed() -> LoginTriggerOptions {
    LoginTriggerOptions {
        break_glass: None,
        on_error: OnError::Closed,
    }
}

#[test]
fn the_script_checks_the_version_and_creates_the_trigger_with_a_fixed_search_path() {
    let sql = login_trigger(&policy(POLICY), "curfew.toml", "abc", &closed());
    assert!(sql.contains("current_setting('server_version_num')::int < 170000"));
    assert!(sql.contains(
        "CREATE EVENT TRIGGER curfew_login ON login EXECUTE FUNCTION curfew.login_check();"
    ));
    // Every function has the fixed search_path; the trigger's runs as its owner.
    let functions = sql.matches("CREATE OR REPLACE FUNCTION").count();
    assert_eq!(functions, 9);
    assert_eq!(
        sql.matches("SET search_path = pg_catalog, pg_temp AS")
            .count(),
        functions
    );
    assert!(
        sql.contains("LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp")
    );
    // The rule's window goes in as data: Mon-Fri (bits 0-4), 07:00-19:00 in minutes.
    assert!(
        sql.contains("('after-hours', 31, 420, 1140, NULL, NULL)"),
        "{sql}"
    );
    assert!(sql.contains("'after-hours', 'allow', 'Europe/Berlin', NULL, ARRAY['humans']::text[]"));
    // The idle rule locks no login; the exemption and curfew's role pass.
    assert!(!sql.contains("'inactivity'"));
    assert!(sql.contains("(ARRAY['backup']::text[], NULL, true)"));
    assert!(sql.contains("IF who = ANY (ARRAY['curfew_agent']::text[])"));
}

#[test]
fn the_message_template_is_the_shared_functions_words() {
    let sql = login_trigger(&policy(POLICY), "curfew.toml", "abc", &closed());
    let expected = login_refusal_message(
        "%1$s",
        &RefusalCause::Window {
            rule: "after-hours",
            kind: WindowRule::Allow,
            windows: "mon-fri 07:00-19:00",
            opens: Some("%2$s"),
            zone: "Europe/Berlin",
        },
    );
    assert!(sql.contains(&literal(&expected)), "{expected}\n{sql}");
}

#[test]
fn the_header_documents_recovery_nologin_and_the_version() {
    let sql = login_trigger(&policy(POLICY), "curfew.toml", "abc", &closed());
    let text = prose(&sql);
    assert!(
        text.contains("PGOPTIONS='-c event_triggers=false' psql"),
        "{text}"
    );
    assert!(text.contains("DROP EVENT TRIGGER curfew_login"), "{text}");
    assert!(text.contains("NOLOGIN the agent sets on locked roles stays the hard lock"));
    assert!(text.contains("PostgreSQL 17"));
    assert!(text.contains("REFUSED with FATAL 28000"));
    let open = LoginTriggerOptions {
        break_glass: Some("oncall".to_owned()),
        on_error: OnError::Open,
    };
    let sql = login_trigger(&policy(POLICY), "curfew.toml", "abc", &open);
    assert!(prose(&sql).contains("login PROCEEDS with a WARNING"));
    assert!(sql.contains("IF who = 'oncall' THEN"));
    assert!(sql.contains("RAISE WARNING 'curfew: the login check failed"));
    assert!(!sql.contains("fails closed (--on-error closed)"));
}

#[test]
fn templates_escape_percent_signs_and_number_their_slots() {
    assert_eq!(template("100% \u{1}1 at \u{1}2"), "100%% %1$s at %2$s");
}

#[test]
fn hostile_names_stay_inside_their_literals_and_bodies() {
    let hostile = r#"o'brien\ $$ $curfew$ "x" %s"#;
    let text = format!(
        "[exempt]\nroles = [{hostile:?}]\n\n[[rule]]\nname = {hostile:?}\nallow = [\"mon 07:00-08:00\"]\ntimezone = \"UTC\"\n\
         roles = [{hostile:?}]\nlock_logins = true\n"
    );
    let options = LoginTriggerOptions {
        break_glass: Some(hostile.to_owned()),
        on_error: OnError::Closed,
    };
    let sql = login_trigger(&policy(&text), "t.toml", "abc", &options);
    // The body tag is one that occurs in no body: the names hold $curfew$.
    assert!(sql.contains("AS $curfew1$"), "{sql}");
    assert!(!sql.contains("AS $curfew$"));
    // The single quote is doubled; the backslash and the dollars are plain characters.
    let quoted = literal(hostile);
    assert_eq!(quoted, r#"'o''brien\ $$ $curfew$ "x" %s'"#);
    assert!(sql.contains(&format!("IF who = {quoted} THEN")));
    assert!(sql.contains(&format!("({quoted}, 'allow'")));
    // In the message template the % is doubled, so format() cannot read it as a slot.
    assert!(
        sql.contains(r#"rule o''brien\ $$ $curfew$ "x" %%s until"#),
        "{sql}"
    );
    // Outside the literals and comments, no trace of the name.
    let mut code = String::new();
    let mut in_literal = false;
    for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
        for c in line.chars() {
            if c == '\'' {
                in_literal = !in_literal;
            } else if !in_literal {
                code.push(c);
            }
        }
        code.push('\n');
    }
    assert!(!in_literal);
    assert!(!code.contains("brien"), "{code}");
}

#[test]
fn one_off_windows_go_in_as_civil_times_and_other_rules_stay_out() {
    let text = "[[rule]]\nname = \"freeze\"\ndeny = [\"2026-12-31 22:00 - 2027-01-01 02:00\"]\n\
                timezone = \"UTC\"\nroles = [\"a*\"]\nlock_logins = true\n\n\
                [[rule]]\nname = \"staged\"\ndeny = [\"mon 00:00-01:00\"]\ntimezone = \"UTC\"\n\
                lock_logins = true\naction = \"report\"\n";
    let sql = login_trigger(&policy(text), "t.toml", "abc", &closed());
    assert!(
        sql.contains("('freeze', NULL, NULL, NULL, '2026-12-31 22:00:00', '2027-01-01 02:00:00')"),
        "{sql}"
    );
    assert!(sql.contains("'freeze', 'deny', 'UTC', ARRAY['a*']::text[], NULL"));
    // A report-only rule refuses nothing.
    assert!(!sql.contains("'staged'"));
}

#[test]
fn a_rules_message_is_an_escaped_literal_before_curfews_words() {
    let text = POLICY.replace(
        "lock_logins = true\n",
        "lock_logins = true\nmessage = \"Closed 100% by O'Brien's policy\"\n",
    );
    let sql = login_trigger(&policy(&text), "curfew.toml", "abc", &closed());
    // The quote doubled, the percent sign doubled for format(), then chr(31), then the
    // template of curfew's own words.
    assert!(
        sql.contains(
            "'Closed 100%% by O''Brien''s policy' || chr(31) || 'logins for role %1$s are closed by rule after-hours"
        ),
        "{sql}"
    );
    assert!(sql.contains("MESSAGE = split_part(refusal, chr(31), 1)"));
    assert!(sql.contains("DETAIL = split_part(refusal, chr(31), 2)"));
    // Without a message, curfew's words alone.
    let plain = login_trigger(&policy(POLICY), "curfew.toml", "abc", &closed());
    assert!(!plain.contains("|| chr(31) ||"));
}
