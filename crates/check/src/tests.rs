//! Verdicts on hand-made facts: a default install, a hardened one, and the edge cases between.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;

use curfew_policy::{Policy, parse_policy};
use curfew_postgres::{
    AGENT_FUNCTIONS, FunctionFacts, HbaRule, LeaderInfo, LedgerFacts, OWNER_ROLE, RoleFacts,
    ServerFacts, Setting,
};

use crate::{Finding, PolicyContext, Status, any_failed, judge};

fn policy(rules: &str) -> Policy {
    parse_policy("t.toml", rules, jiff::tz::db())
        .unwrap()
        .policy
}

fn setting(value: &str, unit: Option<&str>) -> Setting {
    Setting {
        value: value.to_owned(),
        unit: unit.map(str::to_owned),
        source: "default".to_owned(),
    }
}

fn hba(line: i32, kind: &str, address: Option<(&str, &str)>, method: &str) -> HbaRule {
    HbaRule {
        file: None,
        line,
        kind: Some(kind.to_owned()),
        databases: vec!["all".to_owned()],
        users: vec!["all".to_owned()],
        address: address.map(|(a, _)| a.to_owned()),
        netmask: address.map(|(_, m)| m.to_owned()),
        method: Some(method.to_owned()),
        error: None,
    }
}

fn role(name: &str, superuser: bool, bootstrap: bool) -> RoleFacts {
    RoleFacts {
        name: name.to_owned(),
        superuser,
        can_login: true,
        bootstrap,
    }
}

/// What initdb gives: trust everywhere, nothing logged, no timeouts.
pub(super) fn default_install() -> ServerFacts {
    let settings: BTreeMap<String, Setting> = [
        ("ssl", setting("off", None)),
        ("ssl_min_protocol_version", setting("TLSv1.2", None)),
        ("password_encryption", setting("scram-sha-256", None)),
        ("log_connections", setting("off", None)),
        ("log_disconnections", setting("off", None)),
        (
            "idle_in_transaction_session_timeout",
            setting("0", Some("ms")),
        ),
        ("idle_session_timeout", setting("0", Some("ms"))),
        ("statement_timeout", setting("0", Some("ms"))),
        ("authentication_timeout", setting("60", Some("s"))),
        ("tcp_keepalives_idle", setting("7200", Some("s"))),
        ("client_connection_check_interval", setting("0", Some("ms"))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    ServerFacts {
        version: "PostgreSQL 17.2".to_owned(),
        version_num: 170_002,
        connected_as: "curfew_agent".to_owned(),
        connected_as_superuser: false,
        connected_as_createrole: false,
        unix_socket: false,
        settings,
        hba: Ok(vec![
            hba(1, "local", None, "trust"),
            hba(2, "host", Some(("127.0.0.1", "255.255.255.255")), "trust"),
        ]),
        roles: vec![
            role("postgres", true, true),
            role("curfew_agent", false, false),
        ],
        leader: None,
        ledger: LedgerFacts::default(),
        clock: curfew_postgres::ClockReading::default(),
    }
}

/// Configured as the security guide says, with a curfew agent leading.
pub(super) fn hardened() -> ServerFacts {
    let mut facts = default_install();
    for (name, value, unit) in [
        ("ssl", "on", None),
        ("log_connections", "on", None),
        ("log_disconnections", "on", None),
        ("idle_in_transaction_session_timeout", "600000", Some("ms")),
        ("statement_timeout", "300000", Some("ms")),
        ("authentication_timeout", "30", Some("s")),
        ("tcp_keepalives_idle", "300", Some("s")),
        ("client_connection_check_interval", "10000", Some("ms")),
    ] {
        facts.settings.insert(name.to_owned(), setting(value, unit));
    }
    facts.hba = Ok(vec![
        hba(1, "local", None, "peer"),
        hba(
            2,
            "hostssl",
            Some(("10.0.0.0", "255.0.0.0")),
            "scram-sha-256",
        ),
        hba(3, "hostnossl", Some(("0.0.0.0", "0.0.0.0")), "reject"),
        hba(
            4,
            "host",
            Some(("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            "scram-sha-256",
        ),
    ]);
    facts.leader = Some(LeaderInfo {
        pid: 4242,
        client_addr: Some("10.0.0.5".to_owned()),
        backend_start: None,
        database: Some("postgres".to_owned()),
        application: Some(curfew_postgres::Announcement::text(false, SHA)),
        role: Some("curfew_agent".to_owned()),
        own_role: true,
        granted: true,
    });
    facts
}

const RULES: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n";
pub(super) const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub(super) fn run(facts: &ServerFacts, rules: &str) -> Vec<Finding> {
    let policy = policy(rules);
    judge(
        facts,
        PolicyContext {
            policy: &policy,
            source: "t.toml",
            sha256: SHA,
            max_clock_offset: std::time::Duration::from_secs(2),
        },
    )
}

pub(super) fn status_of<'f>(findings: &'f [Finding], id: &str) -> &'f Finding {
    findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
}

fn failed(findings: &[Finding]) -> Vec<&'static str> {
    findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.id)
        .collect()
}

