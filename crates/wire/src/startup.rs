//! The initial packet a client sends (no type byte): StartupMessage, SSLRequest,
//! GSSENCRequest, CancelRequest, or the first byte of a direct TLS handshake.

use crate::codec::{Reader, memchr_nul, put_cstr, write_message};
use crate::error::{ProtocolError, Shown};

/// The most a startup packet's body may have, after its length word
/// (`MAX_STARTUP_PACKET_LENGTH` in PostgreSQL's `pqcomm.h`).
pub const MAX_STARTUP_PACKET_LENGTH: u32 = 10_000;
/// The request code of a CancelRequest (1234.5678).
pub const CANCEL_REQUEST_CODE: u32 = (1234 << 16) | 5678;
/// The request code of an SSLRequest (1234.5679).
pub const SSL_REQUEST_CODE: u32 = (1234 << 16) | 5679;
/// The request code of a GSSENCRequest (1234.5680).
pub const GSSENC_REQUEST_CODE: u32 = (1234 << 16) | 5680;
/// The first byte of a TLS record carrying a handshake: a client using PostgreSQL 17's
/// direct TLS (`sslnegotiation=direct`) starts with its ClientHello. A startup packet's
/// first byte is 0 (its length is below 2^24), so the two cannot be confused.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;
/// The shortest cancel key (protocol 3.0's 4 bytes).
pub const MIN_CANCEL_KEY_LEN: usize = 4;
/// The longest cancel key protocol 3.2 allows.
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// A protocol version as a startup packet carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Major version (3).
    pub major: u16,
    /// Minor version (0 and 2 exist; a client may offer a newer one).
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 3.0 (PostgreSQL 7.4 to 17): 4-byte cancel keys.
    pub const V3_0: ProtocolVersion = ProtocolVersion { major: 3, minor: 0 };
    /// Protocol 3.2 (PostgreSQL 18): cancel keys of up to 256 bytes.
    pub const V3_2: ProtocolVersion = ProtocolVersion { major: 3, minor: 2 };
}

/// What [`parse_initial`] found at the front of a new connection's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initial<'a> {
    /// Not a whole packet yet: read more. `packet_len` is its total length once its length
    /// word has arrived (already checked against the limit).
    Incomplete {
        /// The whole packet's length, when known.
        packet_len: Option<usize>,
    },
    /// The connection starts with a TLS handshake record (direct TLS): nothing is consumed,
    /// the bytes belong to the TLS layer.
    DirectTls,
    /// A whole packet of `len` bytes at the front.
    Packet {
        /// The packet.
        packet: InitialPacket<'a>,
        /// Its length in the buffer.
        len: usize,
    },
}

/// An initial packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialPacket<'a> {
    /// A StartupMessage.
    Startup(StartupMessage<'a>),
    /// An SSLRequest: answer 'S' and start TLS, or 'N'.
    SslRequest,
    /// A GSSENCRequest: answer 'G' or 'N'.
    GssEncRequest,
    /// A CancelRequest.
    Cancel(CancelRequest<'a>),
}

/// A StartupMessage: the protocol version and the parameters, in order and as sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StartupMessage<'a> {
    version: ProtocolVersion,
    /// The parameter list as sent, checked: pairs of NUL-terminated strings, then a NUL.
    params: &'a [u8],
}

impl<'a> StartupMessage<'a> {
    /// The protocol version the client asks for (major 3, any minor).
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The parameters (name, value) in the order sent, bytes unmodified.
    pub fn params(&self) -> StartupParams<'a> {
        StartupParams { rest: self.params }
    }

    /// The value of parameter `name`, if sent (names are unique: checked when parsed).
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.params().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The `user` parameter (always present: checked when parsed).
    pub fn user(&self) -> &'a [u8] {
        self.param(b"user").unwrap_or_default()
    }

    /// The `database` parameter, if sent (the server defaults it to the user name).
    pub fn database(&self) -> Option<&'a [u8]> {
        self.param(b"database")
    }
}

impl std::fmt::Debug for StartupMessage<'_> {
    // Parameter values come from outside: shown escaped (none of them is a secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in self.params() {
            list.entry(&format_args!(
                "{}={}",
                name.escape_ascii(),
                value.escape_ascii()
            ));
        }
        list.finish()?;
        write!(
            f,
            " (protocol {}.{})",
            self.version.major, self.version.minor
        )
    }
}

/// The iterator over a startup packet's parameters.
#[derive(Clone, Debug)]
pub struct StartupParams<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for StartupParams<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The list was checked when parsed; a malformed rest just ends the iteration.
        let name_end = memchr_nul(self.rest)?;
        if name_end == 0 {
            return None;
        }
        let name = &self.rest[..name_end];
        let after = &self.rest[name_end + 1..];
        let value_end = memchr_nul(after)?;
        self.rest = &after[value_end + 1..];
        Some((name, &after[..value_end]))
    }
}

/// A CancelRequest: the server's process id and the secret key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CancelRequest<'a> {
    /// The process id the key belongs to.
    pub process_id: i32,
    /// The secret key, 4 to 256 bytes.
    pub secret_key: &'a [u8],
}

impl std::fmt::Debug for CancelRequest<'_> {
    // The key is a secret: only its length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelRequest")
            .field("process_id", &self.process_id)
            .field("secret_key_len", &self.secret_key.len())
            .finish()
    }
}

