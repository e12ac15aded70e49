//! Framing of typed messages (`type byte, Int32 length, body`) in both directions, with
//! PostgreSQL's own length limits per direction and type.
//!
//! A frame is found at the front of the caller's buffer and returned as borrowed views,
//! so a relay can find frame boundaries and still forward its read buffer whole. A claimed
//! length is only compared with limits, never used to allocate.

use crate::codec::write_message;
use crate::error::{Direction, ProtocolError, Tag};

/// The backend's limit for ordinary client messages (`PQ_SMALL_MESSAGE_LIMIT`).
pub const FRONTEND_SMALL_MESSAGE_LIMIT: u32 = 10_000;
/// The backend's limit for the client messages that carry data: Query, FunctionCall, Parse,
/// Bind, CopyData (`PQ_LARGE_MESSAGE_LIMIT`, `MaxAllocSize - 1`).
pub const FRONTEND_LARGE_MESSAGE_LIMIT: u32 = 0x3FFF_FFFE;
/// The backend's limit for a password or SASL message (`PG_MAX_AUTH_TOKEN_LENGTH`).
pub const FRONTEND_AUTH_MESSAGE_LIMIT: u32 = 65_535;
/// libpq's limit for server messages that are not of a long type.
pub const BACKEND_SHORT_MESSAGE_LIMIT: u32 = 30_000;
/// libpq's limit for an authentication request ('R').
pub const BACKEND_AUTH_REQUEST_LIMIT: u32 = 2_000;
/// The limit for server messages of a long type. libpq sets none below `i32::MAX`; the
/// server builds each message in one buffer of at most `MaxAllocSize - 1` bytes, so this is
/// that plus the length word.
pub const BACKEND_LONG_MESSAGE_LIMIT: u32 = 0x3FFF_FFFE + 4;

/// Bytes before a typed message's body: the type byte and the length word.
pub const HEADER_LEN: usize = 5;

/// The most a message of type `tag` from `direction` may claim in its length word (which
/// counts itself, not the type byte).
///
/// Client messages follow the backend's main loop: the data-carrying types get the large
/// limit, 'p' (password, SASL) the authentication token limit, every other type the small
/// one (the backend rejects types it does not know before reading them). Server messages
/// follow libpq: its long types (RowDescription, DataRow, CopyData, FunctionCallResponse,
/// ErrorResponse, NoticeResponse, NotificationResponse) plus ParameterDescription (up to
/// 65535 parameters of 4 bytes, which a server may send) and ParameterStatus (a reported
/// setting's value has no length limit; libpq would drop such a session, other drivers do
/// not, and the gateway must not end it for them) get the long limit,
/// authentication requests libpq's 2000 bytes, the rest libpq's 30000.
pub fn frame_limit(direction: Direction, tag: u8) -> u32 {
    match direction {
        Direction::Frontend => match tag {
            b'Q' | b'F' | b'P' | b'B' | b'd' => FRONTEND_LARGE_MESSAGE_LIMIT,
            b'p' => FRONTEND_AUTH_MESSAGE_LIMIT,
            _ => FRONTEND_SMALL_MESSAGE_LIMIT,
        },
        Direction::Backend => match tag {
            b'T' | b'D' | b'd' | b'V' | b'E' | b'N' | b'A' | b't' | b'S' => {
                BACKEND_LONG_MESSAGE_LIMIT
            }
            b'R' => BACKEND_AUTH_REQUEST_LIMIT,
            _ => BACKEND_SHORT_MESSAGE_LIMIT,
        },
    }
}

/// One typed message at the front of a buffer, borrowed from it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    raw: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.raw[0]
    }

    /// The body: the bytes after the length word.
    pub fn body(&self) -> &'a [u8] {
        &self.raw[HEADER_LEN..]
    }

    /// The whole frame as it arrived (type byte, length word, body), to forward unchanged.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The frame's total length in the buffer, type byte included.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Never true: a frame has at least its type byte and length word. Here for clippy's
    /// `len_without_is_empty` and for symmetry with slices.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

