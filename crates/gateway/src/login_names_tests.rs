//! Unit tests of the login's names.

use super::*;

#[test]
fn a_long_user_is_cut_to_63_bytes_at_a_character_boundary() {
    assert_eq!(role_name(b"alice"), "alice");
    let long = "a".repeat(70);
    assert_eq!(role_name(long.as_bytes()), "a".repeat(63));
    // 62 bytes then a 2-byte character: cutting at 63 would split it.
    let split = format!("{}é", "b".repeat(62));
    assert_eq!(role_name(split.as_bytes()), "b".repeat(62));
    let exact = format!("{}é", "c".repeat(61));
    assert_eq!(role_name(exact.as_bytes()), exact);
    // Not UTF-8: cut at 63 bytes, never longer than the server's name.
    let raw = [0xffu8; 80];
    assert_eq!(role_name(&raw).chars().count(), 63);
}

#[test]
fn an_empty_database_is_the_roles_and_long_names_are_cut_as_the_server_cuts_them() {
    // A hand-built startup with `database=` connects to the role's database: a cap or a
    // window scoped by `databases` must see that one, as the agent does.
    let params = |pairs: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    assert_eq!(
        database_and_application(&params(&[("database", "")]), "reporting"),
        ("reporting".to_owned(), String::new())
    );
    assert_eq!(
        database_and_application(&params(&[]), "reporting"),
        ("reporting".to_owned(), String::new())
    );
    let long = "x".repeat(80);
    let (database, application) = database_and_application(
        &params(&[("database", &long), ("application_name", &long)]),
        "r",
    );
    assert_eq!((database.len(), application.len()), (63, 63));
}

#[test]
fn an_application_name_is_ascii_as_the_server_records_it() {
    assert_eq!(application_name(b"psql"), "psql");
    // Non-ASCII and control bytes, as PostgreSQL 16+ escapes them (a server whose encoding
    // cannot hold the name would otherwise fail the admission claim).
    assert_eq!(
        application_name("app\u{1f600}".as_bytes()),
        "app\\xf0\\x9f\\x98\\x80"
    );
    assert_eq!(application_name(b"a\tb\x7f"), "a\\x09b\\x7f");
    // Escapes count towards the 63 bytes, as on the server (cut after the cleaning).
    let long = "\u{e9}".repeat(20);
    let clean = application_name(long.as_bytes());
    assert_eq!(clean.len(), 63);
    assert!(clean.starts_with("\\xc3\\xa9"), "{clean}");
    assert!(clean.is_ascii());
}
