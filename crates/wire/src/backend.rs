//! Server messages the gateway acts on, parsed from frames, and their encoders. Every other
//! server message stays an opaque [`Frame`] forwarded byte for byte.

use crate::codec::{Reader, put_cstr, write_message};
use crate::error::{Direction, ProtocolError};
use crate::fields::{Fields, encode_fields};
use crate::frame::{Frame, frame_limit};
use crate::startup::check_cancel_key;

/// Authentication request codes ('R' messages).
mod auth_code {
    pub(super) const OK: u32 = 0;
    pub(super) const CLEARTEXT_PASSWORD: u32 = 3;
    pub(super) const MD5_PASSWORD: u32 = 5;
    pub(super) const SASL: u32 = 10;
    pub(super) const SASL_CONTINUE: u32 = 11;
    pub(super) const SASL_FINAL: u32 = 12;
}

/// A server message, parsed if the gateway acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// 'R': an authentication request or result.
    Authentication(Authentication<'a>),
    /// 'K': the process id and cancel key of the session.
    BackendKeyData(BackendKeyData<'a>),
    /// 'Z': the server is ready for a new query.
    ReadyForQuery(TransactionStatus),
    /// 'E': an error.
    ErrorResponse(Fields<'a>),
    /// 'N': a notice.
    NoticeResponse(Fields<'a>),
    /// 'S': a run-time parameter's value.
    ParameterStatus(ParameterStatus<'a>),
    /// 'v': the server's answer to a newer minor version or unknown `_pq_.` options.
    NegotiateProtocolVersion(NegotiateProtocolVersion<'a>),
    /// Any other message: forwarded as is.
    Other(Frame<'a>),
}

impl<'a> BackendMessage<'a> {
    /// Parses a server frame; types the gateway does not act on come back as
    /// [`BackendMessage::Other`].
    pub fn parse(frame: Frame<'a>) -> Result<Self, ProtocolError> {
        let body = frame.body();
        Ok(match frame.tag() {
            b'R' => BackendMessage::Authentication(Authentication::parse_body(body)?),
            b'K' => BackendMessage::BackendKeyData(BackendKeyData::parse_body(body)?),
            b'Z' => BackendMessage::ReadyForQuery(TransactionStatus::parse_body(body)?),
            b'E' => BackendMessage::ErrorResponse(Fields::parse_body(body, "ErrorResponse")?),
            b'N' => BackendMessage::NoticeResponse(Fields::parse_body(body, "NoticeResponse")?),
            b'S' => BackendMessage::ParameterStatus(ParameterStatus::parse_body(body)?),
            b'v' => BackendMessage::NegotiateProtocolVersion(NegotiateProtocolVersion::parse_body(
                body,
            )?),
            _ => BackendMessage::Other(frame),
        })
    }
}

/// An authentication request ('R').
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationCleartextPassword.
    CleartextPassword,
    /// AuthenticationMD5Password with its salt.
    Md5Password {
        /// The salt.
        salt: [u8; 4],
    },
    /// AuthenticationSASL with the mechanisms the server offers.
    Sasl(SaslMechanisms<'a>),
    /// AuthenticationSASLContinue with the server's challenge.
    SaslContinue(&'a [u8]),
    /// AuthenticationSASLFinal with the server's outcome data.
    SaslFinal(&'a [u8]),
    /// Any other method (Kerberos, GSSAPI, SSPI, a future one), by its code.
    Unsupported {
        /// The request code.
        code: u32,
    },
}

impl std::fmt::Debug for Authentication<'_> {
    // SASL data lets an eavesdropper's transcript be attacked offline: sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authentication::Ok => f.write_str("Ok"),
            Authentication::CleartextPassword => f.write_str("CleartextPassword"),
            Authentication::Md5Password { .. } => f.write_str("Md5Password"),
            Authentication::Sasl(m) => f.debug_tuple("Sasl").field(m).finish(),
            Authentication::SaslContinue(d) => write!(f, "SaslContinue({} bytes)", d.len()),
            Authentication::SaslFinal(d) => write!(f, "SaslFinal({} bytes)", d.len()),
            Authentication::Unsupported { code } => write!(f, "Unsupported({code})"),
        }
    }
}

impl<'a> Authentication<'a> {
    fn parse_body(body: &'a [u8]) -> Result<Self, ProtocolError> {
        const MESSAGE: &str = "authentication request";
        let mut r = Reader::new(body, MESSAGE);
        let auth = match r.u32("request code")? {
            auth_code::OK => Authentication::Ok,
            auth_code::CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
            auth_code::MD5_PASSWORD => {
                let s = r.take(4, "salt")?;
                Authentication::Md5Password {
                    salt: [s[0], s[1], s[2], s[3]],
                }
            }
            auth_code::SASL => Authentication::Sasl(SaslMechanisms::parse(r.rest())?),
            auth_code::SASL_CONTINUE => Authentication::SaslContinue(r.rest()),
            auth_code::SASL_FINAL => Authentication::SaslFinal(r.rest()),
            // Other methods carry data this crate does not read.
            code => return Ok(Authentication::Unsupported { code }),
        };
        r.finish()?;
        Ok(auth)
    }
}

/// The SASL mechanisms of an AuthenticationSASL, in the server's order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SaslMechanisms<'a> {
    /// NUL-terminated names then an empty one; checked when parsed.
    list: &'a [u8],
}

impl<'a> SaslMechanisms<'a> {
    fn parse(list: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(list, "AuthenticationSASL");
        while !r.cstr("mechanism list terminator")?.is_empty() {}
        r.finish()?;
        Ok(SaslMechanisms { list })
    }

    /// The mechanism names.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.list
            .split(|&b| b == 0)
            .take_while(|name| !name.is_empty())
    }

    /// Whether the server offers `mechanism`.
    pub fn contains(&self, mechanism: &[u8]) -> bool {
        self.iter().any(|m| m == mechanism)
    }
}

impl std::fmt::Debug for SaslMechanisms<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|m| m.escape_ascii().to_string()))
            .finish()
    }
}

