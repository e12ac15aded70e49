//! rust-postgres's `postgres-protocol` as an independent oracle: its client encodings parse
//! here as it meant them, and this crate's server encodings parse there as meant here.

use bytes::BytesMut;
use curfew_wire::{
    BackendMessage, Direction, Frame, FrontendMessage, Initial, InitialPacket, Split,
    TransactionStatus, field,
};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::{backend::Message, frontend};

fn only_frame(direction: Direction, buf: &[u8]) -> Frame<'_> {
    match curfew_wire::split_frame(direction, buf) {
        Ok(Split::Frame(frame)) if frame.len() == buf.len() => frame,
        other => panic!("expected one whole frame, got {other:?}"),
    }
}

/// Parses `encoded` with postgres-protocol, checking it consumes all of it.
fn oracle(encoded: &[u8]) -> Message {
    let mut buf = BytesMut::from(encoded);
    let message = Message::parse(&mut buf)
        .expect("postgres-protocol parses it")
        .expect("one whole message");
    assert!(buf.is_empty(), "postgres-protocol consumed all of it");
    message
}

#[test]
fn its_startup_message_parses_here_in_order() {
    let mut buf = BytesMut::new();
    let params = [
        ("user", "kim"),
        ("database", "ledger"),
        ("application_name", "psql"),
    ];
    frontend::startup_message(params, &mut buf).expect("encodes");
    let Ok(Initial::Packet {
        packet: InitialPacket::Startup(startup),
        len,
    }) = curfew_wire::parse_initial(&buf)
    else {
        panic!("a startup message");
    };
    assert_eq!(len, buf.len());
    assert_eq!(startup.version(), curfew_wire::ProtocolVersion::V3_0);
    let found: Vec<(&[u8], &[u8])> = startup.params().collect();
    let expected: Vec<(&[u8], &[u8])> = params
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn its_ssl_and_cancel_requests_parse_here() {
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    assert!(matches!(
        curfew_wire::parse_initial(&buf),
        Ok(Initial::Packet {
            packet: InitialPacket::SslRequest,
            len: 8
        })
    ));
    let mut buf = BytesMut::new();
    frontend::cancel_request(77, 0x0102_0304, &mut buf);
    let Ok(Initial::Packet {
        packet: InitialPacket::Cancel(cancel),
        ..
    }) = curfew_wire::parse_initial(&buf)
    else {
        panic!("a cancel request");
    };
    assert_eq!(cancel.process_id, 77);
    assert_eq!(cancel.secret_key, &[1, 2, 3, 4]);
    // And ours is byte for byte the same.
    let mut ours = Vec::new();
    curfew_wire::encode_cancel_request(77, &[1, 2, 3, 4], &mut ours).expect("encodes");
    assert_eq!(ours, &buf[..]);
}

#[test]
fn its_sasl_and_password_messages_parse_here() {
    let mut buf = BytesMut::new();
    frontend::sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc", &mut buf).expect("encodes");
    let mut ours = Vec::new();
    curfew_wire::encode_sasl_initial_response(b"SCRAM-SHA-256", Some(b"n,,n=,r=abc"), &mut ours)
        .expect("encodes");
    assert_eq!(ours, &buf[..]);
    let FrontendMessage::AuthResponse(response) =
        FrontendMessage::parse(only_frame(Direction::Frontend, &buf)).expect("parses")
    else {
        panic!("a 'p' message");
    };
    let initial = response.sasl_initial().expect("a SASLInitialResponse");
    assert_eq!(initial.mechanism, b"SCRAM-SHA-256");
    assert_eq!(initial.data, Some(&b"n,,n=,r=abc"[..]));

    let mut buf = BytesMut::new();
    frontend::sasl_response(b"c=biws,r=abc,p=xyz", &mut buf).expect("encodes");
    let mut ours = Vec::new();
    curfew_wire::encode_sasl_response(b"c=biws,r=abc,p=xyz", &mut ours).expect("encodes");
    assert_eq!(ours, &buf[..]);

    let mut buf = BytesMut::new();
    frontend::password_message(b"md5abc", &mut buf).expect("encodes");
    let response = curfew_wire::AuthResponse::from_frame(only_frame(Direction::Frontend, &buf))
        .expect("a 'p' message");
    assert_eq!(response.password().expect("a password").password, b"md5abc");

    let mut buf = BytesMut::new();
    frontend::terminate(&mut buf);
    let mut ours = Vec::new();
    curfew_wire::encode_terminate(&mut ours);
    assert_eq!(ours, &buf[..]);
}

#[test]
fn its_query_and_sync_stay_opaque_here() {
    let mut buf = BytesMut::new();
    frontend::query("select 1", &mut buf).expect("encodes");
    frontend::sync(&mut buf);
    let split: Vec<Frame<'_>> = curfew_wire::frames(Direction::Frontend, &buf)
        .collect::<Result<_, _>>()
        .expect("valid frames");
    assert_eq!(split.len(), 2);
    assert_eq!(split[0].tag(), b'Q');
    assert_eq!(split[0].body(), b"select 1\0");
    assert_eq!(split[1].tag(), b'S');
    for frame in split {
        assert_eq!(
            FrontendMessage::parse(frame),
            Ok(FrontendMessage::Other(frame))
        );
    }
}

#[test]
fn our_authentication_messages_parse_there() {
    let mut buf = Vec::new();
    curfew_wire::encode_authentication_ok(&mut buf);
    assert!(matches!(oracle(&buf), Message::AuthenticationOk));

    buf.clear();
    curfew_wire::encode_authentication_sasl(&[b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256"], &mut buf)
        .expect("encodes");
    let Message::AuthenticationSasl(body) = oracle(&buf) else {
        panic!("AuthenticationSASL");
    };
    let mechanisms: Vec<String> = body
        .mechanisms()
        .map(|m| Ok(m.to_owned()))
        .collect()
        .expect("mechanisms");
    assert_eq!(mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);

    buf.clear();
    curfew_wire::encode_authentication_sasl_continue(b"r=abc,s=c2FsdA==,i=4096", &mut buf)
        .expect("encodes");
    let Message::AuthenticationSaslContinue(body) = oracle(&buf) else {
        panic!("AuthenticationSASLContinue");
    };
    assert_eq!(body.data(), b"r=abc,s=c2FsdA==,i=4096");

    buf.clear();
    curfew_wire::encode_authentication_sasl_final(b"v=sig", &mut buf).expect("encodes");
    let Message::AuthenticationSaslFinal(body) = oracle(&buf) else {
        panic!("AuthenticationSASLFinal");
    };
    assert_eq!(body.data(), b"v=sig");
}

#[test]
fn our_session_messages_parse_there() {
    let mut buf = Vec::new();
    curfew_wire::encode_backend_key_data(4242, &[0, 0, 1, 2], &mut buf).expect("encodes");
    let Message::BackendKeyData(body) = oracle(&buf) else {
        panic!("BackendKeyData");
    };
    assert_eq!((body.process_id(), body.secret_key()), (4242, 0x0102));

    for (status, byte) in [
        (TransactionStatus::Idle, b'I'),
        (TransactionStatus::InBlock, b'T'),
        (TransactionStatus::Failed, b'E'),
    ] {
        buf.clear();
        curfew_wire::encode_ready_for_query(status, &mut buf);
        let Message::ReadyForQuery(body) = oracle(&buf) else {
            panic!("ReadyForQuery");
        };
        assert_eq!(body.status(), byte);
    }

    buf.clear();
    curfew_wire::encode_parameter_status(b"server_version", b"18.1", &mut buf).expect("encodes");
    let Message::ParameterStatus(body) = oracle(&buf) else {
        panic!("ParameterStatus");
    };
    assert_eq!(
        (body.name().expect("name"), body.value().expect("value")),
        ("server_version", "18.1")
    );
}

#[test]
fn our_errors_and_notices_parse_there_in_order() {
    let fields: [(u8, &[u8]); 4] = [
        (field::SEVERITY, b"FATAL"),
        (field::SEVERITY_NONLOCALIZED, b"FATAL"),
        (field::CODE, b"57P01"),
        (field::MESSAGE, b"idle for 15 minutes"),
    ];
    let mut buf = Vec::new();
    curfew_wire::encode_error_response(&fields, &mut buf).expect("encodes");
    let Message::ErrorResponse(body) = oracle(&buf) else {
        panic!("ErrorResponse");
    };
    let theirs: Vec<(u8, Vec<u8>)> = body
        .fields()
        .map(|f| Ok((f.type_(), f.value_bytes().to_vec())))
        .collect()
        .expect("fields");
    let expected: Vec<(u8, Vec<u8>)> = fields.iter().map(|(c, v)| (*c, v.to_vec())).collect();
    assert_eq!(theirs, expected);

    buf.clear();
    curfew_wire::encode_notice_response(&fields[..1], &mut buf).expect("encodes");
    assert!(matches!(oracle(&buf), Message::NoticeResponse(_)));
}

#[test]
fn messages_both_parse_agree_on_frame_boundaries() {
    // A server's burst as postgres-protocol would read it: the same frames, in order.
    let mut burst = Vec::new();
    curfew_wire::encode_authentication_ok(&mut burst);
    curfew_wire::encode_parameter_status(b"a", b"b", &mut burst).expect("encodes");
    curfew_wire::encode_backend_key_data(1, &[9; 4], &mut burst).expect("encodes");
    curfew_wire::encode_ready_for_query(TransactionStatus::Idle, &mut burst);
    let ours: Vec<usize> = curfew_wire::frames(Direction::Backend, &burst)
        .map(|f| f.map(|f| f.len()))
        .collect::<Result<_, _>>()
        .expect("valid frames");
    let mut theirs = Vec::new();
    let mut buf = BytesMut::from(&burst[..]);
    while !buf.is_empty() {
        let before = buf.len();
        Message::parse(&mut buf).expect("parses").expect("whole");
        theirs.push(before - buf.len());
    }
    assert_eq!(ours, theirs);
    for frame in curfew_wire::frames(Direction::Backend, &burst).flatten() {
        assert!(BackendMessage::parse(frame).is_ok());
    }
}
