//! SCRAM-SHA-256 (RFC 5802, RFC 7677) for curfew's gateway, kept end to end as PgBouncer and
//! Odyssey do: the gateway runs the server side with the client against the role's stored
//! verifier ([`Verifier`], or [`Verifier::mock`] for a role it may not serve), recovers the
//! client's [`ClientKey`] from its proof ([`ServerExchange`] → [`AwaitingClientFinal`] →
//! [`Authenticated`]), and logs in to PostgreSQL as that role with it ([`ClientExchange`]). The
//! password never reaches the gateway.
//!
//! Channel binding is `tls-server-end-point` ([`tls_server_end_point`]): SCRAM-SHA-256-PLUS is
//! offered only on a TLS leg, and a client that supports binding but claims the server does not
//! (`y`) while it was offered is refused as a downgrade.
//!
//! Pure: no I/O, no clock, randomness injected through [`NonceSource`].
//!
//! ```
//! use curfew_scram::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The role's verifier, as read from pg_authid (here computed from a password).
//! let verifier = Verifier::from_password(b"pencil", b"0123456789abcdef", 4096)?;
//! // The gateway's side towards the client; a libpq client would send these messages.
//! let server = ServerExchange::new(verifier.clone(), ServerChannelBinding::None, &mut OsNonce)?;
//! let offered: Vec<&str> = server.mechanisms().iter().map(|m| m.name()).collect();
//! let client_key = ClientKey::derive(b"pencil", verifier.salt(), verifier.iterations());
//! let binding = ClientChannelBinding::None;
//! let (first, client) = ClientExchange::start(client_key, &verifier, &binding, &offered, &mut OsNonce)?;
//! let (server_first, server) = server.client_first(first.mechanism.name(), first.message.as_bytes())?;
//! let (client_final, client) = client.server_first(server_first.as_bytes())?;
//! let authenticated = server.client_final(client_final.as_bytes())?;
//! client.server_final(authenticated.server_final.as_bytes())?;
//! // `authenticated.client_key` now logs in upstream with another ClientExchange.
//! # Ok(())
//! # }
//! ```

mod attrs;
mod channel_binding;
mod client;
mod crypto;
mod error;
mod nonce;
mod server;
mod verifier;

pub use channel_binding::{CertificateError, CertificateHash, tls_server_end_point};
pub use client::{AwaitingServerFinal, ClientChannelBinding, ClientExchange, ClientFirst};
pub use crypto::{ClientKey, KEY_LEN};
pub use error::{AuthFailure, ClientError, Malformed};
#[cfg(any(test, feature = "test-util"))]
pub use nonce::FixedNonce;
pub use nonce::{NonceError, NonceSource, OsNonce, RAW_NONCE_LEN};
pub use server::{
    Authenticated, AwaitingClientFinal, MAX_CLIENT_NONCE_LEN, ServerChannelBinding, ServerExchange,
};
pub use verifier::{MAX_ITERATIONS, MOCK_SALT_LEN, OtherSecret, Verifier, VerifierError};

/// The only channel-binding type PostgreSQL supports.
pub const CHANNEL_BINDING_TYPE: &str = "tls-server-end-point";

/// A SASL mechanism of the SCRAM-SHA-256 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `SCRAM-SHA-256`, without channel binding.
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS`, bound to the TLS connection.
    ScramSha256Plus,
}

impl Mechanism {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }
}

#[cfg(test)]
mod exchange_tests;
