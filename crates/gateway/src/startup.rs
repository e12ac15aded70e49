//! The client leg's opening: SSLRequest ('S' and a TLS handshake, or 'N'), PostgreSQL 17's
//! direct TLS (ALPN `postgresql` required), GSSENCRequest ('N'), then the StartupMessage or a
//! CancelRequest. Every packet is read to its exact length, so no plaintext byte sent after an
//! SSLRequest is ever taken as part of the session.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use curfew_wire::{
    Initial, InitialPacket, MAX_STARTUP_PACKET_LENGTH, ProtocolError, ProtocolVersion,
    TLS_HANDSHAKE_BYTE, parse_initial,
};

use crate::client_tls::{ALPN_POSTGRESQL, LoadedTls, TlsHandle};
use crate::error::SessionError;
use crate::stream::ClientStream;

/// How many SSLRequest/GSSENCRequest packets may come before the startup (libpq sends at most
/// one of each).
const MAX_NEGOTIATIONS: usize = 3;

/// What a new client connection asked for.
#[derive(Debug)]
pub(crate) enum Opening {
    /// A CancelRequest (the connection carries nothing else).
    Cancel {
        /// The process id the client was given.
        process_id: i32,
        /// The key the client was given.
        key: Vec<u8>,
    },
    /// A session.
    Startup(ClientStartup),
}

/// A client that sent its StartupMessage.
#[derive(Debug)]
pub(crate) struct ClientStartup {
    /// The client's stream, TLS or not.
    pub(crate) stream: ClientStream,
    /// The TLS configuration the handshake used (for channel binding).
    pub(crate) tls: Option<Arc<LoadedTls>>,
    /// The protocol version the client asked for.
    pub(crate) version: ProtocolVersion,
    /// The parameters in the order sent, bytes as sent.
    pub(crate) params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ClientStartup {
    /// The value of parameter `name`.
    pub(crate) fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The role the client logs in as.
    pub(crate) fn user(&self) -> &[u8] {
        self.param(b"user").unwrap_or_default()
    }
}

/// Reads the client's opening packets, answering SSLRequest and GSSENCRequest on the way.
pub(crate) async fn open(tcp: TcpStream, tls: &TlsHandle) -> Result<Opening, SessionError> {
    let mut first = [0u8; 1];
    let peeked = tcp.peek(&mut first).await.map_err(SessionError::ClientIo)?;
    if peeked == 0 {
        return Err(SessionError::ClientClosed);
    }
    let (mut stream, mut used_tls) = if first[0] == TLS_HANDSHAKE_BYTE {
        let loaded = tls.current().ok_or(SessionError::ClientClosed)?;
        let stream = handshake(tcp, &loaded, true).await?;
        (stream, Some(loaded))
    } else {
        (ClientStream::Plain(tcp), None)
    };
    for _ in 0..MAX_NEGOTIATIONS {
        let packet = read_initial(&mut stream).await?;
        let parsed = match parse_initial(&packet).map_err(SessionError::ClientProtocol)? {
            Initial::Packet { packet, .. } => packet,
            // read_initial returns exactly one whole packet, never a TLS record.
            Initial::Incomplete { .. } | Initial::DirectTls => {
                return Err(SessionError::ClientNegotiation(
                    "an incomplete startup packet",
                ));
            }
        };
        match parsed {
            InitialPacket::SslRequest => {
                let ClientStream::Plain(mut tcp) = stream else {
                    return Err(negotiation_violation());
                };
                match tls.current() {
                    Some(loaded) => {
                        tcp.write_all(b"S").await.map_err(SessionError::ClientIo)?;
                        stream = handshake(tcp, &loaded, false).await?;
                        used_tls = Some(loaded);
                    }
                    None => {
                        tcp.write_all(b"N").await.map_err(SessionError::ClientIo)?;
                        stream = ClientStream::Plain(tcp);
                    }
                }
            }
            InitialPacket::GssEncRequest => {
                let ClientStream::Plain(tcp) = &mut stream else {
                    return Err(negotiation_violation());
                };
                tcp.write_all(b"N").await.map_err(SessionError::ClientIo)?;
            }
            InitialPacket::Cancel(request) => {
                return Ok(Opening::Cancel {
                    process_id: request.process_id,
                    key: request.secret_key.to_vec(),
                });
            }
            InitialPacket::Startup(message) => {
                let params = message
                    .params()
                    .map(|(name, value)| (name.to_vec(), value.to_vec()))
                    .collect();
                return Ok(Opening::Startup(ClientStartup {
                    stream,
                    tls: used_tls,
                    version: message.version(),
                    params,
                }));
            }
        }
    }
    Err(negotiation_violation())
}

fn negotiation_violation() -> SessionError {
    SessionError::ClientNegotiation("an SSLRequest or GSSENCRequest out of place")
}

/// Reads one initial packet, exactly: its length word, then the rest (bounded by the
/// codec's limit before anything is allocated).
async fn read_initial<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Vec<u8>, SessionError> {
    let mut length = [0u8; 4];
    stream
        .read_exact(&mut length)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SessionError::ClientClosed,
            _ => SessionError::ClientIo(e),
        })?;
    let claimed = u32::from_be_bytes(length);
    if !(8..=MAX_STARTUP_PACKET_LENGTH + 4).contains(&claimed) {
        return Err(SessionError::ClientProtocol(ProtocolError::StartupLength {
            claimed,
        }));
    }
    let mut packet = vec![0u8; claimed as usize];
    packet[..4].copy_from_slice(&length);
    stream
        .read_exact(&mut packet[4..])
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SessionError::ClientClosed,
            _ => SessionError::ClientIo(e),
        })?;
    Ok(packet)
}

/// The TLS handshake; a direct-TLS client must have negotiated ALPN `postgresql` (as
/// PostgreSQL 17 requires, so a TLS client of another protocol cannot be confused with one).
async fn handshake(
    tcp: TcpStream,
    loaded: &LoadedTls,
    direct: bool,
) -> Result<ClientStream, SessionError> {
    let acceptor = TlsAcceptor::from(loaded.config.clone());
    let tls = acceptor
        .accept(tcp)
        .await
        .map_err(SessionError::ClientTls)?;
    if direct && tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        return Err(SessionError::ClientTls(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "direct TLS without ALPN postgresql",
        )));
    }
    Ok(ClientStream::Tls(Box::new(tls)))
}
