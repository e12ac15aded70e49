//! Reading whole messages during the login, on either leg: bytes buffered per leg, one frame
//! split off at a time with the codec's limits (a frame claiming too much is an error before
//! anything of that size is read or allocated). What is left in the buffer after the login
//! belongs to the relay.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use curfew_wire::{Direction, ProtocolError, Split, split_frame};

use crate::error::SessionError;

/// How much one read asks for during the login.
const READ_CHUNK: usize = 8 * 1024;

/// One leg's login-time reader: the bytes read and not yet consumed.
#[derive(Debug)]
pub(crate) struct FrameReader {
    direction: Direction,
    buf: Vec<u8>,
    /// The only message type accepted, if any: before authentication a client may send only
    /// password/SASL messages ('p', with the 64 KiB auth limit), as PostgreSQL requires, so a
    /// 'Q' claiming 1 GiB is refused at its first byte, not waited for.
    only: Option<u8>,
}

/// A whole message, copied out of the buffer (the login reads a handful of them).
#[derive(Debug)]
pub(crate) struct OwnedFrame {
    /// The whole frame as it arrived, to forward unchanged.
    pub(crate) raw: Vec<u8>,
    direction: Direction,
}

impl OwnedFrame {
    /// The frame for the codec's parsers.
    pub(crate) fn frame(&self) -> Result<curfew_wire::Frame<'_>, ProtocolError> {
        // The bytes were split by the codec before: this only rebuilds the borrow.
        match split_frame(self.direction, &self.raw) {
            Ok(Split::Frame(frame)) => Ok(frame),
            Ok(Split::Incomplete { .. }) => Err(ProtocolError::Truncated {
                message: "frame",
                field: "body",
            }),
            Err(e) => Err(e),
        }
    }
}

impl FrameReader {
    /// A reader for messages sent by `direction` (the client is the frontend).
    pub(crate) fn new(direction: Direction) -> FrameReader {
        FrameReader {
            direction,
            buf: Vec::new(),
            only: None,
        }
    }

    /// A reader for a client that has not authenticated: 'p' messages only.
    pub(crate) fn before_authentication() -> FrameReader {
        FrameReader {
            only: Some(b'p'),
            ..FrameReader::new(Direction::Frontend)
        }
    }

    /// From now on every message type is accepted (the relay takes over).
    pub(crate) fn authenticated(&mut self) {
        self.only = None;
    }

    /// The next whole message; EOF before one is [`SessionError::ClientClosed`] or
    /// [`SessionError::ServerClosed`] by direction.
    pub(crate) async fn next<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<OwnedFrame, SessionError> {
        loop {
            if let (Some(only), Some(&found)) = (self.only, self.buf.first())
                && found != only
            {
                return Err(self.protocol(ProtocolError::UnexpectedType {
                    expected: "a password or SASL message before authentication",
                    found: curfew_wire::Tag(found),
                }));
            }
            let split = split_frame(self.direction, &self.buf).map_err(|e| self.protocol(e))?;
            if let Split::Frame(frame) = split {
                let owned = OwnedFrame {
                    raw: frame.raw().to_vec(),
                    direction: self.direction,
                };
                self.buf.drain(..owned.raw.len());
                return Ok(owned);
            }
            self.buf.reserve(READ_CHUNK);
            let read = stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| self.io(e))?;
            if read == 0 {
                return Err(match self.direction {
                    Direction::Frontend => SessionError::ClientClosed,
                    Direction::Backend => SessionError::ServerClosed,
                });
            }
        }
    }

    /// The bytes read beyond the last message, for the relay.
    pub(crate) fn into_rest(self) -> Vec<u8> {
        self.buf
    }

    fn protocol(&self, e: ProtocolError) -> SessionError {
        match self.direction {
            Direction::Frontend => SessionError::ClientProtocol(e),
            Direction::Backend => SessionError::ServerProtocol(e),
        }
    }

    fn io(&self, e: std::io::Error) -> SessionError {
        match self.direction {
            Direction::Frontend => SessionError::ClientIo(e),
            Direction::Backend => SessionError::ServerIo(e),
        }
    }
}

/// Writes `bytes` to the client and flushes.
pub(crate) async fn send_client<W: AsyncWrite + Unpin>(
    stream: &mut W,
    bytes: &[u8],
) -> Result<(), SessionError> {
    stream
        .write_all(bytes)
        .await
        .map_err(SessionError::ClientIo)?;
    stream.flush().await.map_err(SessionError::ClientIo)
}

/// Writes `bytes` to the server and flushes.
pub(crate) async fn send_server<W: AsyncWrite + Unpin>(
    stream: &mut W,
    bytes: &[u8],
) -> Result<(), SessionError> {
    stream
        .write_all(bytes)
        .await
        .map_err(SessionError::ServerIo)?;
    stream.flush().await.map_err(SessionError::ServerIo)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn before_authentication_a_query_claiming_1_gib_is_refused_at_its_first_byte() {
        // A 'Q' header claiming 1 GiB - 2 and nothing more: refused without waiting for it.
        let mut bytes: &[u8] = &[b'Q', 0x3f, 0xff, 0xff, 0xfe];
        let mut reader = FrameReader::before_authentication();
        match reader.next(&mut bytes).await {
            Err(SessionError::ClientProtocol(ProtocolError::UnexpectedType { found, .. })) => {
                assert_eq!(found.0, b'Q');
            }
            other => panic!("{other:?}"),
        }
        // A 'p' above the 64 KiB auth limit is refused too; one within it is read.
        let mut big: &[u8] = &[b'p', 0x00, 0x01, 0x00, 0x00];
        assert!(matches!(
            FrameReader::before_authentication().next(&mut big).await,
            Err(SessionError::ClientProtocol(
                ProtocolError::LengthTooLarge { .. }
            ))
        ));
        let mut ok: &[u8] = &[b'p', 0, 0, 0, 6, b'h', b'i'];
        let frame = FrameReader::before_authentication()
            .next(&mut ok)
            .await
            .unwrap();
        assert_eq!(frame.raw, [b'p', 0, 0, 0, 6, b'h', b'i']);
        // After authentication, the relay's types pass.
        let mut reader = FrameReader::before_authentication();
        reader.authenticated();
        let mut query: &[u8] = &[b'Q', 0, 0, 0, 5, 0];
        assert!(reader.next(&mut query).await.is_ok());
    }
}
