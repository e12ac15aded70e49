//! Where frames end in a stream the caller forwards in whatever pieces it reads: a cursor fed
//! each piece in order, which walks the headers only (a body is skipped by its length, never
//! looked at, never held), so a relay knows at every byte whether it is between two frames
//! without buffering anything. No allocation; the cursor is a few words, `Copy`.

use crate::backend::TransactionStatus;
use crate::error::{Direction, ProtocolError};
use crate::frame::{HEADER_LEN, frame_header};

/// Tracks frame boundaries across the pieces of one direction's stream (see the module).
///
/// A cursor starts at a boundary (the first frame's type byte is next). After a frame with a
/// bad length word it is *lost*: the stream cannot be resynchronised, so it never reports a
/// boundary again and every later feed fails with the same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCursor {
    direction: Direction,
    /// The header seen so far of the frame in progress (only while `header_len < 5`).
    header: [u8; HEADER_LEN],
    /// How many header bytes of the frame in progress have been seen; 0 between frames and
    /// inside a body.
    header_len: u8,
    /// Body bytes still to come of the frame in progress (0 between frames).
    body_left: usize,
    /// Inside a body (a frame with an empty body completes with its header).
    in_body: bool,
    /// The frame in progress is a ReadyForQuery whose status byte has not been seen yet.
    status_next: bool,
    /// The status of the last ReadyForQuery seen.
    last_status: Option<TransactionStatus>,
    /// The type byte of the last frame whose header was seen.
    last_type: Option<u8>,
    /// The error that lost the stream, kept to report again (its fields are plain values).
    lost: Option<LostAt>,
}

/// The header that lost a cursor: enough to rebuild its [`ProtocolError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LostAt {
    header: [u8; HEADER_LEN],
}

impl FrameCursor {
    /// A cursor at the start of a stream sent by `direction` (PostgreSQL's length limits for
    /// that direction apply).
    pub fn new(direction: Direction) -> FrameCursor {
        FrameCursor {
            direction,
            header: [0; HEADER_LEN],
            header_len: 0,
            body_left: 0,
            in_body: false,
            status_next: false,
            last_status: None,
            last_type: None,
            lost: None,
        }
    }

    /// Whether everything fed so far ends exactly at the end of a frame (so a message may be
    /// inserted, or the stream cut, here). False once lost.
    pub fn at_boundary(&self) -> bool {
        self.lost.is_none() && self.header_len == 0 && !self.in_body
    }

    /// The transaction status of the last ReadyForQuery ('Z') fed, if any: meaningful on the
    /// server's stream only (a client's 'Z' is not a message PostgreSQL knows).
    pub fn transaction_status(&self) -> Option<TransactionStatus> {
        self.last_status
    }

    /// Whether everything fed so far ends with a whole frame of type `tag` (a client's
    /// Terminate, `b'X'`, says the client left on purpose whatever closes first afterwards).
    pub fn ends_with_frame(&self, tag: u8) -> bool {
        self.at_boundary() && self.last_type == Some(tag)
    }

    /// Whether a bad length word lost the stream.
    pub fn is_lost(&self) -> bool {
        self.lost.is_some()
    }

    /// Feeds the next piece of the stream. Returns where in `piece` the last frame that
    /// completed in it ends (the offset just past it), or None when no frame completed in it.
    ///
    /// Errors when a frame's length word is outside PostgreSQL's limits for its type, as
    /// [`frame_header`] does; the cursor is then lost.
    pub fn feed(&mut self, piece: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let mut at = 0;
        let mut last = None;
        while at < piece.len() {
            let (used, completed) = self.advance(&piece[at..])?;
            at += used;
            if completed {
                last = Some(at);
            }
        }
        Ok(last)
    }

