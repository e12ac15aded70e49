//! The server side of SCRAM-SHA-256, towards the client: PostgreSQL's `auth-scram.c` rules,
//! ending with the ClientKey recovered from the client's proof.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::attrs::{Attributes, decode};
use crate::channel_binding::CertificateHash;
use crate::crypto::{ClientKey, KEY_LEN, hmac, keys_equal, sha256, xor};
use crate::error::{AuthFailure, Malformed};
use crate::nonce::{NonceError, NonceSource, is_valid_nonce};

/// The longest client nonce accepted (libpq sends 24 bytes of base64, 32 characters).
pub const MAX_CLIENT_NONCE_LEN: usize = 1024;
use crate::verifier::Verifier;
use crate::{CHANNEL_BINDING_TYPE, Mechanism};

/// The channel binding the client leg can offer.
#[derive(Debug, Clone)]
pub enum ServerChannelBinding {
    /// A plaintext leg: only `SCRAM-SHA-256` is offered.
    None,
    /// A TLS leg: `SCRAM-SHA-256-PLUS` is offered too, bound to the gateway certificate's
    /// `tls-server-end-point` hash.
    TlsServerEndPoint(CertificateHash),
}

/// A server exchange waiting for the client's SASLInitialResponse.
pub struct ServerExchange {
    verifier: Verifier,
    binding: ServerChannelBinding,
    server_nonce: String,
}

/// A server exchange that sent server-first and waits for client-final.
pub struct AwaitingClientFinal {
    verifier: Verifier,
    binding: ServerChannelBinding,
    gs2_flag: u8,
    /// `client-first-message-bare "," server-first-message`: the AuthMessage's first part.
    auth_message_start: String,
    nonce: String,
}

/// A successful exchange.
#[derive(Debug)]
pub struct Authenticated {
    /// The server-final message (`v=…`) for AuthenticationSASLFinal.
    pub server_final: String,
    /// The client's ClientKey, for the upstream login.
    pub client_key: ClientKey,
}

impl ServerExchange {
    /// Starts an exchange against `verifier` (a mock one for an unknown role), offering what
    /// `binding` allows, with a server nonce from `nonces`.
    ///
    /// # Errors
    /// When no nonce can be generated.
    pub fn new(
        verifier: Verifier,
        binding: ServerChannelBinding,
        nonces: &mut dyn NonceSource,
    ) -> Result<ServerExchange, NonceError> {
        Ok(ServerExchange {
            verifier,
            binding,
            server_nonce: nonces.nonce()?,
        })
    }

    /// The mechanisms for AuthenticationSASL, in PostgreSQL's order.
    pub fn mechanisms(&self) -> &'static [Mechanism] {
        match self.binding {
            ServerChannelBinding::None => &[Mechanism::ScramSha256],
            ServerChannelBinding::TlsServerEndPoint(_) => {
                &[Mechanism::ScramSha256Plus, Mechanism::ScramSha256]
            }
        }
    }

    /// Handles the SASLInitialResponse: the `mechanism` the client chose and its client-first
    /// message. Returns the server-first message to send and the exchange's next state.
    ///
    /// # Errors
    /// An [`AuthFailure`] for a mechanism not offered, a malformed message or a channel-binding
    /// flag that does not fit.
    pub fn client_first(
        self,
        mechanism: &str,
        message: &[u8],
    ) -> Result<(String, AwaitingClientFinal), AuthFailure> {
        let chosen = self
            .mechanisms()
            .iter()
            .copied()
            .find(|m| m.name() == mechanism)
            .ok_or(AuthFailure::Mechanism)?;
        let plus_offered = self.mechanisms().contains(&Mechanism::ScramSha256Plus);
        let mut attrs = Attributes::new(message)?;
        let gs2_flag = read_gs2_header(&mut attrs)?;
        match (gs2_flag, chosen) {
            (b'p', Mechanism::ScramSha256Plus) => {}
            (b'n', Mechanism::ScramSha256) => {}
            (b'y', Mechanism::ScramSha256) if plus_offered => return Err(AuthFailure::Downgrade),
            (b'y', Mechanism::ScramSha256) => {}
            _ => return Err(AuthFailure::ChannelBindingFlag),
        }
        let bare_start = attrs.position();
        if attrs.peek_name() == Some(b'm') {
            return Err(Malformed::MandatoryExtension.into());
        }
        // PostgreSQL ignores the user name here: the role is the startup packet's.
        attrs.expect(b'n')?;
        let client_nonce = attrs.expect(b'r')?;
        // Too long a nonce would make a server-first the wire encoder refuses: a failure on
        // another path than every other bad message's.
        if client_nonce.len() > MAX_CLIENT_NONCE_LEN || !is_valid_nonce(client_nonce) {
            return Err(Malformed::Nonce.into());
        }
        // Optional extensions follow; like PostgreSQL, they are read and ignored.
        while !attrs.at_end() {
            attrs.any()?;
        }
        let bare = &attrs.message()[bare_start..];
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        let next = AwaitingClientFinal {
            verifier: self.verifier,
            binding: self.binding,
            gs2_flag,
            auth_message_start: format!("{bare},{server_first}"),
            nonce,
        };
        Ok((server_first, next))
    }
}