#[test]
fn a_default_install_fails_the_expected_items() {
    let findings = run(&default_install(), RULES);
    assert_eq!(
        failed(&findings),
        [
            "V-261910",
            "PG-SSL",
            "PG-LOG-CONNECTIONS",
            "PG-LOG-DISCONNECTIONS",
            "PG-IDLE-IN-TRANSACTION",
            "PG-STATEMENT-TIMEOUT",
            "PG-DEAD-CONNECTIONS",
            "PG-HBA-METHOD",
        ]
    );
    assert!(any_failed(&findings));
    let v = status_of(&findings, "V-261910");
    assert!(
        v.observed.contains("no curfew agent leads this server"),
        "{}",
        v.observed
    );
    assert!(
        v.fix.contains("Run the agent with this policy"),
        "{}",
        v.fix
    );
    let hba = status_of(&findings, "PG-HBA-METHOD");
    assert!(
        hba.observed.contains("line 1: local all all trust"),
        "{}",
        hba.observed
    );
    // Loopback without TLS is not a finding.
    assert_eq!(status_of(&findings, "PG-HBA-TLS").status, Status::Pass);
    assert_eq!(status_of(&findings, "PG-LOGIN-ROLES").status, Status::Info);
}

#[test]
fn a_hardened_install_with_a_leading_agent_passes_everything() {
    let findings = run(&hardened(), RULES);
    assert_eq!(failed(&findings), Vec::<&str>::new(), "{findings:#?}");
    assert!(!any_failed(&findings));
    assert!(
        findings
            .iter()
            .all(|f| f.status != Status::Pass || f.fix.is_empty())
    );
}

#[test]
fn the_termination_requirement_needs_an_enforced_rule_and_a_leader_or_native_timeouts() {
    // Report-only rules enforce nothing.
    let findings = run(
        &hardened(),
        "[[rule]]\nname = \"r\"\nidle = \"15m\"\naction = \"report\"\n",
    );
    let v = status_of(&findings, "V-261910");
    // ... but the hardened server sets idle_in_transaction_session_timeout natively.
    assert_eq!(v.status, Status::Pass);
    assert!(v.fix.contains("any user can switch off"), "{}", v.fix);
    let mut facts = hardened();
    facts.settings.insert(
        "idle_in_transaction_session_timeout".into(),
        setting("0", Some("ms")),
    );
    let findings = run(
        &facts,
        "[[rule]]\nname = \"r\"\nidle = \"15m\"\naction = \"report\"\n",
    );
    assert_eq!(status_of(&findings, "V-261910").status, Status::Fail);
    assert!(
        status_of(&findings, "V-261910")
            .fix
            .contains("enforced rules")
    );
    // A curfew idle_in_transaction rule with a leader covers abandoned transactions.
    let findings = run(
        &facts,
        "[[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\n",
    );
    let tx = status_of(&findings, "PG-IDLE-IN-TRANSACTION");
    assert_eq!(tx.status, Status::Pass);
    assert!(
        tx.observed.contains("curfew rule \"tx\""),
        "{}",
        tx.observed
    );
}

#[test]
fn unreadable_hba_rules_are_unknown_not_passed() {
    let mut facts = hardened();
    facts.hba = Err("permission denied for view pg_hba_file_rules".to_owned());
    let findings = run(&facts, RULES);
    for id in ["PG-HBA-METHOD", "PG-HBA-TLS"] {
        let f = status_of(&findings, id);
        assert_eq!(f.status, Status::Unknown);
        assert!(f.fix.contains("GRANT SELECT ON pg_hba_file_rules"));
    }
    assert!(!any_failed(&findings));
}

#[test]
fn plain_tcp_from_other_hosts_and_extra_superusers_fail() {
    let mut facts = hardened();
    facts.hba = Ok(vec![hba(
        7,
        "host",
        Some(("0.0.0.0", "0.0.0.0")),
        "scram-sha-256",
    )]);
    facts.roles.push(role("dba_bob", true, false));
    facts.connected_as_superuser = true;
    let findings = run(&facts, RULES);
    assert_eq!(
        failed(&findings),
        ["PG-HBA-TLS", "PG-SUPERUSERS", "CURFEW-AGENT-PRIVILEGE"]
    );
    assert!(
        status_of(&findings, "PG-HBA-TLS")
            .observed
            .contains("line 7: host all all 0.0.0.0/0.0.0.0")
    );
    assert!(
        status_of(&findings, "PG-SUPERUSERS")
            .observed
            .contains("dba_bob")
    );
}