impl std::fmt::Debug for Frame<'_> {
    // The body may hold a password or SASL proof: only its type and size are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("tag", &Tag(self.tag()))
            .field("body_len", &self.body().len())
            .finish()
    }
}

/// What [`split_frame`] found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split<'a> {
    /// Not a whole frame yet: read more. `frame_len` is the frame's total length once its
    /// header has arrived (already checked against the limit), for a relay that wants to
    /// know how far to read; it is no reason to allocate that much up front.
    Incomplete {
        /// The whole frame's length, type byte included, when known.
        frame_len: Option<usize>,
    },
    /// A whole frame at the front; the next one starts at `frame.len()`.
    Frame(Frame<'a>),
}

/// A frame's header: its type and its total length, checked against the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message type byte.
    pub tag: u8,
    /// The whole frame's length, type byte included (at least [`HEADER_LEN`]).
    pub frame_len: usize,
}

/// Reads the header of the typed message at the front of `buf` (None until 5 bytes have
/// arrived). A relay streaming a frame too large to buffer (CopyData, a large DataRow)
/// forwards `frame_len` bytes from here without holding them.
///
/// Errors when the length word is below 4 or above [`frame_limit`] for its type; after
/// such an error the stream cannot be resynchronised and the connection should end.
pub fn frame_header(
    direction: Direction,
    buf: &[u8],
) -> Result<Option<FrameHeader>, ProtocolError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let tag = header[0];
    let claimed = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if claimed < 4 {
        return Err(ProtocolError::LengthTooSmall {
            direction,
            tag: Tag(tag),
            claimed,
        });
    }
    let limit = frame_limit(direction, tag);
    if claimed > limit {
        return Err(ProtocolError::LengthTooLarge {
            direction,
            tag: Tag(tag),
            claimed,
            limit,
        });
    }
    // claimed <= limit < 2^30 + 4: no overflow on any usize of 32 bits or more.
    Ok(Some(FrameHeader {
        tag,
        frame_len: claimed as usize + 1,
    }))
}

/// Finds the typed message at the front of `buf`, sent by `direction`: a whole frame, or
/// how much is still missing. Errors as [`frame_header`] does.
pub fn split_frame(direction: Direction, buf: &[u8]) -> Result<Split<'_>, ProtocolError> {
    let Some(header) = frame_header(direction, buf)? else {
        return Ok(Split::Incomplete { frame_len: None });
    };
    match buf.get(..header.frame_len) {
        Some(raw) => Ok(Split::Frame(Frame { raw })),
        None => Ok(Split::Incomplete {
            frame_len: Some(header.frame_len),
        }),
    }
}

/// Splits the whole frames at the front of `buf`, in order, until an incomplete one or an
/// error. [`Frames::consumed`] says where the unsplit rest starts.
pub fn frames(direction: Direction, buf: &[u8]) -> Frames<'_> {
    Frames {
        direction,
        buf,
        consumed: 0,
        failed: false,
    }
}

/// The iterator [`frames`] returns.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    direction: Direction,
    buf: &'a [u8],
    consumed: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// Bytes taken by the frames returned so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The bytes after the frames returned so far (an incomplete frame, or nothing).
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.consumed..]
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match split_frame(self.direction, self.rest()) {
            Ok(Split::Frame(frame)) => {
                self.consumed += frame.len();
                Some(Ok(frame))
            }
            Ok(Split::Incomplete { .. }) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Appends a typed message with `body` as is (for types this crate does not build itself),
/// refusing one over the limit for its direction and type.
pub fn encode_frame(
    direction: Direction,
    tag: u8,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    write_message(
        out,
        Some(tag),
        frame_limit(direction, tag),
        "message",
        |out| {
            out.extend_from_slice(body);
            Ok(())
        },
    )
}

/// Checks that `frame` has type `tag`, for parsers of one message type.
pub(crate) fn expect_tag(
    frame: &Frame<'_>,
    tag: u8,
    expected: &'static str,
) -> Result<(), ProtocolError> {
    if frame.tag() == tag {
        Ok(())
    } else {
        Err(ProtocolError::UnexpectedType {
            expected,
            found: Tag(frame.tag()),
        })
    }
}
