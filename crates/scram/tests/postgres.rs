//! The client side against a real PostgreSQL: a role's verifier read from `pg_authid`, the
//! ClientKey derived from its password, and a SCRAM login over a raw TCP connection (and over
//! TLS with SCRAM-SHA-256-PLUS, PostgreSQL being the oracle for the certificate hash).
#![allow(clippy::unwrap_used)]

use curfew_sandbox::{Auth, Cluster, Options, TestPki};
use curfew_scram::{
    CertificateHash, ClientChannelBinding, ClientError, ClientExchange, ClientKey, OsNonce,
    Verifier, tls_server_end_point,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection to the server, plaintext or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// One backend message: its type byte and body.
async fn read_message(stream: &mut impl Stream) -> (u8, Vec<u8>) {
    let kind = stream.read_u8().await.unwrap();
    let len = stream.read_i32().await.unwrap();
    assert!((4..=1 << 20).contains(&len), "frame length {len}");
    let mut body = vec![0; usize::try_from(len).unwrap() - 4];
    stream.read_exact(&mut body).await.unwrap();
    (kind, body)
}

/// A frontend message of type `kind` with `body`.
async fn send(stream: &mut impl Stream, kind: Option<u8>, body: &[u8]) {
    let mut frame = Vec::new();
    frame.extend(kind);
    frame.extend(i32::try_from(body.len() + 4).unwrap().to_be_bytes());
    frame.extend(body);
    stream.write_all(&frame).await.unwrap();
}

/// An authentication request's code and its data; panics on anything else.
fn authentication(message: (u8, Vec<u8>)) -> (i32, Vec<u8>) {
    let (kind, body) = message;
    assert_eq!(
        kind,
        b'R',
        "expected an authentication request, got {}",
        error_text(&body)
    );
    let code = i32::from_be_bytes(body[..4].try_into().unwrap());
    (code, body[4..].to_vec())
}

/// The fields of an ErrorResponse as text (for assertion messages).
fn error_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', " ")
}

/// The SQLSTATE (`C` field) and message (`M`) of an ErrorResponse body, as `code: message`.
fn sqlstate(body: &[u8]) -> String {
    let field = |tag: u8| {
        body.split(|&b| b == 0)
            .find_map(|field| field.strip_prefix(&[tag]))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default()
    };
    format!("{}: {}", field(b'C'), field(b'M'))
}

/// Logs in as `role` with `client_key`; `Ok` on AuthenticationOk, the error's SQLSTATE and
/// message otherwise.
async fn login(
    cluster: &Cluster,
    role: &str,
    client_key: ClientKey,
    verifier: &Verifier,
) -> Result<(), String> {
    let mut stream = TcpStream::connect((cluster.host(), cluster.port()))
        .await
        .unwrap();
    login_over(
        &mut stream,
        role,
        client_key,
        verifier,
        &ClientChannelBinding::None,
    )
    .await
}

