//! The server leg: TCP to the target's first reachable host, TLS per its `sslmode`, the
//! client's startup parameters (plus `curfew.client_addr`), SCRAM as the client's role with the
//! ClientKey recovered from the client, then the server's ParameterStatus, BackendKeyData and
//! ReadyForQuery collected for the client.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use curfew_postgres::{Host, SslMode};
use curfew_scram::{ClientChannelBinding, ClientExchange, OsNonce, tls_server_end_point};
use curfew_wire::{
    Authentication, BackendMessage, Direction, ProtocolVersion, encode_sasl_initial_response,
    encode_sasl_response, encode_ssl_request, encode_startup,
};
use tracing::warn;

use crate::auth::ClientAuthenticated;
use crate::cancel::ServerKey;
use crate::config::UpstreamConfig;
use crate::error::{Fatal, SessionError, sqlstate};
use crate::frames::{FrameReader, send_server};
use crate::stream::ServerStream;

/// A server connection, logged in and ready for queries.
#[derive(Debug)]
pub(crate) struct ServerSession {
    /// The stream.
    pub(crate) stream: ServerStream,
    /// Bytes read beyond the ReadyForQuery (none, from a well-behaved server).
    pub(crate) rest: Vec<u8>,
    /// The server's cancel identity.
    pub(crate) key: ServerKey,
    /// ParameterStatus and NoticeResponse messages as the server sent them, for the client.
    pub(crate) greeting: Vec<u8>,
    /// The ReadyForQuery message as sent.
    pub(crate) ready: Vec<u8>,
}

/// What the login ended with, when it did not succeed.
#[derive(Debug)]
pub(crate) enum LoginFailure {
    /// The server refused with an ErrorResponse (its bytes, for the client).
    Refused {
        /// The ErrorResponse as sent.
        raw: Vec<u8>,
        /// Its SQLSTATE and message, for the log.
        code: String,
        /// Its message.
        message: String,
    },
    /// Anything else: the client gets this FATAL.
    Gateway(Fatal, SessionError),
}

/// Connects to the server (TCP, then TLS per `sslmode`).
pub(crate) async fn connect(
    upstream: &UpstreamConfig,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<ServerStream, SessionError> {
    let url = &upstream.url;
    let mut last_error = None;
    for (host, port) in &url.hosts {
        let Host::Tcp(name) = host else {
            continue;
        };
        match TcpStream::connect((name.as_str(), *port)).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return start_tls(tcp, name, url.sslmode, tls).await;
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(SessionError::ServerIo(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the target's URL names no TCP host",
        )
    })))
}

async fn start_tls(
    mut tcp: TcpStream,
    host: &str,
    mode: SslMode,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<ServerStream, SessionError> {
    let Some(config) = tls else {
        return Ok(ServerStream::Plain(tcp));
    };
    let mut request = Vec::with_capacity(8);
    encode_ssl_request(&mut request);
    tcp.write_all(&request)
        .await
        .map_err(SessionError::ServerIo)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(SessionError::ServerIo)?;
    match (answer[0], mode) {
        (b'S', _) => {}
        (b'N', SslMode::Prefer) => return Ok(ServerStream::Plain(tcp)),
        (b'N', _) => {
            return Err(SessionError::ServerTls(format!(
                "the server does not accept TLS, and sslmode={} requires it",
                mode.as_str()
            )));
        }
        (other, _) => {
            return Err(SessionError::ServerTls(format!(
                "unexpected answer {:?} to the SSLRequest",
                other as char
            )));
        }
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| SessionError::ServerTls(format!("server name {host:?}: {e}")))?;
    let stream = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| SessionError::ServerTls(e.to_string()))?;
    Ok(ServerStream::Tls(Box::new(stream)))
}

