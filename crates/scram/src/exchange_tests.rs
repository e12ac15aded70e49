//! Both sides together: RFC 7677's test vector, full exchanges, the channel-binding matrix.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::*;

const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_verifier() -> Verifier {
    Verifier::from_password(b"pencil", &STANDARD.decode(RFC_SALT).unwrap(), 4096).unwrap()
}

pub(crate) fn hash() -> CertificateHash {
    CertificateHash::from_bytes(vec![7; 32])
}

#[test]
fn rfc7677_server_side() {
    let server = ServerExchange::new(
        rfc_verifier(),
        ServerChannelBinding::None,
        &mut FixedNonce(RFC_SERVER_NONCE.into()),
    )
    .unwrap();
    let (server_first, server) = server
        .client_first("SCRAM-SHA-256", RFC_CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(server_first, RFC_SERVER_FIRST);
    let done = server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(done.server_final, RFC_SERVER_FINAL);
    let derived = ClientKey::derive(b"pencil", &STANDARD.decode(RFC_SALT).unwrap(), 4096);
    assert!(done.client_key.ct_eq(&derived));
}

#[test]
fn rfc7677_client_side() {
    let salt = STANDARD.decode(RFC_SALT).unwrap();
    let key = ClientKey::derive(b"pencil", &salt, 4096);
    let (first, client) = ClientExchange::start(
        key,
        &rfc_verifier(),
        &ClientChannelBinding::None,
        &["SCRAM-SHA-256"],
        &mut FixedNonce(RFC_CLIENT_NONCE.into()),
    )
    .unwrap();
    // libpq, like curfew, sends an empty user name; the RFC's client sent "user".
    assert_eq!(first.message, "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
    assert_eq!(first.mechanism, Mechanism::ScramSha256);
    let mut client = client;
    client.client_first_bare = RFC_CLIENT_FIRST["n,,".len()..].to_owned();
    let (client_final, client) = client.server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(client_final, RFC_CLIENT_FINAL);
    client.server_final(RFC_SERVER_FINAL.as_bytes()).unwrap();
}

/// Runs a whole exchange: the client knows `password`, the gateway holds `verifier`.
fn exchange(
    password: &[u8],
    verifier: &Verifier,
    server_binding: ServerChannelBinding,
    client_binding: ClientChannelBinding,
) -> Result<ClientKey, AuthFailure> {
    let server = ServerExchange::new(verifier.clone(), server_binding, &mut OsNonce).unwrap();
    let offered: Vec<&str> = server.mechanisms().iter().map(|m| m.name()).collect();
    let key = ClientKey::derive(password, verifier.salt(), verifier.iterations());
    let (first, client) =
        ClientExchange::start(key, verifier, &client_binding, &offered, &mut OsNonce).unwrap();
    let (server_first, server) =
        server.client_first(first.mechanism.name(), first.message.as_bytes())?;
    let (client_final, client) = client.server_first(server_first.as_bytes()).unwrap();
    let done = server.client_final(client_final.as_bytes())?;
    client.server_final(done.server_final.as_bytes()).unwrap();
    Ok(done.client_key)
}

#[test]
fn full_exchange_recovers_the_password_client_key() {
    let verifier = Verifier::from_password(b"correct horse", b"0123456789abcdef", 64).unwrap();
    for (server, client) in [
        (ServerChannelBinding::None, ClientChannelBinding::None),
        (
            ServerChannelBinding::TlsServerEndPoint(hash()),
            ClientChannelBinding::TlsServerEndPoint(hash()),
        ),
        (
            ServerChannelBinding::TlsServerEndPoint(hash()),
            ClientChannelBinding::None,
        ),
    ] {
        let recovered = exchange(b"correct horse", &verifier, server, client).unwrap();
        let derived = ClientKey::derive(b"correct horse", b"0123456789abcdef", 64);
        assert!(recovered.ct_eq(&derived));
    }
}

#[test]
fn a_wrong_password_fails_as_a_wrong_proof() {
    let verifier = Verifier::from_password(b"correct horse", b"0123456789abcdef", 64).unwrap();
    let err = exchange(
        b"battery staple",
        &verifier,
        ServerChannelBinding::None,
        ClientChannelBinding::None,
    )
    .err()
    .unwrap();
    assert_eq!(err, AuthFailure::WrongProof);
    assert_eq!(
        err.client_message("alice"),
        AuthFailure::MockRole.client_message("alice")
    );
}

#[test]
fn a_mock_role_fails_whatever_the_proof_and_keeps_its_salt() {
    let mock = Verifier::mock("nobody", b"gateway secret", 4096).unwrap();
    assert_eq!(mock.salt().len(), MOCK_SALT_LEN);
    let again = Verifier::mock("nobody", b"gateway secret", 4096).unwrap();
    assert_eq!(mock.salt(), again.salt());
    let other = Verifier::mock("somebody", b"gateway secret", 4096).unwrap();
    assert_ne!(mock.salt(), other.salt());
    let err = exchange(
        b"",
        &mock,
        ServerChannelBinding::None,
        ClientChannelBinding::None,
    );
    assert_eq!(err.err(), Some(AuthFailure::MockRole));
}

/// The server's answer to a client-first with GS2 header `gs2` and `mechanism`.
fn first_outcome(
    binding: ServerChannelBinding,
    mechanism: &str,
    gs2: &str,
) -> Result<(), AuthFailure> {
    let server = ServerExchange::new(
        Verifier::from_password(b"pw", b"salt", 1).unwrap(),
        binding,
        &mut FixedNonce("server".into()),
    )
    .unwrap();
    let message = format!("{gs2}n=,r=client");
    server
        .client_first(mechanism, message.as_bytes())
        .map(|_| ())
}

#[test]
fn every_gs2_flag_against_every_leg() {
    let tls = || ServerChannelBinding::TlsServerEndPoint(hash());
    let plain = || ServerChannelBinding::None;
    let p = "p=tls-server-end-point,,";
    let cases: [(ServerChannelBinding, &str, &str, Result<(), AuthFailure>); 10] = [
        // A plaintext leg offers only SCRAM-SHA-256.
        (plain(), "SCRAM-SHA-256", "n,,", Ok(())),
        (plain(), "SCRAM-SHA-256", "y,,", Ok(())),
        (
            plain(),
            "SCRAM-SHA-256",
            p,
            Err(AuthFailure::ChannelBindingFlag),
        ),
        (
            plain(),
            "SCRAM-SHA-256-PLUS",
            p,
            Err(AuthFailure::Mechanism),
        ),
        // A TLS leg offers both.
        (tls(), "SCRAM-SHA-256", "n,,", Ok(())),
        (tls(), "SCRAM-SHA-256", "y,,", Err(AuthFailure::Downgrade)),
        (
            tls(),
            "SCRAM-SHA-256",
            p,
            Err(AuthFailure::ChannelBindingFlag),
        ),
        (tls(), "SCRAM-SHA-256-PLUS", p, Ok(())),
        (
            tls(),
            "SCRAM-SHA-256-PLUS",
            "n,,",
            Err(AuthFailure::ChannelBindingFlag),
        ),
        (
            tls(),
            "SCRAM-SHA-256-PLUS",
            "y,,",
            Err(AuthFailure::ChannelBindingFlag),
        ),
    ];
    for (binding, mechanism, gs2, expected) in cases {
        assert_eq!(
            first_outcome(binding, mechanism, gs2),
            expected,
            "{mechanism} {gs2}"
        );
    }
    assert_eq!(
        first_outcome(tls(), "SCRAM-SHA-256-PLUS", "p=tls-unique,,"),
        Err(AuthFailure::ChannelBindingType)
    );
}

#[test]
fn plus_fails_when_the_client_binds_to_another_certificate() {
    let verifier = Verifier::from_password(b"pw", b"salt", 1).unwrap();
    let other = CertificateHash::from_bytes(vec![8; 32]);
    let err = exchange(
        b"pw",
        &verifier,
        ServerChannelBinding::TlsServerEndPoint(hash()),
        ClientChannelBinding::TlsServerEndPoint(other),
    );
    assert_eq!(err.err(), Some(AuthFailure::ChannelBindingData));
}

#[test]
fn a_tls_client_facing_a_plaintext_server_sends_y_and_succeeds() {
    let verifier = Verifier::from_password(b"pw", b"salt", 1).unwrap();
    let server =
        ServerExchange::new(verifier.clone(), ServerChannelBinding::None, &mut OsNonce).unwrap();
    let key = ClientKey::derive(b"pw", b"salt", 1);
    let (first, _) = ClientExchange::start(
        key,
        &verifier,
        &ClientChannelBinding::TlsServerEndPoint(hash()),
        &["SCRAM-SHA-256"],
        &mut OsNonce,
    )
    .unwrap();
    assert!(first.message.starts_with("y,,"), "{}", first.message);
    server
        .client_first(first.mechanism.name(), first.message.as_bytes())
        .unwrap();
}

#[test]
fn a_client_nonce_over_1024_bytes_is_malformed_before_any_server_first() {
    let outcome = |nonce_len: usize| {
        let server = ServerExchange::new(
            Verifier::from_password(b"pw", b"salt", 1).unwrap(),
            ServerChannelBinding::None,
            &mut FixedNonce("server".into()),
        )
        .unwrap();
        let message = format!("n,,n=,r={}", "a".repeat(nonce_len));
        server
            .client_first("SCRAM-SHA-256", message.as_bytes())
            .map(|(first, _)| first.len())
    };
    assert!(outcome(MAX_CLIENT_NONCE_LEN).is_ok());
    assert_eq!(
        outcome(MAX_CLIENT_NONCE_LEN + 1).err(),
        Some(AuthFailure::Malformed(Malformed::Nonce))
    );
}

#[test]
fn a_mock_verifier_with_the_servers_salt_keeps_it_and_fails_every_proof() {
    let mock = Verifier::mock_with_salt("AAECAwQFBgcICQoLDA0ODw==", 5000).unwrap();
    assert_eq!(mock.salt(), (0u8..16).collect::<Vec<_>>().as_slice());
    assert_eq!((mock.iterations(), mock.is_mock()), (5000, true));
    let err = exchange(
        b"",
        &mock,
        ServerChannelBinding::None,
        ClientChannelBinding::None,
    );
    assert_eq!(err.err(), Some(AuthFailure::MockRole));
    for (salt, iterations) in [("", 4096), ("not base64!", 4096), ("AAEC", 0)] {
        assert!(
            Verifier::mock_with_salt(salt, iterations).is_err(),
            "{salt}"
        );
    }
}
