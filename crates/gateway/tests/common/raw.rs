//! A client written on the codec, for what tokio-postgres does not show: the BackendKeyData a
//! session got, protocol 3.2, direct TLS, and bytes no driver would send.

use curfew_scram::{ClientChannelBinding, ClientExchange, ClientKey, OsNonce, Verifier};
use curfew_wire::{
    Authentication, BackendMessage, Direction, ProtocolVersion, Split, encode_frame,
    encode_sasl_initial_response, encode_sasl_response, encode_startup, split_frame,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a raw login saw.
#[derive(Debug, Default)]
pub struct RawLogin {
    /// BackendKeyData's process id.
    pub process_id: i32,
    /// BackendKeyData's key length.
    pub key_len: usize,
    /// NegotiateProtocolVersion's newest minor, if one came.
    pub negotiated_minor: Option<u32>,
    /// The options NegotiateProtocolVersion named as unrecognized.
    pub unrecognized: Vec<String>,
    /// The mechanisms offered.
    pub mechanisms: Vec<String>,
}

/// Reads one backend message (tag, body).
pub async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u8, Vec<u8>)> {
    loop {
        if let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, buf) {
            let out = (frame.tag(), frame.body().to_vec());
            let len = frame.len();
            buf.drain(..len);
            return Ok(out);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Logs in as `user` with `password` (whose stored secret is `stored`), asking for `version`,
/// until ReadyForQuery.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    password: &str,
    stored: &str,
    version: ProtocolVersion,
) -> Result<RawLogin, String> {
    login_with(stream, user, password, stored, version, &[]).await
}

/// [`login`] with `extra` startup parameters after `user` and `database`.
pub async fn login_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    password: &str,
    stored: &str,
    version: ProtocolVersion,
    extra: &[(&[u8], &[u8])],
) -> Result<RawLogin, String> {
    login_bound(
        stream,
        user,
        password,
        stored,
        version,
        extra,
        &ClientChannelBinding::None,
    )
    .await
}

/// [`login_with`] binding the exchange to `binding` (the gateway certificate's hash, for
/// SCRAM-SHA-256-PLUS).
pub async fn login_bound<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    password: &str,
    stored: &str,
    version: ProtocolVersion,
    extra: &[(&[u8], &[u8])],
    binding: &ClientChannelBinding,
) -> Result<RawLogin, String> {
    let verifier = Verifier::parse(stored).map_err(|e| e.to_string())?;
    let client_key = ClientKey::derive(password.as_bytes(), verifier.salt(), verifier.iterations());
    let mut out = Vec::new();
    let mut params: Vec<(&[u8], &[u8])> =
        vec![(b"user", user.as_bytes()), (b"database", b"postgres")];
    params.extend_from_slice(extra);
    encode_startup(version, &params, &mut out).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut seen = RawLogin::default();
    let mut client_key = Some(client_key);
    let mut exchange = None;
    let mut awaiting = None;
    loop {
        let (tag, body) = read_message(stream, &mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        encode_frame(Direction::Backend, tag, &body, &mut raw).map_err(|e| e.to_string())?;
        let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, &raw) else {
            return Err("frame".into());
        };
        match BackendMessage::parse(frame).map_err(|e| e.to_string())? {
            BackendMessage::NegotiateProtocolVersion(v) => {
                seen.negotiated_minor = Some(v.newest_minor);
                seen.unrecognized = v
                    .unrecognized()
                    .map(|o| String::from_utf8_lossy(o).into_owned())
                    .collect();
            }
            BackendMessage::Authentication(Authentication::Sasl(mechanisms)) => {
                seen.mechanisms = mechanisms
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                let offered: Vec<&str> = seen.mechanisms.iter().map(String::as_str).collect();
                let key = client_key.take().ok_or("second SASL request")?;
                let (first, next) =
                    ClientExchange::start(key, &verifier, binding, &offered, &mut OsNonce)
                        .map_err(|e| e.to_string())?;
                out.clear();
                encode_sasl_initial_response(
                    first.mechanism.name().as_bytes(),
                    Some(first.message.as_bytes()),
                    &mut out,
                )
                .map_err(|e| e.to_string())?;
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
                exchange = Some(next);
            }
            BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                let next = exchange.take().ok_or("continue out of place")?;
                let (client_final, next) = next.server_first(data).map_err(|e| e.to_string())?;
                out.clear();
                encode_sasl_response(client_final.as_bytes(), &mut out)
                    .map_err(|e| e.to_string())?;
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
                awaiting = Some(next);
            }
            BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
                let next = awaiting.take().ok_or("final out of place")?;
                next.server_final(data).map_err(|e| e.to_string())?;
            }
            BackendMessage::BackendKeyData(data) => {
                seen.process_id = data.process_id;
                seen.key_len = data.secret_key.len();
            }
            BackendMessage::ErrorResponse(fields) => {
                return Err(String::from_utf8_lossy(fields.message().unwrap_or_default()).into());
            }
            BackendMessage::ReadyForQuery(_) => return Ok(seen),
            _ => {}
        }
    }
}

