//! MariaDB/MySQL verdicts on hand-made facts: a default install, a hardened one, and the
//! preemption, password and privilege edges.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use curfew_mysql::Flavor;
use curfew_policy::{Policy, parse_policy};

use crate::mariadb::{Account, MariaDbFacts, judge_mariadb};
use crate::{Finding, PolicyContext, Status};

const MARIADB: Flavor = Flavor::MariaDb {
    major: 10,
    minor: 11,
};

fn policy(rules: &str) -> Policy {
    parse_policy("t.toml", rules, jiff::tz::db())
        .unwrap()
        .policy
}

fn account(user: &str, plugin: &str, empty: bool, locked: bool) -> Account {
    Account {
        user: user.to_owned(),
        host: "%".to_owned(),
        plugin: plugin.to_owned(),
        empty_secret: empty,
        locked,
        role: false,
    }
}

/// What `mariadb-install-db` gives, with curfew's account granted what the docs say.
fn default_install() -> MariaDbFacts {
    MariaDbFacts {
        version: "10.11.14-MariaDB".to_owned(),
        flavor: MARIADB,
        user: "curfew_agent".to_owned(),
        host: "%".to_owned(),
        variables: [
            ("wait_timeout", "28800"),
            ("interactive_timeout", "28800"),
            ("idle_transaction_timeout", "0"),
            ("require_secure_transport", "OFF"),
            ("have_ssl", "DISABLED"),
            ("tls_version", "TLSv1.2,TLSv1.3"),
            ("general_log", "OFF"),
            ("log_warnings", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        privileges: vec!["PROCESS".to_owned(), "CONNECTION ADMIN".to_owned()],
        accounts: Ok(vec![
            account("mariadb.sys", "mysql_native_password", true, true),
            account("root", "unix_socket", true, false),
            account("app", "mysql_native_password", false, false),
        ]),
        clock: curfew_postgres::ClockReading {
            offset: jiff::SignedDuration::from_millis(120),
            round_trip: Duration::from_millis(4),
        },
        database_grants: Ok(Vec::new()),
        own_database_grants: Vec::new(),
    }
}

fn hardened() -> MariaDbFacts {
    let mut facts = default_install();
    for (k, v) in [
        ("require_secure_transport", "ON"),
        ("have_ssl", "YES"),
        ("server_audit_logging", "ON"),
        ("server_audit_events", "CONNECT,QUERY_DDL"),
    ] {
        facts.variables.insert(k.to_owned(), v.to_owned());
    }
    facts
}

fn judge(facts: &MariaDbFacts, policy: &Policy) -> Vec<Finding> {
    judge_mariadb(
        facts,
        PolicyContext {
            policy,
            source: "t.toml",
            sha256: "00",
            max_clock_offset: Duration::from_secs(2),
        },
    )
}

fn get<'f>(findings: &'f [Finding], id: &str) -> &'f Finding {
    findings.iter().find(|f| f.id == id).unwrap()
}

const IDLE_EVERYONE: &str = "[[rule]]\nname = \"idle\"\nidle = \"15m\"\n";

#[test]
fn a_hardened_server_with_an_idle_rule_for_everyone_passes_and_names_the_stig() {
    let p = policy(IDLE_EVERYONE);
    let findings = judge(&hardened(), &p);
    for f in &findings {
        assert_eq!(f.status, Status::Pass, "{f:?}");
        assert!(f.why.is_empty() && f.fix.is_empty(), "{f:?}");
    }
    let timeout = get(&findings, "CURFEW-MARIADB-TIMEOUT");
    assert!(timeout.requirement.contains("V-253717"));
    assert!(timeout.requirement.contains("MADB-10-006200"));
    // The markdown table shows titles, not requirements: the STIG id is in the title too.
    assert!(timeout.title.starts_with("V-253717 (MADB-10-006200): "));
    assert!(
        get(&findings, "CURFEW-CLOCK")
            .observed
            .contains("120ms behind the server's clock (server NOW(6)")
    );
    let mut mysql = hardened();
    mysql.flavor = Flavor::MySql;
    mysql.privileges = vec!["PROCESS".to_owned(), "CONNECTION_ADMIN".to_owned()];
    let findings = judge(&mysql, &p);
    let timeout = get(&findings, "CURFEW-MARIADB-TIMEOUT");
    assert!(timeout.requirement.contains("V-235185 (MYS8-00-011100)"));
    assert!(timeout.title.starts_with("V-235185 (MYS8-00-011100): "));
    assert_eq!(timeout.status, Status::Pass);
    assert_eq!(
        get(&findings, "CURFEW-MARIADB-PRIVILEGES").status,
        Status::Pass
    );
}

