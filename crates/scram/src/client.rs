//! The client side of SCRAM-SHA-256, towards PostgreSQL, with a recovered ClientKey instead of
//! a password: libpq's `fe-auth-scram.c` rules.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize as _, Zeroizing};

use crate::attrs::{Attributes, decode};
use crate::channel_binding::CertificateHash;
use crate::crypto::{ClientKey, KEY_LEN, Key, hmac, keys_equal, xor};
use crate::error::{ClientError, Malformed};
use crate::nonce::{NonceSource, is_valid_nonce};
use crate::verifier::{Verifier, parse_iterations};
use crate::{CHANNEL_BINDING_TYPE, Mechanism};

/// The channel binding of the leg to PostgreSQL.
#[derive(Debug, Clone)]
pub enum ClientChannelBinding {
    /// No binding: a plaintext leg, or a TLS one whose certificate has no usable hash
    /// (GS2 flag `n`).
    None,
    /// A TLS leg with the upstream certificate's `tls-server-end-point` hash: `-PLUS` when the
    /// server offers it, otherwise the flag `y`.
    TlsServerEndPoint(CertificateHash),
}

/// The SASLInitialResponse to send.
#[derive(Debug, Clone)]
pub struct ClientFirst {
    /// The chosen mechanism.
    pub mechanism: Mechanism,
    /// The client-first message.
    pub message: String,
}

/// A client exchange that sent client-first and waits for server-first.
pub struct ClientExchange {
    client_key: ClientKey,
    salt: Vec<u8>,
    iterations: u32,
    server_key: Key,
    /// `c=`'s content: GS2 header and binding data, before base64.
    channel_binding: Vec<u8>,
    client_nonce: String,
    /// Crate-visible so the RFC 7677 vector (whose client sends a user name) can be replayed.
    pub(crate) client_first_bare: String,
}

/// A client exchange that sent client-final and waits for server-final.
pub struct AwaitingServerFinal {
    expected_signature: Zeroizing<Key>,
}

impl Drop for ClientExchange {
    fn drop(&mut self) {
        self.server_key.zeroize();
    }
}

impl ClientExchange {
    /// Starts an exchange as the role whose ClientKey is `client_key`, expecting the server to
    /// hold `verifier` (salt, iterations and ServerKey are checked against it), choosing among
    /// the `offered` mechanism names of AuthenticationSASL.
    ///
    /// # Errors
    /// [`ClientError::NoMechanism`] when SCRAM-SHA-256 is not offered; a nonce failure.
    pub fn start(
        client_key: ClientKey,
        verifier: &Verifier,
        binding: &ClientChannelBinding,
        offered: &[&str],
        nonces: &mut dyn NonceSource,
    ) -> Result<(ClientFirst, ClientExchange), ClientError> {
        let offers = |m: Mechanism| offered.contains(&m.name());
        let (mechanism, channel_binding) = match binding {
            ClientChannelBinding::TlsServerEndPoint(hash) if offers(Mechanism::ScramSha256Plus) => {
                let mut data = format!("p={CHANNEL_BINDING_TYPE},,").into_bytes();
                data.extend_from_slice(hash.as_bytes());
                (Mechanism::ScramSha256Plus, data)
            }
            ClientChannelBinding::TlsServerEndPoint(_) if offers(Mechanism::ScramSha256) => {
                (Mechanism::ScramSha256, b"y,,".to_vec())
            }
            ClientChannelBinding::None if offers(Mechanism::ScramSha256) => {
                (Mechanism::ScramSha256, b"n,,".to_vec())
            }
            _ => return Err(ClientError::NoMechanism),
        };
        let client_nonce = nonces.nonce()?;
        // libpq sends an empty user name: PostgreSQL takes the startup packet's.
        let client_first_bare = format!("n=,r={client_nonce}");
        let gs2_header = match mechanism {
            Mechanism::ScramSha256Plus => format!("p={CHANNEL_BINDING_TYPE},,"),
            Mechanism::ScramSha256 => String::from_utf8_lossy(&channel_binding).into_owned(),
        };
        let first = ClientFirst {
            mechanism,
            message: format!("{gs2_header}{client_first_bare}"),
        };
        let exchange = ClientExchange {
            client_key,
            salt: verifier.salt.clone(),
            iterations: verifier.iterations,
            server_key: verifier.server_key,
            channel_binding,
            client_nonce,
            client_first_bare,
        };
        Ok((first, exchange))
    }

    /// Handles server-first (AuthenticationSASLContinue) and returns client-final.
    ///
    /// # Errors
    /// A malformed message, a nonce that does not extend ours, or
    /// [`ClientError::PasswordChanged`] when salt or iterations differ from the verifier's.
    pub fn server_first(
        self,
        message: &[u8],
    ) -> Result<(String, AwaitingServerFinal), ClientError> {
        let mut attrs = Attributes::new(message)?;
        if attrs.peek_name() == Some(b'm') {
            return Err(Malformed::MandatoryExtension.into());
        }
        let nonce = attrs.expect(b'r')?;
        let salt = decode(attrs.expect(b's')?, 's', 1024)?;
        let iterations =
            parse_iterations(attrs.expect(b'i')?).map_err(|_| Malformed::Iterations)?;
        if !attrs.at_end() {
            return Err(Malformed::Garbage.into());
        }
        if !is_valid_nonce(nonce)
            || nonce.len() <= self.client_nonce.len()
            || !nonce.starts_with(&self.client_nonce)
        {
            return Err(ClientError::Nonce);
        }
        if salt != self.salt || iterations != self.iterations {
            return Err(ClientError::PasswordChanged);
        }
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(&self.channel_binding));
        let server_first = attrs.message();
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        // Every key derived from the ClientKey is wiped when dropped, as the ClientKey is.
        let stored_key = Zeroizing::new(self.client_key.stored_key());
        let client_signature =
            Zeroizing::new(hmac(stored_key.as_ref(), &[auth_message.as_bytes()]));
        let proof = Zeroizing::new(xor(self.client_key.bytes(), &client_signature));
        let expected_signature = Zeroizing::new(hmac(&self.server_key, &[auth_message.as_bytes()]));
        let client_final = format!("{without_proof},p={}", STANDARD.encode(proof.as_ref()));
        Ok((client_final, AwaitingServerFinal { expected_signature }))
    }
}

impl AwaitingServerFinal {
    /// Handles server-final (AuthenticationSASLFinal): the server proves it knows the ServerKey.
    ///
    /// # Errors
    /// [`ClientError::Server`] for `e=`, [`ClientError::ServerSignature`] for a wrong
    /// signature (compared in constant time), or a malformed message.
    pub fn server_final(self, message: &[u8]) -> Result<(), ClientError> {
        let mut attrs = Attributes::new(message)?;
        if attrs.peek_name() == Some(b'e') {
            let error = attrs.expect(b'e')?;
            return Err(ClientError::Server(error.chars().take(200).collect()));
        }
        let signature = decode(attrs.expect(b'v')?, 'v', KEY_LEN)?;
        if !attrs.at_end() {
            return Err(Malformed::Garbage.into());
        }
        let signature: Key = signature
            .as_slice()
            .try_into()
            .map_err(|_| Malformed::Base64('v'))?;
        if keys_equal(&signature, &self.expected_signature) {
            Ok(())
        } else {
            Err(ClientError::ServerSignature)
        }
    }
}
