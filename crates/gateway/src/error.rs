//! Why a client's session ended, and the FATAL errors the gateway itself sends.

use std::io;

use curfew_wire::{ProtocolError, encode_error_response, field};

/// SQLSTATEs the gateway sends itself (PostgreSQL's codes, so drivers react as to the server).
pub mod sqlstate {
    /// `too_many_connections`.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// `invalid_authorization_specification` (a refused plaintext client, as `pg_hba.conf`).
    pub const INVALID_AUTHORIZATION: &str = "28000";
    /// `invalid_password`.
    pub const INVALID_PASSWORD: &str = "28P01";
    /// `protocol_violation`.
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    /// `query_canceled`, as PostgreSQL's "canceling authentication due to timeout".
    pub const QUERY_CANCELED: &str = "57014";
    /// `connection_failure`: the server could not be reached.
    pub const CONNECTION_FAILURE: &str = "08006";
    /// `feature_not_supported`.
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// `admin_shutdown`: the session is ended by the gateway's operator or its policy.
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    /// `idle_session_timeout`: PostgreSQL's own for a session ended for being idle.
    pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
    /// `idle_in_transaction_session_timeout`: PostgreSQL's own for a session ended while idle
    /// in a transaction.
    pub const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: &str = "25P03";
}

/// A FATAL error the gateway sends a client before closing: an SQLSTATE and a message that
/// never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLSTATE {code})")]
pub struct Fatal {
    /// The SQLSTATE.
    pub code: &'static str,
    /// The message the client sees.
    pub message: String,
    /// Why, for the client (the DETAIL field), if given.
    pub detail: Option<String>,
    /// What the client can do about it (the HINT field), if given.
    pub hint: Option<String>,
}

impl Fatal {
    /// A FATAL with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// The same FATAL with `detail` (the reason) as its DETAIL field.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Fatal {
        self.detail = Some(detail.into());
        self
    }

    /// The same FATAL with `hint` as its HINT field.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Fatal {
        self.hint = Some(hint.into());
        self
    }

    /// The ErrorResponse bytes. A message the codec cannot carry (a NUL inside) is cut there.
    pub fn encode(&self) -> Vec<u8> {
        let cut = |text: &'_ str| -> Vec<u8> {
            text.split('\0')
                .next()
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        };
        let message = cut(&self.message);
        let detail = self.detail.as_deref().map(cut);
        let hint = self.hint.as_deref().map(cut);
        let mut fields: Vec<(u8, &[u8])> = vec![
            (field::SEVERITY, b"FATAL"),
            (field::SEVERITY_NONLOCALIZED, b"FATAL"),
            (field::CODE, self.code.as_bytes()),
            (field::MESSAGE, &message),
        ];
        if let Some(detail) = detail.as_deref().filter(|d| !d.is_empty()) {
            fields.push((field::DETAIL, detail));
        }
        if let Some(hint) = hint.as_deref().filter(|h| !h.is_empty()) {
            fields.push((field::HINT, hint));
        }
        let mut out = Vec::with_capacity(
            32 + message.len()
                + detail.as_ref().map_or(0, Vec::len)
                + hint.as_ref().map_or(0, Vec::len),
        );
        // Fields without NULs and far below the limit: the encoder cannot refuse them.
        let _ = encode_error_response(&fields, &mut out);
        out
    }
}

/// Why a session ended before or during the relay.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading from or writing to the client failed.
    #[error("client connection: {0}")]
    ClientIo(#[source] io::Error),
    /// Reading from or writing to the server failed.
    #[error("server connection: {0}")]
    ServerIo(#[source] io::Error),
    /// The client broke the protocol.
    #[error("client protocol: {0}")]
    ClientProtocol(#[source] ProtocolError),
    /// The server broke the protocol (or sent something the gateway does not expect).
    #[error("server protocol: {0}")]
    ServerProtocol(#[source] ProtocolError),
    /// The client's opening packets came in an order PostgreSQL does not allow.
    #[error("client protocol: {0}")]
    ClientNegotiation(&'static str),
    /// The client closed the connection before the session started.
    #[error("the client closed the connection")]
    ClientClosed,
    /// The server closed the connection during the startup.
    #[error("the server closed the connection during the startup")]
    ServerClosed,
    /// The server's login messages came out of order.
    #[error("server protocol: {0}")]
    ServerSequence(&'static str),
    /// The TLS handshake with the client failed.
    #[error("TLS handshake with the client: {0}")]
    ClientTls(#[source] io::Error),
    /// The TLS handshake with the server failed.
    #[error("TLS with the server: {0}")]
    ServerTls(String),
    /// The gateway refused the client with this FATAL (already sent).
    #[error("refused: {0}")]
    Refused(#[source] Fatal),
    /// The server refused the login; its ErrorResponse was forwarded.
    #[error("the server refused the login: SQLSTATE {code}: {message}")]
    ServerRefused {
        /// The server's SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The login did not finish within `login_timeout`.
    #[error("authentication did not finish within the login timeout")]
    LoginTimeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fatal_is_an_error_response_with_severity_code_and_message() {
        let bytes = Fatal::new(sqlstate::TOO_MANY_CONNECTIONS, "too many clients").encode();
        assert_eq!(bytes[0], b'E');
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len + 1, bytes.len());
        let body = &bytes[5..];
        assert!(body.windows(6).any(|w| w == b"C53300"));
        assert!(body.windows(17).any(|w| w == b"Mtoo many clients"));
        assert!(body.windows(6).any(|w| w == b"SFATAL"));
    }

    #[test]
    fn a_detail_is_sent_as_the_detail_field() {
        let bytes = Fatal::new(sqlstate::ADMIN_SHUTDOWN, "ended")
            .with_detail("the gateway is shutting down")
            .encode();
        assert!(bytes.windows(6).any(|w| w == b"C57P01"));
        assert!(
            bytes
                .windows(29)
                .any(|w| w == b"Dthe gateway is shutting down")
        );
    }

    #[test]
    fn a_nul_in_a_message_is_cut_not_a_panic() {
        let bytes = Fatal::new(sqlstate::PROTOCOL_VIOLATION, "bad\0rest").encode();
        assert!(bytes.windows(4).any(|w| w == b"Mbad"));
        assert!(!bytes.windows(4).any(|w| w == b"rest"));
    }
}
