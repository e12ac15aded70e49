//! One direction of the relay, as a state machine the session's single task polls (no task,
//! no lock, no split of the stream per direction). It forwards whole reads: one write per
//! read, not per message, so pipelines and COPY keep their batching.
//!
//! Buffers: a plain socket is waited on for readiness with no buffer; a TLS stream with a
//! 64-byte probe. Only once bytes are there does the direction take a pooled buffer, and it
//! gives it back as soon as a read would wait, so an idle session holds none.
//!
//! Frames: every byte written is fed to a [`FrameCursor`] (a header walk, no copy), so the
//! relay knows whether what the other side has received ends at a frame boundary: where a
//! stop may cut the stream and add its FATAL, and whether a Terminate may follow.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use curfew_wire::{Direction, FrameCursor};
use tokio::io::{AsyncWrite, ReadBuf};
use tracing::debug;

use crate::activity::Watched;
use crate::buffers::Pooled;
use crate::error::SessionError;
use crate::stream::RelayIo;
use crate::traffic::{Traffic, Way};

/// How much a TLS direction reads while it waits: an idle session holds this, not a buffer.
const PROBE_LEN: usize = 64;

/// Which way a pump moves bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leg {
    /// Client to server.
    Upward,
    /// Server to client.
    Downward,
}

impl Leg {
    fn read_error(self, e: io::Error) -> SessionError {
        match self {
            Leg::Upward => SessionError::ClientIo(e),
            Leg::Downward => SessionError::ServerIo(e),
        }
    }

    fn write_error(self, e: io::Error) -> SessionError {
        match self {
            Leg::Upward => SessionError::ServerIo(e),
            Leg::Downward => SessionError::ClientIo(e),
        }
    }

    /// How the traffic counters name this leg.
    fn way(self) -> Way {
        match self {
            Leg::Upward => Way::ClientToServer,
            Leg::Downward => Way::ServerToClient,
        }
    }

    /// Who sends the frames this leg carries.
    fn sender(self) -> Direction {
        match self {
            Leg::Upward => Direction::Frontend,
            Leg::Downward => Direction::Backend,
        }
    }
}

/// How a pump finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    /// Its source ended (EOF) and everything read was written.
    Eof,
    /// Asked to stop, it reached a frame boundary: the other side has whole frames only.
    AtBoundary,
}

/// The bytes a pump is writing.
enum Chunk {
    /// Bytes read during the login that belong to the session (forwarded first).
    Rest(Vec<u8>),
    /// A pooled buffer, filled by a read.
    Pooled(Pooled),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Rest(rest) => rest,
            Chunk::Pooled(pooled) => pooled,
        }
    }
}

/// One direction's state (see the module).
pub(crate) struct Pump {
    leg: Leg,
    cursor: FrameCursor,
    chunk: Option<Chunk>,
    /// `chunk[start..end]` is still to be written.
    start: usize,
    end: usize,
    /// Written since the last flush (TLS keeps records until flushed).
    unflushed: bool,
    /// The source ended.
    eof: bool,
    probe: [u8; PROBE_LEN],
    total: u64,
}

impl Pump {
    /// A pump that first forwards `rest` (bytes read during the login).
    pub(crate) fn new(leg: Leg, rest: Vec<u8>) -> Pump {
        let end = rest.len();
        Pump {
            leg,
            cursor: FrameCursor::new(leg.sender()),
            chunk: (end > 0).then_some(Chunk::Rest(rest)),
            start: 0,
            end,
            unflushed: false,
            eof: false,
            probe: [0; PROBE_LEN],
            total: 0,
        }
    }

    /// Bytes written so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Whether what was written so far ends with a whole Terminate (the client said goodbye).
    pub(crate) fn wrote_terminate(&self) -> bool {
        self.cursor.ends_with_frame(b'X')
    }

    /// Queues `frame` (one whole message the gateway sends itself, a NoticeResponse) to be
    /// written next, if this pump is between frames with nothing left to write; else gives
    /// it back, to be tried again later.
    pub(crate) fn inject(&mut self, frame: Vec<u8>) -> Result<(), Vec<u8>> {
        if self.start < self.end || !self.cursor.at_boundary() || self.eof {
            return Err(frame);
        }
        self.start = 0;
        self.end = frame.len();
        self.chunk = Some(Chunk::Rest(frame));
        Ok(())
    }

    /// Whether what was written so far ends at a frame boundary.
    pub(crate) fn at_boundary(&self) -> bool {
        self.cursor.at_boundary()
    }