#[test]
fn postgresql_18_connection_logging_lists_and_units_are_understood() {
    let mut facts = hardened();
    facts.settings.insert(
        "log_connections".into(),
        setting("receipt,authentication,authorization", None),
    );
    facts
        .settings
        .insert("authentication_timeout".into(), setting("2", Some("min")));
    let findings = run(&facts, RULES);
    assert_eq!(
        status_of(&findings, "PG-LOG-CONNECTIONS").status,
        Status::Pass
    );
    let auth = status_of(&findings, "PG-AUTHENTICATION-TIMEOUT");
    assert_eq!(auth.status, Status::Fail);
    assert!(
        auth.observed.contains("2m00s") || auth.observed.contains("2m"),
        "{}",
        auth.observed
    );
    facts
        .settings
        .insert("log_connections".into(), setting("", None));
    assert_eq!(
        status_of(&run(&facts, RULES), "PG-LOG-CONNECTIONS").status,
        Status::Fail
    );
}

#[test]
fn a_setting_the_server_does_not_know_is_unknown() {
    let mut facts = hardened();
    facts.settings.remove("client_connection_check_interval");
    facts.settings.remove("tcp_keepalives_idle");
    let f = run(&facts, RULES);
    assert_eq!(status_of(&f, "PG-DEAD-CONNECTIONS").status, Status::Unknown);
}

#[test]
fn a_leader_in_dry_run_or_on_another_policy_does_not_meet_the_requirement() {
    let mut facts = hardened();
    facts.settings.insert(
        "idle_in_transaction_session_timeout".into(),
        setting("0", Some("ms")),
    );
    let leader = facts.leader.as_mut().unwrap();
    leader.application = Some(curfew_postgres::Announcement::text(true, SHA));
    let f = run(&facts, RULES);
    let v = status_of(&f, "V-261910");
    assert_eq!(v.status, Status::Fail);
    assert!(v.observed.contains("runs a dry run"), "{}", v.observed);
    let leader = facts.leader.as_mut().unwrap();
    leader.application = Some(curfew_postgres::Announcement::text(false, &"f".repeat(64)));
    let v = status_of(&run(&facts, RULES), "V-261910").clone();
    assert_eq!(v.status, Status::Fail);
    assert!(
        v.observed.contains("another policy (sha256 ffffffffffff)"),
        "{}",
        v.observed
    );
    // A scoped idle_in_transaction rule does not stand in for the server-wide timeout.
    let leader = facts.leader.as_mut().unwrap();
    leader.application = Some(curfew_postgres::Announcement::text(false, SHA));
    let f = run(
        &facts,
        "[[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\nroles = [\"analyst_*\"]\n",
    );
    assert_eq!(status_of(&f, "PG-IDLE-IN-TRANSACTION").status, Status::Fail);
}

/// Regression (issue 13, item 1): an unprivileged role holding curfew's advisory lock with the
/// leader's announcement as its application name made V-261910 pass.
#[test]
fn a_squatter_announcing_itself_as_the_agent_does_not_meet_the_requirement() {
    let mut facts = hardened();
    facts.settings.insert(
        "idle_in_transaction_session_timeout".into(),
        setting("0", Some("ms")),
    );
    let leader = facts.leader.as_mut().unwrap();
    leader.role = Some("mallory".to_owned());
    leader.own_role = false;
    let v = status_of(&run(&facts, RULES), "V-261910").clone();
    assert_eq!(v.status, Status::Fail);
    assert!(v.observed.contains("\"mallory\""), "{}", v.observed);
    assert!(v.observed.contains("not a curfew agent"), "{}", v.observed);
}

#[test]
fn values_of_curfew_s_own_role_or_database_are_not_taken_for_the_server_s() {
    let mut facts = hardened();
    facts.settings.get_mut("statement_timeout").unwrap().source = "user".to_owned();
    let f = run(&facts, RULES);
    let s = status_of(&f, "PG-STATEMENT-TIMEOUT");
    assert_eq!(s.status, Status::Unknown);
    assert!(s.observed.contains("from the user level"), "{}", s.observed);
}

