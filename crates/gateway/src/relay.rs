//! The session's relay: both directions driven by one task through [`Pump`]s (no second
//! task, no split streams, no cross-thread wake-up), until a side leaves, an error, or a stop.
//!
//! A stop (the drain, later the policy) ends the session cleanly: the server's bytes are
//! forwarded up to the next frame boundary and what follows is dropped, the FATAL is written
//! (so the client reads a well-formed stream ending in it), the server gets a Terminate when
//! what it received ends at a frame boundary (mid-frame one would be garbage: it is just
//! closed), and both connections close.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::buffers::Pooled;
use crate::error::{Fatal, SessionError};
use crate::pump::{Leg, Pump, PumpEnd};
use crate::stream::{ClientStream, ServerStream};
use crate::traffic::{RelayTotals, Traffic};

/// How long the server may take to close after the client left (it got a Terminate).
const SERVER_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long a stop waits for the server's frame in progress to end, and then for the FATAL
/// and the Terminate to be written.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a stopped client may take to close after its FATAL.
const LINGER: Duration = Duration::from_secs(2);

/// PostgreSQL's Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// How a relayed session ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client closed its connection (the server got a Terminate).
    ClientLeft,
    /// The server closed its connection (the client's was closed after it).
    ServerLeft,
    /// Stopped with this FATAL; `delivered` when the client got it after whole frames (not
    /// when the server's frame in progress did not end in time or the write failed).
    Stopped {
        /// The FATAL sent.
        fatal: Fatal,
        /// Whether it was written to the client.
        delivered: bool,
    },
    /// Reading or writing a side failed.
    Failed(SessionError),
}

/// How a relayed session ended and what it moved.
#[derive(Debug)]
pub struct RelayOutcome {
    /// How it ended.
    pub end: RelayEnd,
    /// Bytes each way.
    pub totals: RelayTotals,
}

/// What ended the first phase.
enum Phase {
    ClientLeft,
    ServerLeft,
    Stop(Fatal),
    Failed(SessionError),
}

/// Relays until a side leaves, an error, or `stop` completes with the FATAL to end the
/// session with. `client_rest`/`server_rest` are bytes read during the login that belong to
/// the session. Every byte written is added to `traffic`.
pub(crate) async fn relay(
    mut client: ClientStream,
    client_rest: Vec<u8>,
    mut server: ServerStream,
    server_rest: Vec<u8>,
    stop: impl Future<Output = Fatal>,
    traffic: &Traffic,
) -> RelayOutcome {
    let mut up = Pump::new(Leg::Upward, client_rest);
    let mut down = Pump::new(Leg::Downward, server_rest);
    let mut stop = pin!(stop);
    let phase = poll_fn(|cx| {
        if let Poll::Ready(fatal) = stop.as_mut().poll(cx) {
            return Poll::Ready(Phase::Stop(fatal));
        }
        let to_client = &traffic.server_to_client;
        match down.poll_pump(cx, &mut server, &mut client, false, to_client) {
            Poll::Ready(Ok(_)) => return Poll::Ready(Phase::ServerLeft),
            Poll::Ready(Err(e)) => return Poll::Ready(Phase::Failed(e)),
            Poll::Pending => {}
        }
        let to_server = &traffic.client_to_server;
        match up.poll_pump(cx, &mut client, &mut server, false, to_server) {
            Poll::Ready(Ok(_)) => Poll::Ready(Phase::ClientLeft),
            Poll::Ready(Err(e)) => Poll::Ready(Phase::Failed(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let end = match phase {
        Phase::ServerLeft => {
            // Nothing the client sends can go anywhere now.
            let _ = client.shutdown().await;
            RelayEnd::ServerLeft
        }
        Phase::ClientLeft => {
            client_left(&mut client, &mut server, &up, &mut down, traffic).await;
            RelayEnd::ClientLeft
        }
        Phase::Stop(fatal) => {
            stopped(&mut client, &mut server, &up, &mut down, fatal, traffic).await
        }
        Phase::Failed(e) => RelayEnd::Failed(e),
    };
    RelayOutcome {
        end,
        totals: RelayTotals {
            client_to_server: up.total(),
            server_to_client: down.total(),
        },
    }
}

/// The client left: the server hears a Terminate (unless the client left mid-message: then
/// it is just closed), and its last words still reach the client until it closes.
async fn client_left(
    client: &mut ClientStream,
    server: &mut ServerStream,
    up: &Pump,
    down: &mut Pump,
    traffic: &Traffic,
) {
    // One after the client's own Terminate is harmless: the server has closed by then.
    if up.at_boundary() {
        let _ = timeout(SERVER_CLOSE_GRACE, server.write_all(&TERMINATE)).await;
    }
    let _ = timeout(SERVER_CLOSE_GRACE, server.shutdown()).await;
    let to_client = &traffic.server_to_client;
    let _ = timeout(
        SERVER_CLOSE_GRACE,
        poll_fn(|cx| down.poll_pump(cx, server, client, false, to_client)),
    )
    .await;
    let _ = timeout(SERVER_CLOSE_GRACE, client.shutdown()).await;
}

/// The stop: the server's stream up to a frame boundary, the FATAL, a Terminate when the
/// server's stream is at a boundary, both closed.
async fn stopped(
    client: &mut ClientStream,
    server: &mut ServerStream,
    up: &Pump,
    down: &mut Pump,
    fatal: Fatal,
    traffic: &Traffic,
) -> RelayEnd {
    let to_client = &traffic.server_to_client;
    let reached = timeout(
        STOP_GRACE,
        poll_fn(|cx| down.poll_pump(cx, server, client, true, to_client)),
    )
    .await;
    let delivered = match reached {
        Ok(Ok(PumpEnd::AtBoundary)) => timeout(STOP_GRACE, async {
            client.write_all(&fatal.encode()).await?;
            client.flush().await
        })
        .await
        .is_ok_and(|written| written.is_ok()),
        // The server left meanwhile, an error, or its frame did not end in time: the client
        // cannot be given a FATAL after a partial frame.
        Ok(Ok(PumpEnd::Eof)) | Ok(Err(_)) | Err(_) => false,
    };
    let _ = timeout(STOP_GRACE, client.shutdown()).await;
    if up.at_boundary() {
        let _ = timeout(STOP_GRACE, server.write_all(&TERMINATE)).await;
    }
    let _ = timeout(STOP_GRACE, server.shutdown()).await;
    linger(client).await;
    RelayEnd::Stopped { fatal, delivered }
}

/// Reads (and drops) what the client still sends until it closes, for at most [`LINGER`]:
/// closing a socket with unread bytes sends a reset, and a reset can destroy the FATAL in
/// the client's receive buffer before the client reads it (a driver with a message in
/// flight at the stop would see "connection reset" instead of 57P01).
async fn linger(client: &mut ClientStream) {
    let mut sink = Pooled::take();
    let _ = timeout(LINGER, async {
        while let Ok(read) = client.read(&mut sink).await
            && read > 0
        {}
    })
    .await;
}