/// [`login`] over an established `stream`, with channel binding `binding`.
async fn login_over(
    stream: &mut impl Stream,
    role: &str,
    client_key: ClientKey,
    verifier: &Verifier,
    binding: &ClientChannelBinding,
) -> Result<(), String> {
    let mut startup = 196_608_i32.to_be_bytes().to_vec();
    for (name, value) in [("user", role), ("database", "postgres")] {
        startup.extend(name.as_bytes());
        startup.push(0);
        startup.extend(value.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    send(stream, None, &startup).await;

    let (code, data) = authentication(read_message(stream).await);
    assert_eq!(code, 10, "AuthenticationSASL");
    let offered: Vec<&str> = data
        .split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| std::str::from_utf8(m).unwrap())
        .collect();
    let (first, client) =
        ClientExchange::start(client_key, verifier, binding, &offered, &mut OsNonce).unwrap();
    let mut initial = first.mechanism.name().as_bytes().to_vec();
    initial.push(0);
    initial.extend(i32::try_from(first.message.len()).unwrap().to_be_bytes());
    initial.extend(first.message.as_bytes());
    send(stream, Some(b'p'), &initial).await;

    let (code, server_first) = authentication(read_message(stream).await);
    assert_eq!(code, 11, "AuthenticationSASLContinue");
    let (client_final, client) = client.server_first(&server_first).map_err(|e| match e {
        ClientError::PasswordChanged => "password changed".to_owned(),
        other => panic!("{other}"),
    })?;
    send(stream, Some(b'p'), client_final.as_bytes()).await;

    let (kind, body) = read_message(stream).await;
    if kind == b'E' {
        return Err(sqlstate(&body));
    }
    let (code, server_final) = authentication((kind, body));
    assert_eq!(code, 12, "AuthenticationSASLFinal");
    client.server_final(&server_final).unwrap();
    let (code, _) = authentication(read_message(stream).await);
    assert_eq!(code, 0, "AuthenticationOk");
    Ok(())
}

#[tokio::test]
async fn postgres_accepts_the_client_key_of_the_password_and_refuses_another() {
    let cluster = curfew_testkit::started(Options {
        auth: Auth::Scram,
        ..Options::default()
    });
    cluster
        .psql("CREATE ROLE alice LOGIN PASSWORD 'correct horse'")
        .unwrap();
    let stored = cluster
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'")
        .unwrap();
    let verifier = Verifier::parse(&stored).unwrap();
    assert_eq!(verifier.to_stored_form(), stored);
    // curfew's PBKDF2 and key derivation agree with PostgreSQL's.
    let computed =
        Verifier::from_password(b"correct horse", verifier.salt(), verifier.iterations()).unwrap();
    assert_eq!(computed.to_stored_form(), stored);

    let right = ClientKey::derive(b"correct horse", verifier.salt(), verifier.iterations());
    login(&cluster, "alice", right, &verifier).await.unwrap();

    let wrong = ClientKey::derive(b"battery staple", verifier.salt(), verifier.iterations());
    assert_eq!(
        login(&cluster, "alice", wrong, &verifier).await,
        Err("28P01: password authentication failed for user \"alice\"".into())
    );
}

#[tokio::test]
async fn a_password_changed_after_the_verifier_was_read_is_named() {
    let cluster = curfew_testkit::started(Options {
        auth: Auth::Scram,
        ..Options::default()
    });
    cluster
        .psql("CREATE ROLE bob LOGIN PASSWORD 'first'")
        .unwrap();
    let stored = cluster
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'bob'")
        .unwrap();
    let verifier = Verifier::parse(&stored).unwrap();
    cluster.psql("ALTER ROLE bob PASSWORD 'second'").unwrap();
    let key = ClientKey::derive(b"first", verifier.salt(), verifier.iterations());
    assert_eq!(
        login(&cluster, "bob", key, &verifier).await,
        Err("password changed".into())
    );
}

/// A TLS connection to `cluster` after an SSLRequest, trusting `ca_pem`; also the server's
/// certificate (DER).
async fn tls_connect(
    cluster: &Cluster,
    ca_pem: &str,
) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut tcp = TcpStream::connect((cluster.host(), cluster.port()))
        .await
        .unwrap();
    send(&mut tcp, None, &80_877_103_i32.to_be_bytes()).await;
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let certificate = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, certificate)
}

#[tokio::test]
async fn scram_sha_256_plus_binds_to_postgresql_certificate_hash() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let cluster = curfew_testkit::started(Options {
        auth: Auth::Scram,
        tls: Some(pki.server.clone()),
        ..Options::default()
    });
    cluster
        .psql("CREATE ROLE carol LOGIN PASSWORD 'bound'")
        .unwrap();
    let stored = cluster
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'carol'")
        .unwrap();
    let verifier = Verifier::parse(&stored).unwrap();
    let key = || ClientKey::derive(b"bound", verifier.salt(), verifier.iterations());

    // PostgreSQL computes the same tls-server-end-point hash: the PLUS exchange succeeds.
    let (mut tls, certificate) = tls_connect(&cluster, &pki.ca_pem).await;
    let hash = tls_server_end_point(&certificate).unwrap();
    let binding = ClientChannelBinding::TlsServerEndPoint(hash);
    login_over(&mut tls, "carol", key(), &verifier, &binding)
        .await
        .unwrap();

    // Bound to another certificate's hash, as a man in the middle would be: refused.
    let (mut tls, _) = tls_connect(&cluster, &pki.ca_pem).await;
    let other = ClientChannelBinding::TlsServerEndPoint(CertificateHash::from_bytes(vec![0; 32]));
    let refused = login_over(&mut tls, "carol", key(), &verifier, &other).await;
    assert_eq!(
        refused,
        Err("28000: SCRAM channel binding check failed".into())
    );
}