/// BackendKeyData ('K'): what a CancelRequest for this session must carry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData<'a> {
    /// The server process id.
    pub process_id: i32,
    /// The secret key: 4 bytes on protocol 3.0, up to 256 on 3.2.
    pub secret_key: &'a [u8],
}

impl std::fmt::Debug for BackendKeyData<'_> {
    // The key is a secret: only its length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendKeyData")
            .field("process_id", &self.process_id)
            .field("secret_key_len", &self.secret_key.len())
            .finish()
    }
}

impl<'a> BackendKeyData<'a> {
    fn parse_body(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, "BackendKeyData");
        let process_id = r.i32("process id")?;
        let secret_key = r.rest();
        check_cancel_key(secret_key)?;
        Ok(BackendKeyData {
            process_id,
            secret_key,
        })
    }
}

/// The transaction status of a ReadyForQuery ('Z').
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InBlock,
    /// 'E': in a failed transaction block.
    Failed,
}

impl TransactionStatus {
    /// The status a ReadyForQuery's byte names (`I`, `T` or `E`), or None for any other byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InBlock),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }

    fn parse_body(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, "ReadyForQuery");
        let status = match r.u8("transaction status")? {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InBlock,
            b'E' => TransactionStatus::Failed,
            _ => {
                return Err(ProtocolError::InvalidField {
                    message: "ReadyForQuery",
                    reason: "transaction status is not I, T or E",
                });
            }
        };
        r.finish()?;
        Ok(status)
    }

    fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InBlock => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// ParameterStatus ('S'): a run-time parameter's name and value, as sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParameterStatus<'a> {
    /// The parameter's name.
    pub name: &'a [u8],
    /// Its value.
    pub value: &'a [u8],
}

impl std::fmt::Debug for ParameterStatus<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ParameterStatus({}={})",
            self.name.escape_ascii(),
            self.value.escape_ascii()
        )
    }
}

impl<'a> ParameterStatus<'a> {
    fn parse_body(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, "ParameterStatus");
        let name = r.cstr("name")?;
        let value = r.cstr("value")?;
        r.finish()?;
        Ok(ParameterStatus { name, value })
    }
}

/// NegotiateProtocolVersion ('v'): the newest minor version the server supports and the
/// protocol options (`_pq_.` parameters) it did not recognise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NegotiateProtocolVersion<'a> {
    /// The newest minor version of protocol 3 the server supports.
    pub newest_minor: u32,
    count: u32,
    /// The option names, NUL-terminated; `count` of them, checked when parsed.
    options: &'a [u8],
}

