//! Exemptions: `[[exempt]]` entries (keys ANDed), the `[exempt]` table (keys ORed), and the
//! engine agreeing with [`Exemptions::session`].

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::engine::{Verdict, assess};
use crate::parse_policy;
use crate::session::{BackendType, Session, SessionState};

const RULE: &str = "\n[[rule]]\nname = \"life\"\nlifetime = \"1m\"\n";

fn parsed(exempt: &str) -> crate::Parsed {
    parse_policy("t.toml", &format!("{exempt}{RULE}"), jiff::tz::db())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> jiff::Timestamp {
    "2026-11-23T15:00:00Z".parse().unwrap()
}

fn session(role: &str, application: &str) -> Session {
    Session {
        pid: 1,
        backend_start: "2026-11-23T12:00:00Z".parse().unwrap(),
        xact_start: None,
        state: SessionState::Idle,
        state_change: None,
        role: role.into(),
        member_of: Arc::from(Vec::<String>::new()),
        database: "app".into(),
        client_addr: crate::ClientAddr::Ip("10.1.2.3".parse().unwrap()),
        application: application.into(),
        backend_type: BackendType::ClientBackend,
    }
}

fn engine_says(policy: &crate::Policy, s: &Session) -> Option<ExemptBy> {
    match &assess(policy, std::slice::from_ref(s), now())[0] {
        Verdict::Exempt { by } => Some(*by),
        _ => None,
    }
}

#[test]
fn an_entry_exempts_only_sessions_matching_every_key() {
    let p = parsed(
        "[[exempt]]\nroles = [\"backup\"]\napplications = [\"pg_dump\"]\n\n[[exempt]]\nroles = [\"postgres\"]\n",
    )
    .policy;
    let by = ExemptBy::Entry {
        number: 1,
        keys: ExemptKeys::of(&p.exempt.entries[0].scope),
    };
    let cases = [
        (session("backup", "pg_dump"), Some(by)),
        (session("backup", "psql"), None),
        (session("kim", "pg_dump"), None),
        (
            session("postgres", "psql"),
            p.exempt.entries.get(1).map(|e| e.by),
        ),
    ];
    for (s, expected) in cases {
        assert_eq!(p.exempt.session(&s), expected, "{s:?}");
        assert_eq!(engine_says(&p, &s), expected, "{s:?}");
    }
    assert_eq!(by.to_string(), "[[exempt]] #1 (roles + applications)");
    // Only the role-only entry exempts a role whatever its sessions do.
    assert_eq!(p.exempt.by_role("backup", &[]), None);
    assert!(p.exempt.by_role("postgres", &[]).is_some());
    assert_eq!(p.exempt.by_application("pg_dump"), None);
}

#[test]
fn the_exempt_table_still_ors_its_keys() {
    let p = parsed("[exempt]\nroles = [\"postgres\"]\napplications = [\"batch-*\"]\naddresses = [\"10.99.0.0/16\"]\n").policy;
    assert_eq!(p.exempt.entries.len(), 3);
    assert_eq!(
        p.exempt.session(&session("postgres", "psql")),
        Some(ExemptBy::Role)
    );
    assert_eq!(
        p.exempt.session(&session("kim", "batch-1")),
        Some(ExemptBy::Application)
    );
    let mut from = session("kim", "psql");
    from.client_addr = crate::ClientAddr::Ip("10.99.1.1".parse::<IpAddr>().unwrap());
    assert_eq!(p.exempt.session(&from), Some(ExemptBy::Address));
    assert_eq!(p.exempt.session(&session("kim", "psql")), None);
    // The key reported first is the one that always was: roles before applications.
    assert_eq!(
        engine_says(&p, &session("postgres", "batch-1")),
        Some(ExemptBy::Role)
    );
    assert_eq!(ExemptBy::Application.to_string(), "[exempt] applications");
    assert_eq!(
        p.exempt.by_application("batch-7"),
        Some(ExemptBy::Application)
    );
    assert_eq!(p.exempt.by_role("postgres", &[]), Some(ExemptBy::Role));
}

#[test]
fn an_exemption_by_application_alone_is_warned_about() {
    for text in [
        "[exempt]\nroles = [\"postgres\"]\napplications = [\"pg_dump\"]\n",
        "[[exempt]]\napplications = [\"pg_dump\"]\n",
    ] {
        let warnings: Vec<String> = parsed(text)
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("which the client chooses")
                && warnings[0].contains("combine it with `roles` or `member_of`"),
            "{warnings:?}"
        );
        assert!(
            warnings[0].contains(if text.starts_with("[[") {
                "t.toml:2:1"
            } else {
                "t.toml:3:1"
            }),
            "{warnings:?}"
        );
    }
    let combined = parsed("[[exempt]]\nroles = [\"backup\"]\napplications = [\"pg_dump\"]\n");
    assert!(combined.warnings.is_empty(), "{:?}", combined.warnings);
}

#[test]
fn an_entry_without_keys_and_both_forms_at_once_are_refused() {
    let err = parse_policy("t.toml", &format!("[[exempt]]\n{RULE}"), jiff::tz::db())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t.toml:1:1: [[exempt]] #1 has no key"),
        "{err}"
    );
    let err = parse_policy(
        "t.toml",
        "[exempt]\nroles = [\"a\"]\n[[exempt]]\nroles = [\"b\"]\n",
        jiff::tz::db(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("t.toml:3:"), "{err}");
    let err = parse_policy("t.toml", "exempt = 3\n", jiff::tz::db())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("must be a table, [exempt], or entries, [[exempt]]"),
        "{err}"
    );
}

