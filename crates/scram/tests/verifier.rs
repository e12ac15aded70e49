//! Stored secrets as PostgreSQL keeps them: SCRAM verifiers parsed, everything else told apart.
#![allow(clippy::unwrap_used)]

use curfew_scram::{MAX_ITERATIONS, OtherSecret, Verifier, VerifierError};

/// `SCRAM-SHA-256$4096:…` for the password "pencil" (RFC 7677's salt).
const PENCIL: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

#[test]
fn parses_and_writes_back_the_stored_form() {
    let verifier = Verifier::parse(PENCIL).unwrap();
    assert_eq!(verifier.iterations(), 4096);
    assert_eq!(verifier.salt().len(), 16);
    assert!(!verifier.is_mock());
    assert_eq!(verifier.to_stored_form(), PENCIL);
    let computed = Verifier::from_password(b"pencil", verifier.salt(), 4096).unwrap();
    assert_eq!(computed, verifier);
}

#[test]
fn md5_and_plaintext_secrets_are_their_own_kind() {
    let md5 = format!("md5{}", "0123456789abcdef".repeat(2));
    assert_eq!(
        Verifier::parse(&md5),
        Err(VerifierError::NotScram(OtherSecret::Md5))
    );
    for plaintext in ["", "hunter2", "md5short", "SCRAM-SHA-1$4096:abc$x:y"] {
        assert_eq!(
            Verifier::parse(plaintext),
            Err(VerifierError::NotScram(OtherSecret::Plaintext)),
            "{plaintext}"
        );
    }
    let message = VerifierError::NotScram(OtherSecret::Md5).to_string();
    assert!(
        message.contains("password_encryption = scram-sha-256"),
        "{message}"
    );
}

#[test]
fn broken_verifiers_are_malformed_and_never_echoed() {
    let keys =
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
    let cases = [
        format!("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=={keys}"),
        format!("SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==${keys}"),
        format!("SCRAM-SHA-256$4096:not*base64$${keys}"),
        format!("SCRAM-SHA-256$4096:$${keys}"),
        format!("SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==${keys}"),
        format!(
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$c2hvcnQ=:{}",
            &keys[45..]
        ),
        format!(
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==${}",
            &keys[..44]
        ),
    ];
    for stored in &cases {
        let err = Verifier::parse(stored).unwrap_err();
        assert!(
            matches!(err, VerifierError::Malformed(_)),
            "{stored}: {err:?}"
        );
        assert!(!err.to_string().contains("WG5d8"), "{err}");
    }
}

#[test]
fn iteration_counts_out_of_range_are_refused() {
    let keys =
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
    for (count, expected) in [
        ("0", 0u64),
        ("10000001", 10_000_001),
        ("4294967296", 4_294_967_296),
    ] {
        let stored = format!("SCRAM-SHA-256${count}:W22ZaJ0SNY7soEsUEjb6gQ==${keys}");
        assert_eq!(
            Verifier::parse(&stored),
            Err(VerifierError::Iterations(expected))
        );
    }
    assert!(Verifier::mock("r", b"k", 0).is_err());
    assert!(Verifier::mock("r", b"k", MAX_ITERATIONS + 1).is_err());
    assert!(Verifier::from_password(b"p", b"s", 0).is_err());
}

#[test]
fn debug_never_shows_key_material() {
    let verifier = Verifier::parse(PENCIL).unwrap();
    let shown = format!("{verifier:?}");
    for secret in ["W22ZaJ0", "WG5d8", "wfPLw", "91", "8f"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let mock = Verifier::mock("nobody", b"secret", 4096).unwrap();
    assert!(!format!("{mock:?}").contains("secret"));
}

#[test]
fn mock_salt_depends_on_the_role_and_the_gateway_secret() {
    let a = Verifier::mock("alice", b"one", 4096).unwrap();
    assert!(a.is_mock());
    assert_eq!(a.iterations(), 4096);
    assert_eq!(
        a.salt(),
        Verifier::mock("alice", b"one", 4096).unwrap().salt()
    );
    assert_ne!(
        a.salt(),
        Verifier::mock("alice", b"two", 4096).unwrap().salt()
    );
    assert_ne!(
        a.salt(),
        Verifier::mock("bob", b"one", 4096).unwrap().salt()
    );
}