impl std::fmt::Debug for NegotiateProtocolVersion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NegotiateProtocolVersion")
            .field("newest_minor", &self.newest_minor)
            .field(
                "unrecognized",
                &self
                    .unrecognized()
                    .map(|o| o.escape_ascii().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<'a> NegotiateProtocolVersion<'a> {
    fn parse_body(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body, "NegotiateProtocolVersion");
        let newest_minor = r.u32("newest minor version")?;
        let count = r.u32("option count")?;
        let options = r.rest();
        // Counting down over the body: each option takes at least a byte, so the loop is
        // bounded by the body, never by the claimed count.
        let mut r = Reader::new(options, "NegotiateProtocolVersion");
        for _ in 0..count {
            r.cstr("option name")?;
        }
        r.finish()?;
        Ok(NegotiateProtocolVersion {
            newest_minor,
            count,
            options,
        })
    }

    /// The option names the server did not recognise, in its order.
    pub fn unrecognized(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.options.split(|&b| b == 0).take(self.count as usize)
    }
}

fn backend_message(
    out: &mut Vec<u8>,
    tag: u8,
    message: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    write_message(
        out,
        Some(tag),
        frame_limit(Direction::Backend, tag),
        message,
        body,
    )
}

/// Appends AuthenticationOk.
pub fn encode_authentication_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'R', 0, 0, 0, 8]);
    out.extend_from_slice(&auth_code::OK.to_be_bytes());
}

/// Appends AuthenticationSASL offering `mechanisms` in order (none of them empty).
pub fn encode_authentication_sasl(
    mechanisms: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    const MESSAGE: &str = "AuthenticationSASL";
    backend_message(out, b'R', MESSAGE, |out| {
        out.extend_from_slice(&auth_code::SASL.to_be_bytes());
        for mechanism in mechanisms {
            if mechanism.is_empty() {
                return Err(ProtocolError::Unencodable {
                    message: MESSAGE,
                    reason: "a mechanism name is empty",
                });
            }
            put_cstr(out, mechanism, MESSAGE)?;
        }
        out.push(0);
        Ok(())
    })
}

/// Appends AuthenticationSASLContinue carrying `data`.
pub fn encode_authentication_sasl_continue(
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    encode_sasl_data(
        auth_code::SASL_CONTINUE,
        "AuthenticationSASLContinue",
        data,
        out,
    )
}

/// Appends AuthenticationSASLFinal carrying `data`.
pub fn encode_authentication_sasl_final(
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    encode_sasl_data(auth_code::SASL_FINAL, "AuthenticationSASLFinal", data, out)
}

fn encode_sasl_data(
    code: u32,
    message: &'static str,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    backend_message(out, b'R', message, |out| {
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(data);
        Ok(())
    })
}

/// Appends BackendKeyData; the key must have 4 to 256 bytes (exactly 4 for a client on
/// protocol 3.0).
pub fn encode_backend_key_data(
    process_id: i32,
    secret_key: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    check_cancel_key(secret_key)?;
    backend_message(out, b'K', "BackendKeyData", |out| {
        out.extend_from_slice(&process_id.to_be_bytes());
        out.extend_from_slice(secret_key);
        Ok(())
    })
}

/// Appends ReadyForQuery.
pub fn encode_ready_for_query(status: TransactionStatus, out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'Z', 0, 0, 0, 5, status.byte()]);
}

/// Appends an ErrorResponse with `fields` (code, value) in order; see [`field`](crate::field) for
/// the codes.
pub fn encode_error_response(
    fields: &[(u8, &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    backend_message(out, b'E', "ErrorResponse", |out| {
        encode_fields(fields, "ErrorResponse", out)
    })
}

/// Appends a NoticeResponse with `fields` (code, value) in order.
pub fn encode_notice_response(
    fields: &[(u8, &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    backend_message(out, b'N', "NoticeResponse", |out| {
        encode_fields(fields, "NoticeResponse", out)
    })
}

/// Appends ParameterStatus.
pub fn encode_parameter_status(
    name: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    backend_message(out, b'S', "ParameterStatus", |out| {
        put_cstr(out, name, "ParameterStatus")?;
        put_cstr(out, value, "ParameterStatus")
    })
}

/// Appends NegotiateProtocolVersion: the newest minor version served and the options not
/// recognised.
pub fn encode_negotiate_protocol_version(
    newest_minor: u32,
    unrecognized: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    const MESSAGE: &str = "NegotiateProtocolVersion";
    let count = u32::try_from(unrecognized.len()).map_err(|_| ProtocolError::Unencodable {
        message: MESSAGE,
        reason: "too many options",
    })?;
    backend_message(out, b'v', MESSAGE, |out| {
        out.extend_from_slice(&newest_minor.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for option in unrecognized {
            put_cstr(out, option, MESSAGE)?;
        }
        Ok(())
    })
}