/// Runs a simple query returning one value; the value as text.
pub async fn query_one<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    sql: &str,
) -> Result<String, String> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    let mut out = Vec::new();
    encode_frame(Direction::Frontend, b'Q', &body, &mut out).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut value = None;
    loop {
        let (tag, body) = read_message(stream, &mut buf)
            .await
            .map_err(|e| e.to_string())?;
        match tag {
            // DataRow: column count (2), then length (4) and bytes.
            b'D' if body.len() >= 6 => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                let len = usize::try_from(len).map_err(|_| "NULL value")?;
                let bytes = body.get(6..6 + len).ok_or("short DataRow")?;
                value = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            b'E' => return Err("query failed".into()),
            b'Z' => return value.ok_or_else(|| "no row".to_owned()),
            _ => {}
        }
    }
}

/// Starts a login as `user` and returns the server-first message (`r=…,s=<salt>,i=<count>`)
/// it gets: what an unauthenticated client sees of a role.
pub async fn server_first<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
) -> Result<String, String> {
    let mut out = Vec::new();
    let params: Vec<(&[u8], &[u8])> = vec![(b"user", user.as_bytes()), (b"database", b"postgres")];
    encode_startup(ProtocolVersion::V3_0, &params, &mut out).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    loop {
        let (tag, body) = read_message(stream, &mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        encode_frame(Direction::Backend, tag, &body, &mut raw).map_err(|e| e.to_string())?;
        let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, &raw) else {
            return Err("frame".into());
        };
        match BackendMessage::parse(frame).map_err(|e| e.to_string())? {
            BackendMessage::Authentication(Authentication::Sasl(_)) => {
                out.clear();
                encode_sasl_initial_response(
                    b"SCRAM-SHA-256",
                    Some(b"n,,n=,r=rawclientnonce0123456789"),
                    &mut out,
                )
                .map_err(|e| e.to_string())?;
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                return Ok(String::from_utf8_lossy(data).into_owned());
            }
            BackendMessage::ErrorResponse(fields) => {
                return Err(String::from_utf8_lossy(fields.message().unwrap_or_default()).into());
            }
            _ => {}
        }
    }
}

/// Starts a login as `user`, answers the SASL request with the password message body
/// `sasl_body` (whatever its bytes), and returns the error (SQLSTATE, message) that ends it.
pub async fn sasl_refusal<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    sasl_body: &[u8],
) -> Result<(String, String), String> {
    let mut out = Vec::new();
    let params: Vec<(&[u8], &[u8])> = vec![(b"user", user.as_bytes()), (b"database", b"postgres")];
    encode_startup(ProtocolVersion::V3_0, &params, &mut out).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    loop {
        let (tag, body) = read_message(stream, &mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        encode_frame(Direction::Backend, tag, &body, &mut raw).map_err(|e| e.to_string())?;
        let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, &raw) else {
            return Err("frame".into());
        };
        match BackendMessage::parse(frame).map_err(|e| e.to_string())? {
            BackendMessage::Authentication(Authentication::Sasl(_)) => {
                out.clear();
                encode_frame(Direction::Frontend, b'p', sasl_body, &mut out)
                    .map_err(|e| e.to_string())?;
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            BackendMessage::ErrorResponse(fields) => {
                let text =
                    |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
                return Ok((text(fields.code()), text(fields.message())));
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
}