#[test]
fn a_default_install_fails_tls_and_logging_and_without_a_rule_the_timeouts() {
    let findings = judge(&default_install(), &policy(""));
    let timeout = get(&findings, "CURFEW-MARIADB-TIMEOUT");
    assert_eq!(timeout.status, Status::Fail);
    assert!(
        timeout
            .why
            .contains("no enforced curfew idle rule covers every session")
    );
    assert!(
        timeout.observed.contains("wait_timeout = 8h"),
        "{}",
        timeout.observed
    );
    let tls = get(&findings, "CURFEW-MARIADB-TLS");
    assert_eq!(tls.status, Status::Fail);
    assert!(tls.fix.contains("require_secure_transport = ON"));
    let logging = get(&findings, "CURFEW-MARIADB-LOGGING");
    assert_eq!(logging.status, Status::Fail);
    assert!(logging.fix.contains("INSTALL SONAME 'server_audit'"));
    assert_eq!(
        get(&findings, "CURFEW-MARIADB-NOPASSWORD").status,
        Status::Pass
    );
}

#[test]
fn a_native_timeout_below_a_rule_s_limit_fails_as_preempting_curfew() {
    let mut facts = hardened();
    facts
        .variables
        .insert("wait_timeout".to_owned(), "600".to_owned());
    facts
        .variables
        .insert("idle_transaction_timeout".to_owned(), "30".to_owned());
    let p = policy(
        "[[rule]]\nname = \"idle\"\nidle = \"15m\"\n\n[[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\n",
    );
    let timeout = get(&judge(&facts, &p), "CURFEW-MARIADB-TIMEOUT").clone();
    assert_eq!(timeout.status, Status::Fail);
    assert!(
        timeout
            .why
            .contains("wait_timeout = 10m00s ends sessions before curfew's rule \"idle\""),
        "{}",
        timeout.why
    );
    assert!(
        timeout.why.contains("idle_transaction_timeout = 30s"),
        "{}",
        timeout.why
    );
    assert!(!timeout.why.contains("interactive_timeout"));
    assert!(timeout.fix.contains("--dialect mariadb"));
    // A report-only rule is not enforcement, and a scoped one does not cover everyone.
    let report_only = policy("[[rule]]\nname = \"idle\"\nidle = \"15m\"\naction = \"report\"\n");
    assert_eq!(
        get(&judge(&hardened(), &report_only), "CURFEW-MARIADB-TIMEOUT").status,
        Status::Fail
    );
    let scoped = policy("[[rule]]\nname = \"idle\"\nidle = \"15m\"\nroles = [\"kim\"]\n");
    assert_eq!(
        get(&judge(&hardened(), &scoped), "CURFEW-MARIADB-TIMEOUT").status,
        Status::Fail
    );
}

#[test]
fn accounts_without_a_password_are_named_and_the_anonymous_one_dropped() {
    let mut facts = hardened();
    facts.accounts = Ok(vec![
        account("o'brien", "mysql_native_password", true, false),
        account("", "", true, false),
        account("locked", "mysql_native_password", true, true),
        account("sock", "unix_socket", true, false),
    ]);
    let f = get(
        &judge(&facts, &policy(IDLE_EVERYONE)),
        "CURFEW-MARIADB-NOPASSWORD",
    )
    .clone();
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.observed.contains("`o'brien`@`%`, ``@`%`"),
        "{}",
        f.observed
    );
    assert!(!f.observed.contains("locked") && !f.observed.contains("sock"));
    assert!(f.fix.contains("ALTER USER `o'brien`@`%` IDENTIFIED BY"));
    assert!(f.fix.contains("DROP USER ``@`%`;"));
    facts.accounts = Err("SELECT command denied".to_owned());
    let f = get(
        &judge(&facts, &policy(IDLE_EVERYONE)),
        "CURFEW-MARIADB-NOPASSWORD",
    )
    .clone();
    assert_eq!(f.status, Status::Unknown);
    assert!(f.fix.contains("mysql.global_priv"));
}