#[test]
fn explain_says_every_key_of_an_entry_must_match() {
    let p = parsed("[[exempt]]\nroles = [\"backup\"]\napplications = [\"pg_dump\"]\n\n[[exempt]]\naddresses = [\"local\"]\n").policy;
    let text = crate::explain::explain(&p).exemptions;
    assert!(
        text.contains("sessions that are of roles `backup` and of applications `pg_dump`; or that are from addresses `local` (Unix socket)."),
        "{text}"
    );
    assert!(!text.contains("application alone"), "{text}");
}

/// A small world: each exemption is one of a few entries over two roles, two applications and
/// two addresses, so that random entries overlap often.
fn entry_text() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop::sample::select(vec!["backup", "kim"])),
        prop::option::of(prop::sample::select(vec!["pg_dump", "psql"])),
        prop::option::of(prop::sample::select(vec!["10.0.0.0/8", "local"])),
        prop::option::of(prop::sample::select(vec!["app", "other"])),
    )
        .prop_filter("an entry has a key", |(r, a, n, d)| {
            r.is_some() || a.is_some() || n.is_some() || d.is_some()
        })
        .prop_map(|(r, a, n, d)| {
            let mut t = String::from("[[exempt]]\n");
            for (key, value) in [
                ("roles", r),
                ("applications", a),
                ("addresses", n),
                ("databases", d),
            ] {
                if let Some(v) = value {
                    t.push_str(&format!("{key} = [\"{v}\"]\n"));
                }
            }
            t
        })
}

proptest! {
    /// The engine (which decides per attribute, cached) and `Exemptions::session` (which
    /// checks each entry whole) always agree, on whether and on which exemption.
    #[test]
    fn the_engine_and_session_agree(
        entries in prop::collection::vec(entry_text(), 0..5),
        role in prop::sample::select(vec!["backup", "kim"]),
        application in prop::sample::select(vec!["pg_dump", "psql"]),
        local in any::<bool>(),
        database in prop::sample::select(vec!["app", "other"]),
    ) {
        let p = parsed(&entries.concat()).policy;
        let mut s = session(role, application);
        s.database = database.into();
        if local {
            s.client_addr = crate::ClientAddr::Socket;
        }
        prop_assert_eq!(engine_says(&p, &s), p.exempt.session(&s));
    }
}

/// MariaDB with name resolution on shows `localhost:55866` (or whatever a remote client's
/// reverse DNS says) instead of an address: such a session must not pass for a socket one.
#[test]
fn a_client_known_only_by_name_meets_no_address_exemption_but_every_address_scoped_rule() {
    let by_name = |name: &str| {
        let mut s = session("kim", "psql");
        s.client_addr = crate::ClientAddr::Unresolved(name.into());
        s
    };
    for exempt in [
        "[exempt]\naddresses = [\"local\"]\n",
        "[exempt]\naddresses = [\"0.0.0.0/0\", \"::/0\", \"local\"]\n",
        "[[exempt]]\nroles = [\"kim\"]\naddresses = [\"local\", \"127.0.0.0/8\"]\n",
    ] {
        let p = parsed(exempt).policy;
        for s in [by_name("localhost"), by_name("host.attacker.example")] {
            assert_eq!(p.exempt.session(&s), None, "{exempt} {:?}", s.client_addr);
            assert_eq!(engine_says(&p, &s), None, "{exempt} {:?}", s.client_addr);
        }
        // A socket session is still exempted by `local` (where the exemption names it).
        let mut socket = session("kim", "psql");
        socket.client_addr = crate::ClientAddr::Socket;
        assert!(p.exempt.session(&socket).is_some(), "{exempt}");
        assert_eq!(engine_says(&p, &socket), p.exempt.session(&socket));
    }
    // Another key's exemption still covers it: only the address is unknown.
    let p = parsed("[exempt]\nroles = [\"kim\"]\n").policy;
    assert_eq!(engine_says(&p, &by_name("x")), Some(ExemptBy::Role));
    assert_eq!(p.exempt.by_address(None), None);

    // A rule scoped by any address block applies to it (it may be in any block); one scoped
    // to other keys it does not meet does not.
    for (scope, applies) in [
        ("addresses = [\"10.9.0.0/16\"]", true),
        ("addresses = [\"local\"]", true),
        ("addresses = [\"10.9.0.0/16\"]\nroles = [\"ann\"]", false),
        ("", true),
    ] {
        let text = format!("[[rule]]\nname = \"r\"\nlifetime = \"1m\"\n{scope}\n");
        let p = parse_policy("t.toml", &text, jiff::tz::db())
            .unwrap_or_else(|e| panic!("{e}"))
            .policy;
        let s = by_name("host.attacker.example");
        let ends = matches!(
            assess(&p, std::slice::from_ref(&s), now())[0],
            Verdict::Ends(_)
        );
        assert_eq!(ends, applies, "{scope}");
        assert!(p.rules[0].scope.rule_admits_address(&s.client_addr));
        let plan = crate::evaluate(&p, std::slice::from_ref(&s), now());
        assert_eq!(plan.terminations.len(), usize::from(applies), "{scope}");
    }
}

#[test]
fn a_client_known_only_by_name_shows_its_name_marked_unverified_never_an_address() {
    let name = crate::ClientAddr::Unresolved("evil\u{7}.example".into());
    assert_eq!(name.ip(), None);
    assert_eq!(name.to_string(), "name:evil\\u{7}.example (unverified)");
    assert_eq!(
        name.shown().as_deref(),
        Some("name:evil\\u{7}.example (unverified)")
    );
    assert_eq!(crate::ClientAddr::Socket.shown(), None);
    assert_eq!(crate::ClientAddr::Socket.to_string(), "local");
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(
        crate::ClientAddr::from(Some(ip)).shown().as_deref(),
        Some("10.0.0.1")
    );
    assert_eq!(crate::ClientAddr::from(None), crate::ClientAddr::Socket);
}
