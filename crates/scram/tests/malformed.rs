//! Malformed and hostile messages on both sides: each a clear failure, never a panic.
#![allow(clippy::unwrap_used)]

use curfew_scram::{
    AuthFailure, AwaitingClientFinal, CertificateHash, ClientChannelBinding, ClientError,
    ClientExchange, ClientKey, FixedNonce, Malformed, ServerChannelBinding, ServerExchange,
    Verifier,
};
use proptest::prelude::*;

fn verifier() -> Verifier {
    Verifier::from_password(b"pw", b"salt", 2).unwrap()
}

fn server(binding: ServerChannelBinding) -> ServerExchange {
    ServerExchange::new(verifier(), binding, &mut FixedNonce("SERVER".into())).unwrap()
}

/// A server that accepted `n,,n=,r=client` and waits for client-final.
fn after_first() -> AwaitingClientFinal {
    server(ServerChannelBinding::None)
        .client_first("SCRAM-SHA-256", b"n,,n=,r=client")
        .unwrap()
        .1
}

#[test]
fn malformed_client_first_messages() {
    let cases: &[(&[u8], AuthFailure)] = &[
        (b"", Malformed::Gs2Header.into()),
        (b"x,,n=,r=a", Malformed::Gs2Header.into()),
        (b"n,a=admin,n=,r=a", Malformed::AuthorizationIdentity.into()),
        (b"n,x", Malformed::Gs2Header.into()),
        (b"n,,m=ext,n=,r=a", Malformed::MandatoryExtension.into()),
        (b"n,,r=a", Malformed::Expected('n').into()),
        (b"n,,n=", Malformed::Expected('r').into()),
        (b"n,,n=,r=", Malformed::Nonce.into()),
        (b"n,,n=,r=a b", Malformed::Nonce.into()),
        (b"n,,n=,r=a,", Malformed::TrailingComma.into()),
        (b"n,,n=,r=a,1=x", Malformed::Attribute.into()),
        (b"n,,n=,r=\xffa", Malformed::NotUtf8.into()),
        (b"n,,n=\0,r=a", Malformed::Nul.into()),
    ];
    for (message, expected) in cases {
        let got = server(ServerChannelBinding::None).client_first("SCRAM-SHA-256", message);
        assert_eq!(
            got.err().as_ref(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(message)
        );
    }
    // Extensions after the nonce are read and ignored, as PostgreSQL does.
    assert!(
        server(ServerChannelBinding::None)
            .client_first("SCRAM-SHA-256", b"n,,n=user,r=a,x=ext")
            .is_ok()
    );
    assert_eq!(
        server(ServerChannelBinding::None)
            .client_first("SCRAM-SHA-1", b"n,,n=,r=a")
            .err(),
        Some(AuthFailure::Mechanism)
    );
}

#[test]
fn malformed_client_final_messages() {
    let proof = "p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let cases: Vec<(String, AuthFailure)> = vec![
        (String::new(), Malformed::Expected('c').into()),
        (
            format!("r=clientSERVER,{proof}"),
            Malformed::Expected('c').into(),
        ),
        (
            format!("c=!!!!,r=clientSERVER,{proof}"),
            Malformed::Base64('c').into(),
        ),
        (
            format!("c=eSws,r=clientSERVER,{proof}"),
            AuthFailure::ChannelBindingData,
        ),
        (format!("c=biws,{proof}"), Malformed::Expected('r').into()),
        (
            "c=biws,r=clientSERVER".into(),
            Malformed::Expected('p').into(),
        ),
        (
            "c=biws,r=clientSERVER,p=AAAA".into(),
            Malformed::Base64('p').into(),
        ),
        (
            "c=biws,r=clientSERVER,p=!".into(),
            Malformed::Base64('p').into(),
        ),
        (
            format!("c=biws,r=clientSERVER,{proof},x=1"),
            Malformed::Garbage.into(),
        ),
        (format!("c=biws,r=clientOTHER,{proof}"), AuthFailure::Nonce),
        (format!("c=biws,r=client,{proof}"), AuthFailure::Nonce),
        (
            format!("c=biws,r=clientSERVER,{proof}"),
            AuthFailure::WrongProof,
        ),
        (
            format!("c=biws,r=clientSERVER,x=ext,{proof}"),
            AuthFailure::WrongProof,
        ),
    ];
    for (message, expected) in cases {
        let got = after_first().client_final(message.as_bytes());
        assert_eq!(got.err(), Some(expected), "{message}");
    }
}

#[test]
fn every_failure_reads_the_same_to_the_client() {
    let failures = [
        AuthFailure::Malformed(Malformed::Garbage),
        AuthFailure::Mechanism,
        AuthFailure::Downgrade,
        AuthFailure::ChannelBindingData,
        AuthFailure::WrongProof,
        AuthFailure::MockRole,
    ];
    for failure in &failures {
        assert_eq!(
            failure.client_message("alice"),
            "password authentication failed for user \"alice\""
        );
    }
    assert_eq!(AuthFailure::SQLSTATE, "28P01");
}

