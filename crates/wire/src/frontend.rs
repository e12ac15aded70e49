//! Client messages the gateway acts on, parsed from frames, and their encoders. Every other
//! client message (Query, Parse, FunctionCall, COPY data, unknown types) stays an opaque
//! [`Frame`] forwarded byte for byte.

use crate::codec::{Reader, put_cstr, write_message};
use crate::error::{Direction, ProtocolError};
use crate::frame::{Frame, expect_tag, frame_limit};

/// A client message, parsed if the gateway acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// 'p': a password or SASL message; which one depends on the authentication request it
    /// answers, so it is read with [`AuthResponse::password`],
    /// [`AuthResponse::sasl_initial`] or [`AuthResponse::sasl_response`].
    AuthResponse(AuthResponse<'a>),
    /// 'X': the client ends the session.
    Terminate,
    /// Any other message: forwarded as is.
    Other(Frame<'a>),
}

impl<'a> FrontendMessage<'a> {
    /// Parses a client frame; types the gateway does not act on come back as
    /// [`FrontendMessage::Other`].
    pub fn parse(frame: Frame<'a>) -> Result<Self, ProtocolError> {
        Ok(match frame.tag() {
            b'p' => FrontendMessage::AuthResponse(AuthResponse { body: frame.body() }),
            b'X' => {
                Reader::new(frame.body(), "Terminate").finish()?;
                FrontendMessage::Terminate
            }
            _ => FrontendMessage::Other(frame),
        })
    }
}

/// The body of a 'p' message, not yet read as one kind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthResponse<'a> {
    body: &'a [u8],
}

impl std::fmt::Debug for AuthResponse<'_> {
    // May hold a password: size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthResponse({} bytes)", self.body.len())
    }
}

impl<'a> AuthResponse<'a> {
    /// Reads a 'p' frame (any other type is an error).
    pub fn from_frame(frame: Frame<'a>) -> Result<Self, ProtocolError> {
        expect_tag(&frame, b'p', "a password or SASL message ('p')")?;
        Ok(AuthResponse { body: frame.body() })
    }

    /// Read as a PasswordMessage (the answer to a cleartext or MD5 request).
    pub fn password(&self) -> Result<PasswordMessage<'a>, ProtocolError> {
        let mut r = Reader::new(self.body, "PasswordMessage");
        let password = r.cstr("password")?;
        r.finish()?;
        Ok(PasswordMessage { password })
    }

    /// Read as a SASLInitialResponse (the answer to AuthenticationSASL).
    pub fn sasl_initial(&self) -> Result<SaslInitialResponse<'a>, ProtocolError> {
        const MESSAGE: &str = "SASLInitialResponse";
        let mut r = Reader::new(self.body, MESSAGE);
        let mechanism = r.cstr("mechanism")?;
        let data = match r.i32("data length")? {
            -1 => None,
            n if n < 0 => {
                return Err(ProtocolError::InvalidField {
                    message: MESSAGE,
                    reason: "data length is negative and not -1",
                });
            }
            // The length is checked against the bytes present, not trusted.
            n => Some(r.take(n as usize, "data")?),
        };
        r.finish()?;
        Ok(SaslInitialResponse { mechanism, data })
    }

    /// Read as a SASLResponse (the answer to AuthenticationSASLContinue): all of it is data.
    pub fn sasl_response(&self) -> SaslResponse<'a> {
        SaslResponse { data: self.body }
    }
}

/// A PasswordMessage: a cleartext password or an MD5 hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordMessage<'a> {
    /// The password as sent; a secret, never to be logged.
    pub password: &'a [u8],
}

impl std::fmt::Debug for PasswordMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordMessage(..)")
    }
}

/// A SASLInitialResponse: the chosen mechanism and its first data, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    /// The mechanism the client chose.
    pub mechanism: &'a [u8],
    /// The client's first message (None when sent as length -1).
    pub data: Option<&'a [u8]>,
}

impl std::fmt::Debug for SaslInitialResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslInitialResponse")
            .field("mechanism", &self.mechanism.escape_ascii().to_string())
            .field("data_len", &self.data.map(<[u8]>::len))
            .finish()
    }
}

/// A SASLResponse: the client's next SASL message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SaslResponse<'a> {
    /// The data (for SCRAM, the client-final-message with its proof).
    pub data: &'a [u8],
}

impl std::fmt::Debug for SaslResponse<'_> {
    // A SCRAM proof with its transcript can be attacked offline: size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaslResponse({} bytes)", self.data.len())
    }
}

fn frontend_message(
    out: &mut Vec<u8>,
    tag: u8,
    message: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    write_message(
        out,
        Some(tag),
        frame_limit(Direction::Frontend, tag),
        message,
        body,
    )
}

/// Appends a SASLInitialResponse; `data` None is sent as length -1.
pub fn encode_sasl_initial_response(
    mechanism: &[u8],
    data: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    const MESSAGE: &str = "SASLInitialResponse";
    frontend_message(out, b'p', MESSAGE, |out| {
        put_cstr(out, mechanism, MESSAGE)?;
        match data {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(data) => {
                let len = i32::try_from(data.len()).map_err(|_| ProtocolError::Unencodable {
                    message: MESSAGE,
                    reason: "longer than PostgreSQL's limit for it",
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
        Ok(())
    })
}

/// Appends a SASLResponse carrying `data`.
pub fn encode_sasl_response(data: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    frontend_message(out, b'p', "SASLResponse", |out| {
        out.extend_from_slice(data);
        Ok(())
    })
}

/// Appends Terminate.
pub fn encode_terminate(out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'X', 0, 0, 0, 4]);
}
