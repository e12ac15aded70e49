//! The two legs' byte streams: plain TCP or TLS over it, as one type each so the relay is not
//! generic and does no dynamic dispatch per read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The client's connection to the gateway.
#[derive(Debug)]
pub(crate) enum ClientStream {
    /// No TLS.
    Plain(TcpStream),
    /// TLS, after an SSLRequest or directly.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The gateway's connection to the server.
#[derive(Debug)]
pub(crate) enum ServerStream {
    /// No TLS.
    Plain(TcpStream),
    /// TLS after an SSLRequest.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Whether the leg is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

macro_rules! delegate_io {
    ($ty:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
                }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_flush(cx),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_io!(ClientStream);
delegate_io!(ServerStream);

/// A leg as the relay drives it: readable and writable, and, when it is plain TCP, the socket
/// itself, so the relay can wait for readiness without holding a buffer.
pub(crate) trait RelayIo: AsyncRead + AsyncWrite + Unpin {
    /// The socket when the leg has no TLS.
    fn plain_tcp(&self) -> Option<&TcpStream>;
}

impl RelayIo for ClientStream {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        match self {
            ClientStream::Plain(tcp) => Some(tcp),
            ClientStream::Tls(_) => None,
        }
    }
}

impl RelayIo for ServerStream {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        match self {
            ServerStream::Plain(tcp) => Some(tcp),
            ServerStream::Tls(_) => None,
        }
    }
}
