//! The PostgreSQL wire protocol (version 3.0 and 3.2) as plain functions over bytes, for
//! curfew's gateway: no I/O, no async runtime, the way rust-postgres keeps
//! `postgres-protocol` apart from its client.
//!
//! - [`split_frame`] / [`frames`] find typed messages at the front of the caller's buffer
//!   as borrowed [`Frame`]s, with PostgreSQL's own length limits per direction and type
//!   ([`frame_limit`]): a relay finds the boundaries it cares about and forwards its read
//!   buffers whole. A claimed length is only compared, never allocated.
//! - [`FrameCursor`] follows frame boundaries across the pieces a relay forwards (headers
//!   walked, bodies skipped, nothing held) and the last ReadyForQuery status.
//! - [`parse_initial`] reads a connection's first packet: StartupMessage (parameters in
//!   order, unmodified), SSLRequest, GSSENCRequest, CancelRequest (keys of 4 to 256 bytes),
//!   or the first byte of a direct TLS handshake.
//! - [`BackendMessage::parse`] and [`FrontendMessage::parse`] read only what the gateway
//!   acts on (authentication and SASL, BackendKeyData, ReadyForQuery, errors and notices,
//!   ParameterStatus, NegotiateProtocolVersion, Terminate); every other message stays an
//!   opaque frame, forwarded byte for byte, never re-encoded.
//! - `encode_*` append messages to a `Vec<u8>` and refuse what the other side would refuse.
//!
//! Every failure is a [`ProtocolError`] saying what was wrong; no input panics. Debug
//! output never shows a password, cancel key or SASL data.
//!
//! ```
//! use curfew_wire::{BackendMessage, Direction, Split, TransactionStatus};
//!
//! let mut buf = Vec::new();
//! curfew_wire::encode_ready_for_query(TransactionStatus::Idle, &mut buf);
//! let Ok(Split::Frame(frame)) = curfew_wire::split_frame(Direction::Backend, &buf) else {
//!     panic!("one whole frame");
//! };
//! assert_eq!(frame.len(), buf.len());
//! assert_eq!(
//!     BackendMessage::parse(frame),
//!     Ok(BackendMessage::ReadyForQuery(TransactionStatus::Idle))
//! );
//! ```

mod backend;
mod codec;
mod cursor;
mod error;
mod fields;
mod frame;
mod frontend;
mod startup;

pub use backend::{
    Authentication, BackendKeyData, BackendMessage, NegotiateProtocolVersion, ParameterStatus,
    SaslMechanisms, TransactionStatus, encode_authentication_ok, encode_authentication_sasl,
    encode_authentication_sasl_continue, encode_authentication_sasl_final, encode_backend_key_data,
    encode_error_response, encode_negotiate_protocol_version, encode_notice_response,
    encode_parameter_status, encode_ready_for_query,
};
pub use cursor::FrameCursor;
pub use error::{Direction, ProtocolError, Shown, Tag};
pub use fields::{FieldIter, Fields, field};
pub use frame::{
    BACKEND_AUTH_REQUEST_LIMIT, BACKEND_LONG_MESSAGE_LIMIT, BACKEND_SHORT_MESSAGE_LIMIT,
    FRONTEND_AUTH_MESSAGE_LIMIT, FRONTEND_LARGE_MESSAGE_LIMIT, FRONTEND_SMALL_MESSAGE_LIMIT, Frame,
    FrameHeader, Frames, HEADER_LEN, Split, encode_frame, frame_header, frame_limit, frames,
    split_frame,
};
pub use frontend::{
    AuthResponse, FrontendMessage, PasswordMessage, SaslInitialResponse, SaslResponse,
    encode_sasl_initial_response, encode_sasl_response, encode_terminate,
};
pub use startup::{
    CANCEL_REQUEST_CODE, CancelRequest, GSSENC_REQUEST_CODE, Initial, InitialPacket,
    MAX_CANCEL_KEY_LEN, MAX_STARTUP_PACKET_LENGTH, MIN_CANCEL_KEY_LEN, ProtocolVersion,
    SSL_REQUEST_CODE, StartupMessage, StartupParams, TLS_HANDSHAKE_BYTE, encode_cancel_request,
    encode_gssenc_request, encode_ssl_request, encode_startup, parse_initial,
};
