//! The server side against another implementation's client: rust-postgres's
//! `postgres-protocol` SCRAM client, in memory. What it accepts, libpq-style clients accept.
#![allow(clippy::unwrap_used)]

use curfew_scram::{
    AuthFailure, CertificateHash, ClientKey, OsNonce, ServerChannelBinding, ServerExchange,
    Verifier,
};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

/// Runs rust-postgres's client with `password` against curfew's server holding `verifier`.
fn exchange(
    password: &[u8],
    verifier: &Verifier,
    server_binding: ServerChannelBinding,
    mechanism: &str,
    client_binding: ChannelBinding,
) -> Result<ClientKey, AuthFailure> {
    let server = ServerExchange::new(verifier.clone(), server_binding, &mut OsNonce).unwrap();
    let mut client = ScramSha256::new(password, client_binding);
    let (server_first, server) = server.client_first(mechanism, client.message())?;
    client.update(server_first.as_bytes()).unwrap();
    let done = server.client_final(client.message())?;
    client.finish(done.server_final.as_bytes()).unwrap();
    Ok(done.client_key)
}

fn verifier() -> Verifier {
    Verifier::from_password(b"tr0ub4dor&3", b"0123456789abcdef", 4096).unwrap()
}

fn tls() -> ServerChannelBinding {
    ServerChannelBinding::TlsServerEndPoint(CertificateHash::from_bytes(vec![9; 32]))
}

#[test]
fn rust_postgres_client_without_binding_authenticates_and_yields_its_client_key() {
    let key = exchange(
        b"tr0ub4dor&3",
        &verifier(),
        ServerChannelBinding::None,
        "SCRAM-SHA-256",
        ChannelBinding::unsupported(),
    )
    .unwrap();
    assert!(key.ct_eq(&ClientKey::derive(
        b"tr0ub4dor&3",
        b"0123456789abcdef",
        4096
    )));
}

#[test]
fn rust_postgres_client_with_plus_authenticates() {
    exchange(
        b"tr0ub4dor&3",
        &verifier(),
        tls(),
        "SCRAM-SHA-256-PLUS",
        ChannelBinding::tls_server_end_point(vec![9; 32]),
    )
    .unwrap();
}

#[test]
fn rust_postgres_client_bound_elsewhere_or_downgrading_is_refused() {
    let elsewhere = exchange(
        b"tr0ub4dor&3",
        &verifier(),
        tls(),
        "SCRAM-SHA-256-PLUS",
        ChannelBinding::tls_server_end_point(vec![1; 32]),
    );
    assert_eq!(elsewhere.err(), Some(AuthFailure::ChannelBindingData));
    let downgrade = exchange(
        b"tr0ub4dor&3",
        &verifier(),
        tls(),
        "SCRAM-SHA-256",
        ChannelBinding::unrequested(),
    );
    assert_eq!(downgrade.err(), Some(AuthFailure::Downgrade));
}

#[test]
fn rust_postgres_client_with_a_wrong_password_is_refused() {
    let wrong = exchange(
        b"tr0ub4dor&4",
        &verifier(),
        ServerChannelBinding::None,
        "SCRAM-SHA-256",
        ChannelBinding::unsupported(),
    );
    assert_eq!(wrong.err(), Some(AuthFailure::WrongProof));
}