    /// Moves bytes from `from` to `to` until `from` ends or, when `stopping`, until what `to`
    /// got ends at a frame boundary (the rest of a read is dropped there). `traffic` counts
    /// every byte written; `watched`, when given, observes it (the session's state).
    pub(crate) fn poll_pump<R: RelayIo, W: RelayIo>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        stopping: bool,
        traffic: &Traffic,
        mut watched: Option<&mut Watched>,
    ) -> Poll<Result<PumpEnd, SessionError>> {
        loop {
            if self.start < self.end {
                ready!(self.poll_write_some(cx, to, stopping, traffic, watched.as_deref_mut()))?;
                continue;
            }
            if self.unflushed {
                ready!(Pin::new(&mut *to).poll_flush(cx)).map_err(|e| self.leg.write_error(e))?;
                self.unflushed = false;
            }
            if stopping && self.cursor.at_boundary() {
                self.chunk = None;
                return Poll::Ready(Ok(PumpEnd::AtBoundary));
            }
            if self.eof {
                self.chunk = None;
                return Poll::Ready(Ok(PumpEnd::Eof));
            }
            ready!(self.poll_read_some(cx, from))?;
        }
    }

    /// Writes some of `chunk[start..end]` (up to the next boundary when stopping).
    fn poll_write_some<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
        stopping: bool,
        traffic: &Traffic,
        watched: Option<&mut Watched>,
    ) -> Poll<Result<(), SessionError>> {
        let Some(chunk) = self.chunk.as_ref() else {
            self.start = self.end;
            return Poll::Ready(Ok(()));
        };
        let mut bytes = &chunk.bytes()[self.start..self.end];
        if stopping {
            // Asked on a copy: the cursor follows only what is written.
            let mut probe = self.cursor;
            if let Ok(Some(cut)) = probe.feed_to_boundary(bytes) {
                bytes = &bytes[..cut];
            }
            if bytes.is_empty() {
                // At a boundary: what follows is dropped.
                self.end = self.start;
                return Poll::Ready(Ok(()));
            }
        }
        let written = ready!(Pin::new(&mut *to).poll_write(cx, bytes))
            .map_err(|e| self.leg.write_error(e))?;
        if written == 0 {
            return Poll::Ready(Err(self.leg.write_error(io::ErrorKind::WriteZero.into())));
        }
        let was_lost = self.cursor.is_lost();
        if let Err(e) = self.cursor.feed(&bytes[..written])
            && !was_lost
        {
            // The peer will judge the stream; the relay only loses its boundaries (a stop
            // then closes without a FATAL).
            debug!(error = %e, leg = ?self.leg, "frame boundaries lost");
        }
        if let Some(watched) = watched {
            watched.observe(self.leg.sender(), &bytes[..written]);
        }
        traffic.add(self.leg.way(), written as u64);
        self.total += written as u64;
        self.start += written;
        self.unflushed = true;
        Poll::Ready(Ok(()))
    }

    /// Reads into the pump's buffer, taking one from the pool once the source has bytes and
    /// giving it back when a read would wait with nothing in it. Sets `eof` at the end.
    fn poll_read_some<R: RelayIo>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
    ) -> Poll<Result<(), SessionError>> {
        self.start = 0;
        self.end = 0;
        if !matches!(self.chunk, Some(Chunk::Pooled(_))) {
            self.chunk = None;
            // No buffer while waiting: readiness on a plain socket, a probe read on TLS.
            let probed = match from.plain_tcp() {
                Some(tcp) => {
                    ready!(tcp.poll_read_ready(cx)).map_err(|e| self.leg.read_error(e))?;
                    0
                }
                None => {
                    let mut probe = ReadBuf::new(&mut self.probe);
                    ready!(Pin::new(&mut *from).poll_read(cx, &mut probe))
                        .map_err(|e| self.leg.read_error(e))?;
                    let probed = probe.filled().len();
                    if probed == 0 {
                        self.eof = true;
                        return Poll::Ready(Ok(()));
                    }
                    probed
                }
            };
            let mut pooled = Pooled::take();
            pooled[..probed].copy_from_slice(&self.probe[..probed]);
            self.chunk = Some(Chunk::Pooled(pooled));
            self.end = probed;
        }
        let Some(Chunk::Pooled(buffer)) = self.chunk.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut unread = ReadBuf::new(&mut buffer[self.end..]);
        match Pin::new(&mut *from).poll_read(cx, &mut unread) {
            Poll::Ready(Ok(())) => {
                let read = unread.filled().len();
                if read == 0 {
                    self.eof = true;
                }
                self.end += read;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.leg.read_error(e))),
            // A plain socket's short read cleared its readiness, so this wait costs no
            // system call; with nothing read, the buffer goes back to the pool.
            Poll::Pending if self.end == 0 => {
                self.chunk = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Ready(Ok(())),
        }
    }
}
