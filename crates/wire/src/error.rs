//! The one error type of the codec: what was wrong with the bytes, in words fit for a FATAL
//! message to the client and for the gateway's log.

use std::fmt;

/// Which side sent a message: the frontend (client) or the backend (server). Limits and
/// message meanings differ per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    Frontend,
    /// Server to client.
    Backend,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Frontend => "client",
            Direction::Backend => "server",
        })
    }
}

/// A message type byte as shown in errors: printable ASCII as itself, anything else in hex,
/// so hostile bytes never reach a log line raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag(pub u8);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02X}", self.0)
        }
    }
}

/// Bytes from outside shown escaped and cut short, for errors that name them.
#[derive(Clone, PartialEq, Eq)]
pub struct Shown(Vec<u8>);

/// How many bytes of an outside name an error keeps.
const SHOWN_MAX: usize = 64;

impl Shown {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Shown(bytes.iter().copied().take(SHOWN_MAX).collect())
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What was wrong with a frame, a startup packet, a message body, or a value given to an
/// encoder. Never carries secrets: no key, password or SASL data is kept in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A frame's length word is below 4, the size of the length word itself.
    #[error(
        "invalid message length: {direction} message {tag} claims {claimed} bytes, less than its own 4-byte length word"
    )]
    LengthTooSmall {
        /// Who sent it.
        direction: Direction,
        /// Its type byte.
        tag: Tag,
        /// The length word as sent.
        claimed: u32,
    },
    /// A frame's length word is above PostgreSQL's limit for its direction and type.
    #[error(
        "invalid message length: {direction} message {tag} claims {claimed} bytes, more than the {limit} allowed for it"
    )]
    LengthTooLarge {
        /// Who sent it.
        direction: Direction,
        /// Its type byte.
        tag: Tag,
        /// The length word as sent.
        claimed: u32,
        /// The most this type may claim.
        limit: u32,
    },
    /// The initial packet's length word is outside 8..=10004 (a body of 4..=10000 bytes).
    #[error("invalid length of startup packet: {claimed} bytes claimed, allowed 8 to 10004")]
    StartupLength {
        /// The length word as sent.
        claimed: u32,
    },
    /// A startup packet asks for a protocol major version other than 3.
    #[error("unsupported frontend protocol {major}.{minor}: only 3.x is served")]
    UnsupportedProtocol {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },
    /// An SSLRequest, GSSENCRequest or CancelRequest of the wrong length.
    #[error("invalid {request} packet: {length} bytes")]
    RequestLength {
        /// Which request.
        request: &'static str,
        /// Its length as sent.
        length: u32,
    },
    /// A cancel key outside the 4..=256 bytes protocol 3.2 allows.
    #[error("invalid cancel key of {length} bytes: keys have 4 to 256 bytes")]
    CancelKeyLength {
        /// The key's length.
        length: usize,
    },
    /// The startup packet's parameter list is not a list of name/value strings ended by an
    /// empty name.
    #[error("invalid startup packet layout: {reason}")]
    StartupLayout {
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// A startup parameter is given twice (a gateway reading the first and a server using the
    /// last would disagree on who logs in).
    #[error("invalid startup packet: parameter {name} given twice")]
    DuplicateParameter {
        /// The parameter's name.
        name: Shown,
    },
    /// The startup packet names no `user`.
    #[error("no PostgreSQL user name specified in startup packet")]
    MissingUser,
    /// A parser was given a frame of another type.
    #[error("expected {expected}, got message type {found}")]
    UnexpectedType {
        /// The message the parser reads.
        expected: &'static str,
        /// The type byte found.
        found: Tag,
    },
    /// A message body ends before a field it must have (or a string lacks its terminator).
    #[error("invalid {message} message: truncated before its {field}")]
    Truncated {
        /// The message.
        message: &'static str,
        /// The field missing.
        field: &'static str,
    },
    /// A message body has bytes after its last field.
    #[error("invalid {message} message: {count} bytes after its last field")]
    TrailingBytes {
        /// The message.
        message: &'static str,
        /// How many bytes are left over.
        count: usize,
    },
    /// A field holds a value the protocol does not allow.
    #[error("invalid {message} message: {reason}")]
    InvalidField {
        /// The message.
        message: &'static str,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// A value given to an encoder cannot be sent as asked: a NUL inside a string, an empty
    /// name, or a message over its limit.
    #[error("cannot encode {message}: {reason}")]
    Unencodable {
        /// The message being encoded.
        message: &'static str,
        /// Why not.
        reason: &'static str,
    },
}