/// Reads the initial packet at the front of a new connection's bytes.
pub fn parse_initial(buf: &[u8]) -> Result<Initial<'_>, ProtocolError> {
    match buf.first() {
        None => return Ok(Initial::Incomplete { packet_len: None }),
        Some(&TLS_HANDSHAKE_BYTE) => return Ok(Initial::DirectTls),
        Some(_) => {}
    }
    let Some(length_word) = buf.get(..4) else {
        return Ok(Initial::Incomplete { packet_len: None });
    };
    let claimed = u32::from_be_bytes([
        length_word[0],
        length_word[1],
        length_word[2],
        length_word[3],
    ]);
    if !(8..=MAX_STARTUP_PACKET_LENGTH + 4).contains(&claimed) {
        return Err(ProtocolError::StartupLength { claimed });
    }
    let len = claimed as usize;
    let Some(packet) = buf.get(..len) else {
        return Ok(Initial::Incomplete {
            packet_len: Some(len),
        });
    };
    let packet = parse_packet(&packet[4..], claimed)?;
    Ok(Initial::Packet { packet, len })
}

fn parse_packet(body: &[u8], claimed: u32) -> Result<InitialPacket<'_>, ProtocolError> {
    let mut r = Reader::new(body, "startup packet");
    let code = r.u32("protocol version")?;
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            let (request, packet) = if code == SSL_REQUEST_CODE {
                ("SSLRequest", InitialPacket::SslRequest)
            } else {
                ("GSSENCRequest", InitialPacket::GssEncRequest)
            };
            if !r.is_empty() {
                return Err(ProtocolError::RequestLength {
                    request,
                    length: claimed,
                });
            }
            Ok(packet)
        }
        CANCEL_REQUEST_CODE => {
            let process_id = r
                .i32("process id")
                .map_err(|_| ProtocolError::RequestLength {
                    request: "CancelRequest",
                    length: claimed,
                })?;
            let secret_key = r.rest();
            check_cancel_key(secret_key)?;
            Ok(InitialPacket::Cancel(CancelRequest {
                process_id,
                secret_key,
            }))
        }
        _ => {
            let version = ProtocolVersion {
                major: (code >> 16) as u16,
                minor: code as u16,
            };
            if version.major != 3 {
                return Err(ProtocolError::UnsupportedProtocol {
                    major: version.major,
                    minor: version.minor,
                });
            }
            let params = r.rest();
            check_params(params)?;
            Ok(InitialPacket::Startup(StartupMessage { version, params }))
        }
    }
}

pub(crate) fn check_cancel_key(key: &[u8]) -> Result<(), ProtocolError> {
    if (MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
        Ok(())
    } else {
        Err(ProtocolError::CancelKeyLength { length: key.len() })
    }
}

fn layout(reason: &'static str) -> ProtocolError {
    ProtocolError::StartupLayout { reason }
}

/// Checks a parameter list: name/value pairs of NUL-terminated strings, names not empty and
/// not repeated, ended by one NUL that is the packet's last byte, with a `user`.
fn check_params(params: &[u8]) -> Result<(), ProtocolError> {
    // At most 10000 / 3 names: bounded by the packet, not by anything claimed.
    let mut names: Vec<&[u8]> = Vec::new();
    let mut rest = params;
    loop {
        let name_end = memchr_nul(rest).ok_or(layout("expected terminator as last byte"))?;
        if name_end == 0 {
            if rest.len() != 1 {
                return Err(layout("bytes after the terminator"));
            }
            break;
        }
        let name = &rest[..name_end];
        rest = &rest[name_end + 1..];
        let value_end = memchr_nul(rest).ok_or(layout("a parameter without a value"))?;
        rest = &rest[value_end + 1..];
        names.push(name);
    }
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(ProtocolError::DuplicateParameter {
            name: Shown::new(pair[0]),
        });
    }
    if names.binary_search(&&b"user"[..]).is_err() {
        return Err(ProtocolError::MissingUser);
    }
    Ok(())
}

/// Appends a StartupMessage with `params` in the given order. Refuses what the parser would
/// refuse: a major version other than 3, an empty or repeated name, a NUL inside a string,
/// no `user`, a packet over the limit.
pub fn encode_startup(
    version: ProtocolVersion,
    params: &[(&[u8], &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    const MESSAGE: &str = "StartupMessage";
    if version.major != 3 {
        return Err(ProtocolError::Unencodable {
            message: MESSAGE,
            reason: "protocol major version is not 3",
        });
    }
    let start = out.len();
    write_message(out, None, MAX_STARTUP_PACKET_LENGTH + 4, MESSAGE, |out| {
        out.extend_from_slice(&version.major.to_be_bytes());
        out.extend_from_slice(&version.minor.to_be_bytes());
        for (name, value) in params {
            if name.is_empty() {
                return Err(ProtocolError::Unencodable {
                    message: MESSAGE,
                    reason: "a parameter name is empty",
                });
            }
            put_cstr(out, name, MESSAGE)?;
            put_cstr(out, value, MESSAGE)?;
        }
        out.push(0);
        Ok(())
    })?;
    // The parser's checks (duplicates, `user`) on what was written, so both agree.
    if let Err(e) = check_params(&out[start + 8..]) {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// Appends an SSLRequest.
pub fn encode_ssl_request(out: &mut Vec<u8>) {
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
}

/// Appends a GSSENCRequest.
pub fn encode_gssenc_request(out: &mut Vec<u8>) {
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(&GSSENC_REQUEST_CODE.to_be_bytes());
}

/// Appends a CancelRequest; the key must have 4 to 256 bytes (4 for a server on protocol
/// 3.0).
pub fn encode_cancel_request(
    process_id: i32,
    secret_key: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    check_cancel_key(secret_key)?;
    write_message(
        out,
        None,
        MAX_STARTUP_PACKET_LENGTH + 4,
        "CancelRequest",
        |out| {
            out.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
            out.extend_from_slice(&process_id.to_be_bytes());
            out.extend_from_slice(secret_key);
            Ok(())
        },
    )
}
