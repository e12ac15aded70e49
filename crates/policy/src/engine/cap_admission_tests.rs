//! `admit` against session caps: each cap counts the role's other sessions in its own scope,
//! not exempt, as the batch engine ranks them (the bug: one count of every session of the
//! role refused logins the agent keeps).

use super::test_support::{now, policy};
use super::*;
use crate::session::ClientAddr;

/// A login of `kim` to `database` from `application` at 10.1.2.3.
fn login<'a>(database: &'a str, application: &'a str) -> Login<'a> {
    Login {
        role: "kim",
        member_of: &[],
        database,
        application,
        client_addr: Some("10.1.2.3".parse().unwrap()),
    }
}

fn other(database: &str, application: &str, client_addr: ClientAddr) -> RoleSession {
    RoleSession {
        database: database.to_owned(),
        application: application.to_owned(),
        client_addr,
    }
}

fn at(database: &str) -> RoleSession {
    other(
        database,
        "psql",
        ClientAddr::Ip("10.1.2.3".parse().unwrap()),
    )
}

/// The refusing rule's id, or None if admitted.
fn refusing(p: &Policy, login: &Login<'_>, others: &[RoleSession]) -> Option<String> {
    match admit(p, login, now(), others, &[]) {
        Admission::Refused(r) => Some(r.rule.to_string()),
        Admission::Allowed { .. } => None,
    }
}

/// The batch engine's verdict on the same: is the new session ended at once, and by which rule.
fn batch_ends(p: &Policy, login: &Login<'_>, others: &[RoleSession]) -> Option<String> {
    let new = login.as_session(now());
    let mut sessions: Vec<Session> = others
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut s = login.as_session(now() - jiff::SignedDuration::from_secs(i as i64 + 1));
            s.pid = 100 + i as i64;
            s.database = o.database.as_str().into();
            s.application = o.application.as_str().into();
            s.client_addr = o.client_addr.clone();
            s
        })
        .collect();
    sessions.push(new.clone());
    let plan = evaluate(p, &sessions, now());
    plan.terminations
        .iter()
        .find(|d| d.session == new.key())
        .map(|d| d.rule_id.to_string())
}

fn agree(p: &Policy, login: &Login<'_>, others: &[RoleSession]) -> Option<String> {
    let refused = refusing(p, login, others);
    assert_eq!(refused, batch_ends(p, login, others), "{others:?}");
    refused
}

const REPORTING_CAP: &str =
    "[[rule]]\nname = \"reporting-two\"\nmax_sessions = 2\ndatabases = [\"reporting\"]\n";

#[test]
fn a_cap_scoped_to_one_database_does_not_count_another_databases_sessions() {
    let p = policy(REPORTING_CAP);
    let two_in_app = [at("app"), at("app")];
    assert_eq!(agree(&p, &login("reporting", "psql"), &two_in_app), None);
    let two_in_reporting = [at("app"), at("reporting"), at("reporting")];
    assert_eq!(
        agree(&p, &login("reporting", "psql"), &two_in_reporting).as_deref(),
        Some("reporting-two")
    );
    // Outside the cap's scope the login is never capped, however many sessions it has.
    assert_eq!(agree(&p, &login("app", "psql"), &two_in_reporting), None);
}

#[test]
fn an_exempt_session_does_not_count() {
    let p = policy(&format!(
        "[exempt]\napplications = [\"backup-*\"]\n\n{REPORTING_CAP}"
    ));
    let addr = || ClientAddr::Ip("10.9.9.9".parse().unwrap());
    let one_backup = [
        at("reporting"),
        other("reporting", "backup-nightly", addr()),
    ];
    assert_eq!(agree(&p, &login("reporting", "psql"), &one_backup), None);
    let no_backup = [at("reporting"), other("reporting", "psql", addr())];
    assert!(agree(&p, &login("reporting", "psql"), &no_backup).is_some());
}

#[test]
fn two_caps_with_different_scopes_count_apart() {
    let p = policy(
        "[[rule]]\nname = \"all-three\"\nmax_sessions = 3\n\n\
         [[rule]]\nname = \"one-psql\"\nmax_sessions = 1\napplications = [\"psql\"]\n",
    );
    let gui = |d: &str| other(d, "dbeaver", ClientAddr::Socket);
    // One psql session elsewhere fills the psql cap; two GUI sessions do not.
    assert_eq!(
        agree(&p, &login("app", "psql"), &[gui("app"), gui("x")]),
        None
    );
    assert_eq!(
        agree(&p, &login("app", "psql"), &[at("x")]).as_deref(),
        Some("one-psql")
    );
    // The role-wide cap counts them all; the first rule in the file is named.
    let three = [at("x"), gui("app"), gui("y")];
    assert_eq!(
        agree(&p, &login("app", "psql"), &three).as_deref(),
        Some("all-three")
    );
    assert_eq!(
        agree(&p, &login("app", "dbeaver"), &three).as_deref(),
        Some("all-three")
    );
    assert_eq!(agree(&p, &login("app", "dbeaver"), &three[..2]), None);
}

#[test]
fn an_unresolved_address_meets_no_exemption_and_every_address_scoped_cap() {
    let p = policy(
        "[exempt]\naddresses = [\"10.9.0.0/16\"]\n\n\
         [[rule]]\nname = \"office-one\"\nmax_sessions = 1\naddresses = [\"10.1.0.0/16\"]\n",
    );
    let named = || {
        other(
            "app",
            "psql",
            ClientAddr::Unresolved("laptop.example".into()),
        )
    };
    let exempt = other("app", "psql", ClientAddr::Ip("10.9.1.1".parse().unwrap()));
    let elsewhere = other("app", "psql", ClientAddr::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(agree(&p, &login("app", "psql"), &[exempt, elsewhere]), None);
    assert_eq!(
        agree(&p, &login("app", "psql"), &[named()]).as_deref(),
        Some("office-one")
    );
}

#[test]
fn a_session_a_window_ends_now_frees_its_place() {
    let p = policy(
        "[[rule]]\nname = \"reporting-closed\"\ndeny = [\"00:00-23:59\"]\ntimezone = \"UTC\"\n\
         databases = [\"reporting\"]\n\n[[rule]]\nname = \"one\"\nmax_sessions = 1\n",
    );
    assert_eq!(agree(&p, &login("app", "psql"), &[at("reporting")]), None);
    assert_eq!(
        agree(&p, &login("app", "psql"), &[at("app")]).as_deref(),
        Some("one")
    );
}