#[test]
fn keepalives_are_not_judged_over_a_unix_socket() {
    let mut facts = default_install();
    facts.unix_socket = true;
    facts
        .settings
        .insert("tcp_keepalives_idle".into(), setting("0", Some("s")));
    let f = run(&facts, RULES);
    let d = status_of(&f, "PG-DEAD-CONNECTIONS");
    assert_eq!(d.status, Status::Unknown, "{d:?}");
    assert!(d.observed.contains("Unix socket"));
    facts.settings.insert(
        "client_connection_check_interval".into(),
        setting("10000", Some("ms")),
    );
    assert_eq!(
        status_of(&run(&facts, RULES), "PG-DEAD-CONNECTIONS").status,
        Status::Pass
    );
}

#[test]
fn postgresql_18_log_connections_needs_authorization_logged() {
    let mut facts = hardened();
    for (value, on) in [
        ("receipt", false),
        ("receipt,authentication", false),
        ("receipt,authentication,authorization", true),
        ("all", true),
        ("on", true),
        ("off", false),
    ] {
        facts
            .settings
            .insert("log_connections".into(), setting(value, None));
        let status = status_of(&run(&facts, RULES), "PG-LOG-CONNECTIONS").status;
        assert_eq!(status == Status::Pass, on, "{value}");
    }
}

/// The ledger as `curfew init` installs it.
fn installed_ledger() -> LedgerFacts {
    LedgerFacts {
        schema_owner: Some(OWNER_ROLE.to_owned()),
        owner_can_login: false,
        current: true,
        functions: AGENT_FUNCTIONS
            .iter()
            .map(|f| FunctionFacts {
                signature: (*f).to_owned(),
                present: true,
                owner: Some(OWNER_ROLE.to_owned()),
                security_definer: true,
                fixed_search_path: true,
                public_execute: false,
                agent_execute: true,
            })
            .collect(),
        agent_excess: Vec::new(),
    }
}

#[test]
fn createrole_on_curfews_role_fails_and_names_the_escalation() {
    let mut facts = hardened();
    facts.version_num = 150_004;
    facts.connected_as_createrole = true;
    let findings = run(&facts, RULES);
    let agent = status_of(&findings, "CURFEW-AGENT-PRIVILEGE");
    assert_eq!(agent.status, Status::Fail);
    assert!(
        agent.observed.contains("pg_execute_server_program") && agent.observed.contains("shell"),
        "{agent:?}"
    );
    assert!(agent.fix.contains("NOCREATEROLE"), "{agent:?}");
    facts.version_num = 170_002;
    let findings = run(&facts, RULES);
    assert_eq!(
        status_of(&findings, "CURFEW-AGENT-PRIVILEGE").status,
        Status::Fail
    );
    facts.connected_as_createrole = false;
    let findings = run(&facts, RULES);
    assert_eq!(
        status_of(&findings, "CURFEW-AGENT-PRIVILEGE").status,
        Status::Pass
    );
}

#[test]
fn the_login_functions_are_checked_when_installed_or_needed() {
    const LOCKS: &str = "[[rule]]\nname = \"night\"\ndeny = [\"Mon-Sun 22:00-06:00\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"kim\"]\n";
    let mut facts = hardened();
    // No ledger: for the record, unless the policy locks logins.
    assert_eq!(
        status_of(&run(&facts, RULES), "CURFEW-LOGIN-FUNCTIONS").status,
        Status::Info
    );
    let needed = run(&facts, LOCKS);
    let finding = status_of(&needed, "CURFEW-LOGIN-FUNCTIONS");
    assert_eq!(finding.status, Status::Fail);
    assert!(finding.fix.contains("curfew init"), "{finding:?}");

    facts.ledger = installed_ledger();
    assert_eq!(
        status_of(&run(&facts, LOCKS), "CURFEW-LOGIN-FUNCTIONS").status,
        Status::Pass
    );
    // Each weakness fails it, and is named.
    type Weaken = fn(&mut LedgerFacts);
    let weakened: [(&str, Weaken); 6] = [
        ("PUBLIC may execute", |l| {
            l.functions[0].public_execute = true
        }),
        ("not SECURITY DEFINER", |l| {
            l.functions[1].security_definer = false
        }),
        ("search_path", |l| l.functions[2].fixed_search_path = false),
        ("can log in", |l| l.owner_can_login = true),
        ("INSERT", |l| {
            l.agent_excess
                .push("INSERT/UPDATE/DELETE/TRUNCATE on curfew.lock".to_owned())
        }),
        ("older curfew", |l| l.current = false),
    ];
    for (said, weaken) in weakened {
        let mut facts = facts.clone();
        weaken(&mut facts.ledger);
        let findings = run(&facts, RULES);
        let finding = status_of(&findings, "CURFEW-LOGIN-FUNCTIONS");
        assert_eq!(finding.status, Status::Fail, "{said}");
        assert!(finding.observed.contains(said), "{said}: {finding:?}");
    }
}
