//! The session's relay: both directions at once, each forwarding whole read buffers (one write
//! per read, not per message: pipelines and COPY keep their batching). A plaintext direction
//! waits for its socket to be readable before it takes a pooled buffer and gives it back once
//! the socket is drained; a TLS direction waits on a 64-byte probe and takes a buffer for what
//! follows it. So an idle session holds no buffer, and a busy one reuses pooled buffers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::buffers::Pooled;
use crate::error::SessionError;
use crate::stream::{ClientStream, ServerStream};

/// How long the server may take to close after the client left (it got a Terminate).
const SERVER_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// PostgreSQL's Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// What the relay moved before the session ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayTotals {
    /// Bytes from the client to the server.
    pub client_to_server: u64,
    /// Bytes from the server to the client.
    pub server_to_client: u64,
}

/// Relays until either side ends. `client_rest`/`server_rest` are bytes already read during
/// the login that belong to the session. The client's EOF becomes a Terminate to the server;
/// the server's EOF closes the client; an error on either side closes both.
pub(crate) async fn relay(
    client: ClientStream,
    client_rest: Vec<u8>,
    server: ServerStream,
    server_rest: Vec<u8>,
) -> Result<RelayTotals, SessionError> {
    let (mut client_read, mut client_write) = match client {
        ClientStream::Plain(tcp) => split_tcp(tcp),
        tls => {
            let (read, write) = tokio::io::split(tls);
            (ReadSide::Client(read), WriteSide::Client(write))
        }
    };
    let (mut server_read, mut server_write) = match server {
        ServerStream::Plain(tcp) => split_tcp(tcp),
        tls => {
            let (read, write) = tokio::io::split(tls);
            (ReadSide::Server(read), WriteSide::Server(write))
        }
    };
    let upward = async {
        let sent = forward(
            &mut client_read,
            &mut server_write,
            client_rest,
            Leg::Upward,
        )
        .await;
        // The client left, politely, by EOF or by an error: the server hears a Terminate
        // every time (one after the client's own is harmless: the server has closed by then).
        let _ = server_write.write_all(&TERMINATE).await;
        let _ = server_write.shutdown().await;
        sent
    };
    let downward = async {
        let sent = forward(
            &mut server_read,
            &mut client_write,
            server_rest,
            Leg::Downward,
        )
        .await?;
        let _ = client_write.shutdown().await;
        Ok::<u64, SessionError>(sent)
    };
    tokio::pin!(upward, downward);
    tokio::select! {
        down = &mut downward => {
            // The server ended the session: nothing the client sends can go anywhere.
            Ok(RelayTotals { client_to_server: 0, server_to_client: down? })
        }
        up = &mut upward => {
            let up = up?;
            // Let the server's last words reach the client until it closes.
            let down = tokio::time::timeout(SERVER_CLOSE_GRACE, downward)
                .await
                .unwrap_or(Ok(0))?;
            Ok(RelayTotals { client_to_server: up, server_to_client: down })
        }
    }
}

#[derive(Clone, Copy)]
enum Leg {
    /// Client to server.
    Upward,
    /// Server to client.
    Downward,
}

impl Leg {
    fn read_error(self, e: std::io::Error) -> SessionError {
        match self {
            Leg::Upward => SessionError::ClientIo(e),
            Leg::Downward => SessionError::ServerIo(e),
        }
    }

    fn write_error(self, e: std::io::Error) -> SessionError {
        match self {
            Leg::Upward => SessionError::ServerIo(e),
            Leg::Downward => SessionError::ClientIo(e),
        }
    }
}

/// A direction's source.
enum ReadSide {
    /// A plaintext socket: read when readable, into a pooled buffer.
    Tcp(OwnedReadHalf),
    /// The client's TLS stream.
    Client(tokio::io::ReadHalf<ClientStream>),
    /// The server's TLS stream.
    Server(tokio::io::ReadHalf<ServerStream>),
}