/// Starts the session on `stream` as the client's role: the startup packet with `params` in
/// order, SCRAM with the client's ClientKey, then the server's greeting.
pub(crate) async fn login(
    mut stream: ServerStream,
    version: ProtocolVersion,
    params: &[(&[u8], &[u8])],
    client: ClientAuthenticated,
) -> Result<ServerSession, LoginFailure> {
    let gateway = |e: SessionError| {
        let fatal = Fatal::new(
            sqlstate::CONNECTION_FAILURE,
            "curfew gateway could not start the session on the server",
        );
        LoginFailure::Gateway(fatal, e)
    };
    let mut out = Vec::new();
    encode_startup(version, params, &mut out)
        .map_err(|e| gateway(SessionError::ClientProtocol(e)))?;
    send_server(&mut stream, &out).await.map_err(gateway)?;
    let binding = match &stream {
        ServerStream::Tls(tls) => tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| tls_server_end_point(leaf).ok())
            .map_or(
                ClientChannelBinding::None,
                ClientChannelBinding::TlsServerEndPoint,
            ),
        ServerStream::Plain(_) => ClientChannelBinding::None,
    };
    let mut reader = FrameReader::new(Direction::Backend);
    let mut client_key = Some(client.client_key);
    let mut exchange = None;
    let mut awaiting = None;
    let mut key = None;
    let mut greeting = Vec::new();
    loop {
        let frame = reader.next(&mut stream).await.map_err(gateway)?;
        let parsed = frame
            .frame()
            .and_then(BackendMessage::parse)
            .map_err(|e| gateway(SessionError::ServerProtocol(e)))?;
        match parsed {
            BackendMessage::Authentication(Authentication::Sasl(mechanisms)) => {
                let offered: Vec<&str> = mechanisms
                    .iter()
                    .filter_map(|m| std::str::from_utf8(m).ok())
                    .collect();
                let Some(client_key) = client_key.take() else {
                    return Err(gateway(SessionError::ServerSequence(
                        "a second AuthenticationSASL",
                    )));
                };
                let (first, next) = ClientExchange::start(
                    client_key,
                    &client.verifier,
                    &binding,
                    &offered,
                    &mut OsNonce,
                )
                .map_err(|e| scram_failure(&e))?;
                out.clear();
                encode_sasl_initial_response(
                    first.mechanism.name().as_bytes(),
                    Some(first.message.as_bytes()),
                    &mut out,
                )
                .map_err(|e| gateway(SessionError::ServerProtocol(e)))?;
                send_server(&mut stream, &out).await.map_err(gateway)?;
                exchange = Some(next);
            }
            BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                let Some(next) = exchange.take() else {
                    return Err(gateway(SessionError::ServerSequence(
                        "AuthenticationSASLContinue out of place",
                    )));
                };
                let (client_final, next) =
                    next.server_first(data).map_err(|e| scram_failure(&e))?;
                out.clear();
                encode_sasl_response(client_final.as_bytes(), &mut out)
                    .map_err(|e| gateway(SessionError::ServerProtocol(e)))?;
                send_server(&mut stream, &out).await.map_err(gateway)?;
                awaiting = Some(next);
            }
            BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
                let Some(next) = awaiting.take() else {
                    return Err(gateway(SessionError::ServerSequence(
                        "AuthenticationSASLFinal out of place",
                    )));
                };
                next.server_final(data).map_err(|e| scram_failure(&e))?;
            }
            BackendMessage::Authentication(Authentication::Ok) => {}
            BackendMessage::Authentication(_) => {
                warn!("the server asks for a password method other than SCRAM-SHA-256");
                return Err(LoginFailure::Gateway(
                    Fatal::new(
                        sqlstate::INVALID_AUTHORIZATION,
                        "the server does not authenticate this role with scram-sha-256, which curfew gateway requires",
                    ),
                    SessionError::ServerSequence("a password method other than SCRAM"),
                ));
            }
            BackendMessage::ErrorResponse(fields) => {
                let text =
                    |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
                return Err(LoginFailure::Refused {
                    code: text(fields.code()),
                    message: text(fields.message()),
                    raw: frame.raw.clone(),
                });
            }
            // The server does not serve the minor version asked for: the client was already
            // told what the gateway serves, and the versions differ only in the key length,
            // which the gateway sets for the client itself.
            BackendMessage::NegotiateProtocolVersion(_) => {}
            BackendMessage::BackendKeyData(data) => {
                key = Some(ServerKey {
                    process_id: data.process_id,
                    key: data.secret_key.to_vec(),
                });
            }
            BackendMessage::ReadyForQuery(_) => {
                let Some(key) = key else {
                    return Err(gateway(SessionError::ServerSequence(
                        "ReadyForQuery without BackendKeyData",
                    )));
                };
                return Ok(ServerSession {
                    stream,
                    rest: reader.into_rest(),
                    key,
                    greeting,
                    ready: frame.raw,
                });
            }
            BackendMessage::ParameterStatus(_) | BackendMessage::NoticeResponse(_) => {
                greeting.extend_from_slice(&frame.raw);
            }
            BackendMessage::Other(_) => {
                return Err(gateway(SessionError::ServerSequence(
                    "a message that has no place in the login",
                )));
            }
        }
    }
}

fn scram_failure(error: &curfew_scram::ClientError) -> LoginFailure {
    warn!(reason = %error, "SCRAM with the server failed");
    LoginFailure::Gateway(
        Fatal::new(
            sqlstate::INVALID_AUTHORIZATION,
            "curfew gateway could not log in to the server as this role",
        ),
        SessionError::ServerSequence("SCRAM with the server failed"),
    )
}

/// Sends a CancelRequest for `key` over a new connection, TLS or not as the target needs.
/// The server answers nothing; the connection is closed after the request.
pub(crate) async fn send_cancel(
    upstream: &UpstreamConfig,
    tls: Option<&Arc<ClientConfig>>,
    key: &ServerKey,
) -> Result<(), SessionError> {
    let mut stream = connect(upstream, tls).await?;
    let mut out = Vec::new();
    curfew_wire::encode_cancel_request(key.process_id, &key.key, &mut out)
        .map_err(SessionError::ServerProtocol)?;
    send_server(&mut stream, &out).await?;
    // Wait for the server to close, so the cancel has been read before this returns.
    let mut sink = [0u8; 16];
    let _ = stream.read(&mut sink).await;
    Ok(())
}