#[test]
fn privileges_beyond_the_need_are_revoked_before_what_is_needed_is_granted() {
    let mut facts = hardened();
    facts.privileges = vec!["ALL PRIVILEGES".to_owned()];
    let f = get(
        &judge(&facts, &policy(IDLE_EVERYONE)),
        "CURFEW-MARIADB-PRIVILEGES",
    )
    .clone();
    assert_eq!(f.status, Status::Fail);
    assert_eq!(
        f.fix,
        "REVOKE ALL PRIVILEGES ON *.* FROM `curfew_agent`@`%`; GRANT PROCESS ON *.* TO `curfew_agent`@`%`; GRANT CONNECTION ADMIN ON *.* TO `curfew_agent`@`%`;"
    );
    facts.privileges = vec!["PROCESS".to_owned(), "SUPER".to_owned()];
    let f = get(
        &judge(&facts, &policy(IDLE_EVERYONE)),
        "CURFEW-MARIADB-PRIVILEGES",
    )
    .clone();
    assert!(f.why.contains("more than it needs (SUPER)"), "{}", f.why);
    assert!(f.fix.starts_with("REVOKE SUPER ON *.* FROM"));
    assert!(
        f.fix
            .ends_with("GRANT CONNECTION ADMIN ON *.* TO `curfew_agent`@`%`;")
    );
    // Login locks need no global privilege (curfew.set_account_lock): CREATE USER, with
    // which the account could change an administrator's password, is excess either way.
    facts.privileges = ["PROCESS", "CONNECTION ADMIN"].map(str::to_owned).to_vec();
    let with_locks = policy(
        "[[rule]]\nname = \"hours\"\nallow = [\"Mon-Fri 08:00-18:00\"]\ntimezone = \"UTC\"\nlock_logins = true\n",
    );
    let f = get(&judge(&facts, &with_locks), "CURFEW-MARIADB-PRIVILEGES").clone();
    assert_eq!(f.status, Status::Pass, "{f:?}");
    facts.privileges = ["PROCESS", "CONNECTION ADMIN", "CREATE USER"]
        .map(str::to_owned)
        .to_vec();
    for p in [policy(IDLE_EVERYONE), with_locks] {
        let f = get(&judge(&facts, &p), "CURFEW-MARIADB-PRIVILEGES").clone();
        assert_eq!(f.status, Status::Fail, "{f:?}");
        assert_eq!(f.fix, "REVOKE CREATE USER ON *.* FROM `curfew_agent`@`%`;");
    }
    // MariaDB before 10.5 ends connections with SUPER: then it is needed.
    facts.flavor = Flavor::MariaDb {
        major: 10,
        minor: 4,
    };
    facts.privileges = vec!["PROCESS".to_owned(), "SUPER".to_owned()];
    let f = get(
        &judge(&facts, &policy(IDLE_EVERYONE)),
        "CURFEW-MARIADB-PRIVILEGES",
    )
    .clone();
    assert_eq!(f.status, Status::Pass, "{f:?}");
}

#[test]
fn a_clock_offset_beyond_the_limit_fails() {
    let mut facts = hardened();
    facts.clock.offset = jiff::SignedDuration::from_secs(-5);
    let f = get(&judge(&facts, &policy(IDLE_EVERYONE)), "CURFEW-CLOCK").clone();
    assert_eq!(f.status, Status::Fail);
    assert!(f.observed.contains("5.0s ahead"), "{}", f.observed);
}

/// Name resolution on makes the policy's `addresses` unusable: the server shows host names.
#[test]
fn name_resolution_fails_a_policy_that_scopes_or_exempts_by_address_and_says_the_fix() {
    let by_address = [
        "[exempt]\naddresses = [\"local\"]\n",
        "[[exempt]]\nroles = [\"dba\"]\naddresses = [\"10.0.0.0/8\"]\n",
        "[[rule]]\nname = \"office\"\nidle = \"1h\"\naddresses = [\"10.1.0.0/16\"]\n",
    ];
    for (setting, fails) in [("OFF", true), ("0", true), ("ON", false), ("1", false)] {
        let mut facts = hardened();
        facts
            .variables
            .insert("skip_name_resolve".to_owned(), setting.to_owned());
        for extra in by_address {
            let p = policy(&format!("{extra}{IDLE_EVERYONE}"));
            let f = get(&judge(&facts, &p), "CURFEW-MARIADB-NAMES").clone();
            let expected = if fails { Status::Fail } else { Status::Pass };
            assert_eq!(f.status, expected, "{setting} {extra}: {f:?}");
            assert!(
                f.observed
                    .contains(&format!("skip_name_resolve = {setting}"))
            );
            if fails {
                assert!(f.why.contains("no exemption by addresses applies"), "{f:?}");
                assert!(f.fix.contains("skip_name_resolve = ON"), "{f:?}");
            }
        }
        // A policy that names no address is indifferent to it.
        let f = get(
            &judge(&facts, &policy(IDLE_EVERYONE)),
            "CURFEW-MARIADB-NAMES",
        )
        .clone();
        assert_eq!(f.status, Status::Pass, "{f:?}");
        assert!(f.observed.contains("names no client address"), "{f:?}");
    }
    // Named where it is: the exemption and the rule.
    let mut facts = hardened();
    facts
        .variables
        .insert("skip_name_resolve".to_owned(), "OFF".to_owned());
    let p = policy(&format!("{}{}", by_address[0], by_address[2]));
    let f = get(&judge(&facts, &p), "CURFEW-MARIADB-NAMES").clone();
    assert!(
        f.observed
            .contains("client addresses named by [exempt] addresses, rule \"office\""),
        "{f:?}"
    );
    // Not read: unknown, neither passed nor failed.
    let f = get(&judge(&hardened(), &p), "CURFEW-MARIADB-NAMES").clone();
    assert_eq!(f.status, Status::Unknown, "{f:?}");
}