/// A direction's sink.
enum WriteSide {
    /// A plaintext socket.
    Tcp(OwnedWriteHalf),
    /// The client's TLS stream.
    Client(tokio::io::WriteHalf<ClientStream>),
    /// The server's TLS stream.
    Server(tokio::io::WriteHalf<ServerStream>),
}

fn split_tcp(tcp: tokio::net::TcpStream) -> (ReadSide, WriteSide) {
    let (read, write) = tcp.into_split();
    (ReadSide::Tcp(read), WriteSide::Tcp(write))
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteSide::Client(w) => Pin::new(w).poll_write(cx, buf),
            WriteSide::Server(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Client(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Server(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Client(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Server(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Copies `from` to `to` until EOF: `pending` first, then each read whole.
async fn forward(
    from: &mut ReadSide,
    to: &mut WriteSide,
    pending: Vec<u8>,
    leg: Leg,
) -> Result<u64, SessionError> {
    let mut total = 0u64;
    if !pending.is_empty() {
        to.write_all(&pending)
            .await
            .map_err(|e| leg.write_error(e))?;
        to.flush().await.map_err(|e| leg.write_error(e))?;
        total += pending.len() as u64;
    }
    drop(pending);
    match from {
        ReadSide::Tcp(tcp) => forward_when_readable(tcp, to, leg, total).await,
        ReadSide::Client(tls) => forward_buffered(tls, to, leg, total).await,
        ReadSide::Server(tls) => forward_buffered(tls, to, leg, total).await,
    }
}

/// A plaintext source: a pooled buffer only from readable to drained.
async fn forward_when_readable(
    from: &OwnedReadHalf,
    to: &mut WriteSide,
    leg: Leg,
    mut total: u64,
) -> Result<u64, SessionError> {
    loop {
        from.readable().await.map_err(|e| leg.read_error(e))?;
        let mut buffer = Pooled::take();
        loop {
            let read = match from.try_read(&mut buffer) {
                Ok(0) => return Ok(total),
                Ok(read) => read,
                // Drained (or a spurious wake-up): the buffer goes back to the pool.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(leg.read_error(e)),
            };
            to.write_all(&buffer[..read])
                .await
                .map_err(|e| leg.write_error(e))?;
            to.flush().await.map_err(|e| leg.write_error(e))?;
            total += read as u64;
        }
    }
}

/// How much a TLS direction reads while it waits: an idle session holds this, not a buffer.
const PROBE_LEN: usize = 64;

/// A TLS source: it waits with a small probe; once bytes come, it takes a pooled buffer, fills
/// it with what is already there without waiting again (the stream has decrypted it), forwards
/// that, and gives the buffer back.
async fn forward_buffered<R: AsyncRead + Unpin>(
    from: &mut R,
    to: &mut WriteSide,
    leg: Leg,
    mut total: u64,
) -> Result<u64, SessionError> {
    loop {
        let mut probe = [0u8; PROBE_LEN];
        let first = from.read(&mut probe).await.map_err(|e| leg.read_error(e))?;
        if first == 0 {
            return Ok(total);
        }
        let mut buffer = Pooled::take();
        buffer[..first].copy_from_slice(&probe[..first]);
        let mut filled = first;
        let mut ended = false;
        // More of what is already decrypted, until the stream would wait (a read future
        // dropped while pending loses nothing: the next read polls again).
        while filled < buffer.len() {
            match from.read(&mut buffer[filled..]).now_or_never() {
                Some(Ok(0)) => {
                    ended = true;
                    break;
                }
                Some(Ok(read)) => filled += read,
                Some(Err(e)) => return Err(leg.read_error(e)),
                None => break,
            }
        }
        to.write_all(&buffer[..filled])
            .await
            .map_err(|e| leg.write_error(e))?;
        to.flush().await.map_err(|e| leg.write_error(e))?;
        total += filled as u64;
        if ended {
            return Ok(total);
        }
    }
}
