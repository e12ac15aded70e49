//! The session's relay: both directions at once, each forwarding whole read buffers (one write
//! per read, not per message: pipelines and COPY keep their batching) through one reusable
//! buffer, so the steady state allocates nothing.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::SessionError;
use crate::stream::{ClientStream, ServerStream};

/// Each direction's buffer. Small on purpose: an idle session's memory is mostly these.
const BUFFER_LEN: usize = 8 * 1024;

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
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
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

/// Copies `from` to `to` until EOF: `pending` first, then each read whole.
async fn forward<R, W>(
    from: &mut R,
    to: &mut W,
    pending: Vec<u8>,
    leg: Leg,
) -> Result<u64, SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    if !pending.is_empty() {
        to.write_all(&pending)
            .await
            .map_err(|e| leg.write_error(e))?;
        to.flush().await.map_err(|e| leg.write_error(e))?;
        total += pending.len() as u64;
    }
    drop(pending);
    let mut buffer = vec![0u8; BUFFER_LEN];
    loop {
        let read = from
            .read(&mut buffer)
            .await
            .map_err(|e| leg.read_error(e))?;
        if read == 0 {
            return Ok(total);
        }
        to.write_all(&buffer[..read])
            .await
            .map_err(|e| leg.write_error(e))?;
        to.flush().await.map_err(|e| leg.write_error(e))?;
        total += read as u64;
    }
}