    /// Feeds `piece` only up to the end of the frame in progress: returns the offset in
    /// `piece` of the first boundary (0 when the cursor is at one already; the cursor is then
    /// at that boundary), or None when the frame in progress goes on past `piece` (all of it
    /// was fed). To ask without feeding, call it on a copy.
    pub fn feed_to_boundary(&mut self, piece: &[u8]) -> Result<Option<usize>, ProtocolError> {
        self.check_lost()?;
        if self.at_boundary() {
            return Ok(Some(0));
        }
        let mut at = 0;
        while at < piece.len() {
            let (used, completed) = self.advance(&piece[at..])?;
            at += used;
            if completed {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    fn check_lost(&self) -> Result<(), ProtocolError> {
        match self.lost {
            None => Ok(()),
            Some(lost) => Err(header_error(self.direction, &lost.header)),
        }
    }

    /// Consumes bytes from the front of `rest` (not empty) up to the end of the frame in
    /// progress: how many, and whether that frame completed.
    fn advance(&mut self, rest: &[u8]) -> Result<(usize, bool), ProtocolError> {
        self.check_lost()?;
        if self.in_body {
            let take = self.body_left.min(rest.len());
            if self.status_next && take > 0 {
                // PostgreSQL's 'Z' body is one byte; a byte that is not I/T/E leaves the
                // last known status as it was (the client will judge the message).
                if let Some(status) = TransactionStatus::from_byte(rest[0]) {
                    self.last_status = Some(status);
                }
                self.status_next = false;
            }
            self.body_left -= take;
            if self.body_left == 0 {
                self.in_body = false;
                return Ok((take, true));
            }
            return Ok((take, false));
        }
        // The header: straight from `rest` when it is all there (the common case), else
        // collected across pieces.
        let filled = usize::from(self.header_len);
        let take = (HEADER_LEN - filled).min(rest.len());
        let header = if filled == 0 && take == HEADER_LEN {
            [rest[0], rest[1], rest[2], rest[3], rest[4]]
        } else {
            self.header[filled..filled + take].copy_from_slice(&rest[..take]);
            if filled + take < HEADER_LEN {
                self.header_len = (filled + take) as u8;
                return Ok((take, false));
            }
            self.header
        };
        self.header_len = 0;
        let frame_len = match frame_header(self.direction, &header) {
            Ok(Some(found)) => found.frame_len,
            // Five bytes are a whole header: `None` cannot happen; treat it as lost anyway.
            Ok(None) | Err(_) => {
                self.lost = Some(LostAt { header });
                return Err(header_error(self.direction, &header));
            }
        };
        self.body_left = frame_len - HEADER_LEN;
        self.last_type = Some(header[0]);
        self.status_next = header[0] == b'Z' && self.body_left > 0;
        if self.body_left == 0 {
            return Ok((take, true));
        }
        self.in_body = true;
        Ok((take, false))
    }
}

/// The error a bad header gives (the one [`frame_header`] reports for it).
fn header_error(direction: Direction, header: &[u8; HEADER_LEN]) -> ProtocolError {
    match frame_header(direction, header) {
        Err(e) => e,
        Ok(_) => ProtocolError::InvalidField {
            message: "frame",
            reason: "the stream was lost at a frame header",
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn whole_frames_in_one_piece_end_where_the_last_one_ends() {
        let mut stream = frame(b'D', b"row");
        stream.extend(frame(b'C', b"SELECT 1\0"));
        stream.extend(frame(b'Z', b"I"));
        let mut cursor = FrameCursor::new(Direction::Backend);
        assert_eq!(cursor.feed(&stream), Ok(Some(stream.len())));
        assert!(cursor.at_boundary());
        assert_eq!(cursor.transaction_status(), Some(TransactionStatus::Idle));
    }

    #[test]
    fn a_header_split_across_pieces_is_collected() {
        let stream = frame(b'Z', b"T");
        let mut cursor = FrameCursor::new(Direction::Backend);
        for (i, byte) in stream.iter().enumerate() {
            let ended = cursor.feed(std::slice::from_ref(byte)).unwrap();
            let last = i + 1 == stream.len();
            assert_eq!(ended, last.then_some(1), "byte {i}");
            assert_eq!(cursor.at_boundary(), last, "byte {i}");
        }
        assert_eq!(
            cursor.transaction_status(),
            Some(TransactionStatus::InBlock)
        );
    }

    #[test]
    fn a_piece_ending_inside_a_frame_reports_the_frame_before() {
        let mut stream = frame(b'd', &[7; 100]);
        stream.extend(frame(b'd', &[8; 100]));
        let mut cursor = FrameCursor::new(Direction::Backend);
        assert_eq!(cursor.feed(&stream[..150]), Ok(Some(105)));
        assert!(!cursor.at_boundary());
        assert_eq!(cursor.feed(&stream[150..160]), Ok(None));
        assert_eq!(cursor.feed(&stream[160..]), Ok(Some(50)));
        assert!(cursor.at_boundary());
    }

    #[test]
    fn feed_to_boundary_stops_at_the_end_of_the_frame_in_progress() {
        let mut stream = frame(b'D', &[1; 20]);
        stream.extend(frame(b'D', &[2; 20]));
        let mut cursor = FrameCursor::new(Direction::Backend);
        cursor.feed(&stream[..10]).unwrap();
        // Asked on a copy: the cursor itself is untouched.
        let mut probe = cursor;
        assert_eq!(probe.feed_to_boundary(&stream[10..]), Ok(Some(15)));
        assert!(probe.at_boundary());
        assert!(!cursor.at_boundary());
        assert_eq!(cursor.feed_to_boundary(&stream[10..20]), Ok(None));
        assert_eq!(cursor.feed_to_boundary(&stream[20..]), Ok(Some(5)));
        assert_eq!(cursor.feed_to_boundary(&stream[25..]), Ok(Some(0)));
    }

    #[test]
    fn the_last_ready_for_query_wins_and_other_bytes_keep_it() {
        let mut cursor = FrameCursor::new(Direction::Backend);
        assert_eq!(cursor.transaction_status(), None);
        let mut stream = frame(b'Z', b"T");
        stream.extend(frame(b'Z', b"E"));
        cursor.feed(&stream).unwrap();
        assert_eq!(cursor.transaction_status(), Some(TransactionStatus::Failed));
        cursor.feed(&frame(b'Z', b"?")).unwrap();
        assert_eq!(cursor.transaction_status(), Some(TransactionStatus::Failed));
        // A 'Z' inside another frame's body is data, not a status.
        cursor.feed(&frame(b'D', &frame(b'Z', b"I"))).unwrap();
        assert_eq!(cursor.transaction_status(), Some(TransactionStatus::Failed));
    }

    #[test]
    fn a_bad_length_loses_the_stream_for_good() {
        let mut cursor = FrameCursor::new(Direction::Frontend);
        let mut stream = frame(b'Q', b"SELECT 1\0");
        stream.extend([b'Q', 0, 0, 0, 2]);
        let error = cursor.feed(&stream).unwrap_err();
        assert!(
            matches!(error, ProtocolError::LengthTooSmall { .. }),
            "{error}"
        );
        assert!(cursor.is_lost());
        assert!(!cursor.at_boundary());
        assert_eq!(cursor.feed(&frame(b'Q', b"x\0")), Err(error.clone()));
        assert_eq!(cursor.feed_to_boundary(b"x"), Err(error));
        // A client message over its type's limit (10000 for 'H') is refused the same way.
        let mut cursor = FrameCursor::new(Direction::Frontend);
        let error = cursor.feed(&[b'H', 0, 1, 0, 0]).unwrap_err();
        assert!(
            matches!(error, ProtocolError::LengthTooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn an_empty_piece_changes_nothing() {
        let mut cursor = FrameCursor::new(Direction::Backend);
        assert_eq!(cursor.feed(&[]), Ok(None));
        assert!(cursor.at_boundary());
        assert_eq!(cursor.feed_to_boundary(&[]), Ok(Some(0)));
    }

    /// Regression: a client that sent Terminate and closed was counted as "server_left"
    /// when the server's close reached the gateway before the client's.
    #[test]
    fn a_stream_ending_with_a_whole_terminate_says_so() {
        let mut cursor = FrameCursor::new(Direction::Frontend);
        assert!(!cursor.ends_with_frame(b'X'));
        let mut stream = frame(b'Q', b"SELECT 1\0");
        stream.extend(frame(b'X', b""));
        cursor.feed(&stream[..stream.len() - 2]).unwrap();
        assert!(!cursor.ends_with_frame(b'X'), "a partial Terminate");
        cursor.feed(&stream[stream.len() - 2..]).unwrap();
        assert!(cursor.ends_with_frame(b'X'));
        cursor.feed(&frame(b'Q', b"x\0")[..3]).unwrap();
        assert!(!cursor.ends_with_frame(b'X'), "a frame after it");
    }
}