/// A client exchange that sent `n,,n=,r=client`, expecting `verifier()`.
fn client() -> ClientExchange {
    ClientExchange::start(
        ClientKey::derive(b"pw", b"salt", 2),
        &verifier(),
        &ClientChannelBinding::None,
        &["SCRAM-SHA-256"],
        &mut FixedNonce("client".into()),
    )
    .unwrap()
    .1
}

#[test]
fn malformed_server_first_messages() {
    let salt = "c2FsdA=="; // "salt"
    let cases: Vec<(String, &str)> = vec![
        (format!("m=x,r=clientS,s={salt},i=2"), "malformed"),
        (format!("r=clientS,s={salt}"), "malformed"),
        ("r=clientS,s=!!,i=2".to_owned(), "malformed"),
        (format!("r=clientS,s={salt},i=0"), "malformed"),
        (format!("r=clientS,s={salt},i=99999999999"), "malformed"),
        (format!("r=clientS,s={salt},i=-2"), "malformed"),
        (format!("r=clientS,s={salt},i=2,x=1"), "malformed"),
        (format!("r=client,s={salt},i=2"), "nonce"),
        (format!("r=otherS,s={salt},i=2"), "nonce"),
        ("r=clientS,s=c2FsdDI=,i=2".to_owned(), "changed"),
        (format!("r=clientS,s={salt},i=4096"), "changed"),
    ];
    for (message, expected) in cases {
        let got = client().server_first(message.as_bytes()).err().unwrap();
        let kind = match got {
            ClientError::Malformed(_) => "malformed",
            ClientError::Nonce => "nonce",
            ClientError::PasswordChanged => "changed",
            other => panic!("{message}: {other}"),
        };
        assert_eq!(kind, expected, "{message}");
    }
}

#[test]
fn server_final_errors_and_wrong_signatures() {
    let (_, waiting) = client().server_first(b"r=clientS,s=c2FsdA==,i=2").unwrap();
    assert!(matches!(
        waiting.server_final(b"e=invalid-proof"),
        Err(ClientError::Server(text)) if text == "invalid-proof"
    ));
    for (message, wrong_signature) in [
        (&b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="[..], true),
        (b"v=AAAA", false),
        (b"x=1", false),
        (b"", false),
    ] {
        let (_, waiting) = client().server_first(b"r=clientS,s=c2FsdA==,i=2").unwrap();
        let err = waiting.server_final(message).unwrap_err();
        assert_eq!(
            matches!(err, ClientError::ServerSignature),
            wrong_signature,
            "{err}"
        );
    }
}

#[test]
fn the_client_needs_scram_sha_256_offered() {
    let start = |binding: &ClientChannelBinding, offered: &[&str]| {
        ClientExchange::start(
            ClientKey::derive(b"pw", b"salt", 2),
            &verifier(),
            binding,
            offered,
            &mut FixedNonce("c".into()),
        )
        .map(|(first, _)| first)
    };
    let tls = ClientChannelBinding::TlsServerEndPoint(CertificateHash::from_bytes(vec![1; 32]));
    assert!(matches!(
        start(&ClientChannelBinding::None, &["MD5"]),
        Err(ClientError::NoMechanism)
    ));
    assert!(matches!(
        start(&ClientChannelBinding::None, &["SCRAM-SHA-256-PLUS"]),
        Err(ClientError::NoMechanism)
    ));
    let plus = start(&tls, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]).unwrap();
    assert_eq!(plus.mechanism.name(), "SCRAM-SHA-256-PLUS");
    assert!(plus.message.starts_with("p=tls-server-end-point,,n=,r="));
}

proptest! {
    #[test]
    fn random_client_messages_never_panic(
        first in proptest::collection::vec(any::<u8>(), 0..200),
        last in proptest::collection::vec(any::<u8>(), 0..200),
        plus in any::<bool>(),
    ) {
        let binding = if plus {
            ServerChannelBinding::TlsServerEndPoint(CertificateHash::from_bytes(vec![3; 32]))
        } else {
            ServerChannelBinding::None
        };
        let mechanism = if plus { "SCRAM-SHA-256-PLUS" } else { "SCRAM-SHA-256" };
        let _ = server(binding).client_first(mechanism, &first);
        let _ = after_first().client_final(&last);
    }

    #[test]
    fn random_scram_shaped_messages_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("n,".to_owned()), Just("y,".to_owned()), Just("p=".to_owned()),
                Just(",".to_owned()), Just("r=clientSERVER".to_owned()), Just("c=biws".to_owned()),
                Just("p=AAAA".to_owned()), Just("s=c2FsdA==".to_owned()), Just("i=2".to_owned()),
                Just("v=".to_owned()), "[a-z=,]{0,6}",
            ],
            0..10,
        ),
    ) {
        let message = parts.concat();
        let _ = server(ServerChannelBinding::None).client_first("SCRAM-SHA-256", message.as_bytes());
        let _ = after_first().client_final(message.as_bytes());
        if let Ok((_, waiting)) = client().server_first(message.as_bytes()) {
            let _ = waiting.server_final(message.as_bytes());
        }
    }
}