/// Reads `n,` / `y,` / `p=tls-server-end-point,` and the empty authorization identity `,`.
fn read_gs2_header(attrs: &mut Attributes<'_>) -> Result<u8, AuthFailure> {
    let flag = if attrs.skip_literal("n,") {
        b'n'
    } else if attrs.skip_literal("y,") {
        b'y'
    } else if attrs.peek_name() == Some(b'p') {
        if attrs.expect(b'p')? != CHANNEL_BINDING_TYPE {
            return Err(AuthFailure::ChannelBindingType);
        }
        b'p'
    } else {
        return Err(Malformed::Gs2Header.into());
    };
    if attrs.skip_literal(",") {
        Ok(flag)
    } else if attrs.peek_name() == Some(b'a') {
        Err(Malformed::AuthorizationIdentity.into())
    } else {
        Err(Malformed::Gs2Header.into())
    }
}

impl AwaitingClientFinal {
    /// Handles the client-final message: checks the channel binding, the nonce and the proof
    /// (in constant time) and recovers the ClientKey.
    ///
    /// # Errors
    /// An [`AuthFailure`] for every way it can fail; the client is told the same for all.
    pub fn client_final(self, message: &[u8]) -> Result<Authenticated, AuthFailure> {
        let mut attrs = Attributes::new(message)?;
        let binding = decode(attrs.expect(b'c')?, 'c', 128)?;
        if !self.binding_matches(&binding) {
            return Err(AuthFailure::ChannelBindingData);
        }
        let nonce = attrs.expect(b'r')?;
        // Extensions may come between the nonce and the proof; PostgreSQL ignores them.
        while !attrs.at_end() && attrs.peek_name() != Some(b'p') {
            attrs.any()?;
        }
        let proof_start = attrs.position();
        let proof = decode(attrs.expect(b'p')?, 'p', KEY_LEN)?;
        let proof: [u8; KEY_LEN] = proof
            .as_slice()
            .try_into()
            .map_err(|_| Malformed::Base64('p'))?;
        if !attrs.at_end() {
            return Err(Malformed::Garbage.into());
        }
        if nonce != self.nonce {
            return Err(AuthFailure::Nonce);
        }
        // `proof_start` is just past ",p="'s comma; the message without proof ends before it.
        let without_proof = &attrs.message()[..proof_start.saturating_sub(1)];
        let auth_message = format!("{},{without_proof}", self.auth_message_start);
        let verifier = &self.verifier;
        // The signature XOR the proof is the ClientKey: wiped when dropped, as the key is.
        let client_signature =
            Zeroizing::new(hmac(&verifier.stored_key, &[auth_message.as_bytes()]));
        let proof = Zeroizing::new(proof);
        let client_key = ClientKey::from_bytes(xor(&proof, &client_signature));
        let proof_ok = keys_equal(&sha256(client_key.bytes()), &verifier.stored_key);
        // A mock verifier fails after the same work, so timing does not tell it apart.
        if verifier.mock {
            return Err(AuthFailure::MockRole);
        }
        if !proof_ok {
            return Err(AuthFailure::WrongProof);
        }
        let server_signature = hmac(&verifier.server_key, &[auth_message.as_bytes()]);
        Ok(Authenticated {
            server_final: format!("v={}", STANDARD.encode(server_signature)),
            client_key,
        })
    }

    /// Whether `c=` decodes to this exchange's GS2 header and channel-binding data.
    fn binding_matches(&self, binding: &[u8]) -> bool {
        match (self.gs2_flag, &self.binding) {
            (b'p', ServerChannelBinding::TlsServerEndPoint(hash)) => {
                let header = format!("p={CHANNEL_BINDING_TYPE},,");
                binding.len() == header.len() + hash.as_bytes().len()
                    && binding.starts_with(header.as_bytes())
                    && subtle::ConstantTimeEq::ct_eq(&binding[header.len()..], hash.as_bytes())
                        .into()
            }
            (b'n', _) => binding == b"n,,",
            (b'y', _) => binding == b"y,,",
            _ => false,
        }
    }
}
