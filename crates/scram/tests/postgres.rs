//! The client side against a real PostgreSQL: a role's verifier read from `pg_authid`, the
//! ClientKey derived from its password, and a SCRAM login over a raw TCP connection.
#![allow(clippy::unwrap_used)]

use curfew_sandbox::{Auth, Cluster, Options};
use curfew_scram::{
    ClientChannelBinding, ClientError, ClientExchange, ClientKey, OsNonce, Verifier,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message: its type byte and body.
async fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let kind = stream.read_u8().await.unwrap();
    let len = stream.read_i32().await.unwrap();
    assert!((4..=1 << 20).contains(&len), "frame length {len}");
    let mut body = vec![0; usize::try_from(len).unwrap() - 4];
    stream.read_exact(&mut body).await.unwrap();
    (kind, body)
}

/// A frontend message of type `kind` with `body`.
async fn send(stream: &mut TcpStream, kind: Option<u8>, body: &[u8]) {
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

/// The SQLSTATE (`C` field) of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|code| String::from_utf8_lossy(code).into_owned())
        .unwrap_or_default()
}

/// Logs in as `role` with `client_key`; `Ok` on AuthenticationOk, the SQLSTATE of the error
/// otherwise.
async fn login(
    cluster: &Cluster,
    role: &str,
    client_key: ClientKey,
    verifier: &Verifier,
) -> Result<(), String> {
    let mut stream = TcpStream::connect((cluster.host(), cluster.port()))
        .await
        .unwrap();
    let mut startup = 196_608_i32.to_be_bytes().to_vec();
    for (name, value) in [("user", role), ("database", "postgres")] {
        startup.extend(name.as_bytes());
        startup.push(0);
        startup.extend(value.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    send(&mut stream, None, &startup).await;

    let (code, data) = authentication(read_message(&mut stream).await);
    assert_eq!(code, 10, "AuthenticationSASL");
    let offered: Vec<&str> = data
        .split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| std::str::from_utf8(m).unwrap())
        .collect();
    let (first, client) = ClientExchange::start(
        client_key,
        verifier,
        &ClientChannelBinding::None,
        &offered,
        &mut OsNonce,
    )
    .unwrap();
    let mut initial = first.mechanism.name().as_bytes().to_vec();
    initial.push(0);
    initial.extend(i32::try_from(first.message.len()).unwrap().to_be_bytes());
    initial.extend(first.message.as_bytes());
    send(&mut stream, Some(b'p'), &initial).await;

    let (code, server_first) = authentication(read_message(&mut stream).await);
    assert_eq!(code, 11, "AuthenticationSASLContinue");
    let (client_final, client) = client.server_first(&server_first).map_err(|e| match e {
        ClientError::PasswordChanged => "password changed".to_owned(),
        other => panic!("{other}"),
    })?;
    send(&mut stream, Some(b'p'), client_final.as_bytes()).await;

    let (kind, body) = read_message(&mut stream).await;
    if kind == b'E' {
        return Err(sqlstate(&body));
    }
    let (code, server_final) = authentication((kind, body));
    assert_eq!(code, 12, "AuthenticationSASLFinal");
    client.server_final(&server_final).unwrap();
    let (code, _) = authentication(read_message(&mut stream).await);
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
        Err("28P01".into())
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
