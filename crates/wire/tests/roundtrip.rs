//! Every encoder against its parser: what is written is read back the same, and the frame
//! found is exactly the bytes written.

use curfew_wire::{
    Authentication, BackendMessage, Direction, Frame, FrontendMessage, Initial, InitialPacket,
    ProtocolVersion, Split, TransactionStatus, field,
};

/// The single frame `buf` holds, checked to span all of it.
fn only_frame(direction: Direction, buf: &[u8]) -> Frame<'_> {
    match curfew_wire::split_frame(direction, buf) {
        Ok(Split::Frame(frame)) => {
            assert_eq!(frame.len(), buf.len(), "the frame spans the whole encoding");
            assert_eq!(frame.raw(), buf);
            frame
        }
        other => panic!("expected one whole frame, got {other:?}"),
    }
}

fn backend(buf: &[u8]) -> BackendMessage<'_> {
    BackendMessage::parse(only_frame(Direction::Backend, buf)).expect("parses")
}

fn initial(buf: &[u8]) -> InitialPacket<'_> {
    match curfew_wire::parse_initial(buf) {
        Ok(Initial::Packet { packet, len }) => {
            assert_eq!(len, buf.len());
            packet
        }
        other => panic!("expected one whole packet, got {other:?}"),
    }
}

#[test]
fn startup_keeps_parameters_in_order_and_unmodified() {
    let params: [(&[u8], &[u8]); 4] = [
        (b"user", b"kim"),
        (b"database", b"ledger"),
        (b"application_name", b"caf\xc3\xa9 \xff raw"),
        (b"options", b"-c search_path=x"),
    ];
    let mut buf = Vec::new();
    curfew_wire::encode_startup(ProtocolVersion::V3_2, &params, &mut buf).expect("encodes");
    let InitialPacket::Startup(startup) = initial(&buf) else {
        panic!("a startup message");
    };
    assert_eq!(startup.version(), ProtocolVersion::V3_2);
    assert_eq!(startup.params().collect::<Vec<_>>(), params.to_vec());
    assert_eq!(startup.user(), b"kim");
    assert_eq!(startup.database(), Some(&b"ledger"[..]));
    assert_eq!(startup.param(b"absent"), None);
}

#[test]
fn startup_accepts_a_newer_minor_version_for_negotiation() {
    let version = ProtocolVersion { major: 3, minor: 9 };
    let mut buf = Vec::new();
    curfew_wire::encode_startup(version, &[(b"user", b"kim"), (b"_pq_.x", b"1")], &mut buf)
        .expect("encodes");
    let InitialPacket::Startup(startup) = initial(&buf) else {
        panic!("a startup message");
    };
    assert_eq!(startup.version(), version);
    assert_eq!(startup.param(b"_pq_.x"), Some(&b"1"[..]));
}

#[test]
fn ssl_and_gssenc_requests_round_trip() {
    let mut buf = Vec::new();
    curfew_wire::encode_ssl_request(&mut buf);
    assert_eq!(initial(&buf), InitialPacket::SslRequest);
    buf.clear();
    curfew_wire::encode_gssenc_request(&mut buf);
    assert_eq!(initial(&buf), InitialPacket::GssEncRequest);
}

#[test]
fn cancel_requests_round_trip_at_both_key_lengths() {
    for key in [vec![7u8; 4], vec![9u8; 32], vec![1u8; 256]] {
        let mut buf = Vec::new();
        curfew_wire::encode_cancel_request(-42, &key, &mut buf).expect("encodes");
        let InitialPacket::Cancel(cancel) = initial(&buf) else {
            panic!("a cancel request");
        };
        assert_eq!(cancel.process_id, -42);
        assert_eq!(cancel.secret_key, &key[..]);
    }
}

#[test]
fn direct_tls_is_recognised_from_its_first_byte() {
    assert_eq!(curfew_wire::parse_initial(&[0x16]), Ok(Initial::DirectTls));
    assert_eq!(
        curfew_wire::parse_initial(&[0x16, 0x03, 0x01, 0x02, 0x00]),
        Ok(Initial::DirectTls)
    );
    assert_eq!(
        curfew_wire::parse_initial(&[]),
        Ok(Initial::Incomplete { packet_len: None })
    );
}

#[test]
fn authentication_messages_round_trip() {
    let mut buf = Vec::new();
    curfew_wire::encode_authentication_ok(&mut buf);
    assert_eq!(
        backend(&buf),
        BackendMessage::Authentication(Authentication::Ok)
    );

    buf.clear();
    let mechanisms: [&[u8]; 2] = [b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256"];
    curfew_wire::encode_authentication_sasl(&mechanisms, &mut buf).expect("encodes");
    let BackendMessage::Authentication(Authentication::Sasl(offered)) = backend(&buf) else {
        panic!("AuthenticationSASL");
    };
    assert_eq!(offered.iter().collect::<Vec<_>>(), mechanisms.to_vec());
    assert!(offered.contains(b"SCRAM-SHA-256"));
    assert!(!offered.contains(b"SCRAM"));

    buf.clear();
    curfew_wire::encode_authentication_sasl_continue(b"r=abc,s=c2FsdA==,i=4096", &mut buf)
        .expect("encodes");
    assert_eq!(
        backend(&buf),
        BackendMessage::Authentication(Authentication::SaslContinue(b"r=abc,s=c2FsdA==,i=4096"))
    );

    buf.clear();
    curfew_wire::encode_authentication_sasl_final(b"v=c2lnbmF0dXJl", &mut buf).expect("encodes");
    assert_eq!(
        backend(&buf),
        BackendMessage::Authentication(Authentication::SaslFinal(b"v=c2lnbmF0dXJl"))
    );
}

#[test]
fn password_requests_and_other_methods_parse() {
    let mut buf = Vec::new();
    curfew_wire::encode_frame(Direction::Backend, b'R', &3u32.to_be_bytes(), &mut buf)
        .expect("encodes");
    assert_eq!(
        backend(&buf),
        BackendMessage::Authentication(Authentication::CleartextPassword)
    );

    buf.clear();
    let mut body = 5u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[1, 2, 3, 4]);
    curfew_wire::encode_frame(Direction::Backend, b'R', &body, &mut buf).expect("encodes");
    assert_eq!(
        backend(&buf),
        BackendMessage::Authentication(Authentication::Md5Password { salt: [1, 2, 3, 4] })
    );

    // GSSAPI (7) with no data, and GSSContinue (8) with data: both unsupported, by code.
    for (code, data) in [(7u32, &b""[..]), (8, &b"token"[..])] {
        buf.clear();
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(data);
        curfew_wire::encode_frame(Direction::Backend, b'R', &body, &mut buf).expect("encodes");
        assert_eq!(
            backend(&buf),
            BackendMessage::Authentication(Authentication::Unsupported { code })
        );
    }
}

#[test]
fn backend_key_data_round_trips_for_both_protocol_versions() {
    for key in [vec![0xAB; 4], vec![0xCD; 256]] {
        let mut buf = Vec::new();
        curfew_wire::encode_backend_key_data(4242, &key, &mut buf).expect("encodes");
        let BackendMessage::BackendKeyData(data) = backend(&buf) else {
            panic!("BackendKeyData");
        };
        assert_eq!(data.process_id, 4242);
        assert_eq!(data.secret_key, &key[..]);
    }
}

#[test]
fn ready_for_query_round_trips_each_status() {
    for status in [
        TransactionStatus::Idle,
        TransactionStatus::InBlock,
        TransactionStatus::Failed,
    ] {
        let mut buf = Vec::new();
        curfew_wire::encode_ready_for_query(status, &mut buf);
        assert_eq!(backend(&buf), BackendMessage::ReadyForQuery(status));
    }
}

#[test]
fn error_and_notice_fields_round_trip_in_order() {
    let fields: [(u8, &[u8]); 5] = [
        (field::SEVERITY, b"FATAL"),
        (field::SEVERITY_NONLOCALIZED, b"FATAL"),
        (field::CODE, b"57P01"),
        (
            field::MESSAGE,
            b"terminating connection: idle for 15 minutes",
        ),
        (field::HINT, b"reconnect"),
    ];
    let mut buf = Vec::new();
    curfew_wire::encode_error_response(&fields, &mut buf).expect("encodes");
    let BackendMessage::ErrorResponse(error) = backend(&buf) else {
        panic!("ErrorResponse");
    };
    assert_eq!(error.iter().collect::<Vec<_>>(), fields.to_vec());
    assert_eq!(error.severity(), Some(&b"FATAL"[..]));
    assert_eq!(error.code(), Some(&b"57P01"[..]));
    assert_eq!(
        error.message(),
        Some(&b"terminating connection: idle for 15 minutes"[..])
    );

    buf.clear();
    // A localized severity only (a pre-9.6 server): severity() falls back to it.
    let notice: [(u8, &[u8]); 2] = [(field::SEVERITY, b"WARNUNG"), (field::MESSAGE, b"bald")];
    curfew_wire::encode_notice_response(&notice, &mut buf).expect("encodes");
    let BackendMessage::NoticeResponse(notice_fields) = backend(&buf) else {
        panic!("NoticeResponse");
    };
    assert_eq!(notice_fields.iter().collect::<Vec<_>>(), notice.to_vec());
    assert_eq!(notice_fields.severity(), Some(&b"WARNUNG"[..]));
    assert_eq!(notice_fields.code(), None);
}

#[test]
fn parameter_status_round_trips() {
    let mut buf = Vec::new();
    curfew_wire::encode_parameter_status(b"application_name", b"psql \xff", &mut buf)
        .expect("encodes");
    let BackendMessage::ParameterStatus(status) = backend(&buf) else {
        panic!("ParameterStatus");
    };
    assert_eq!(status.name, b"application_name");
    assert_eq!(status.value, b"psql \xff");
}

#[test]
fn negotiate_protocol_version_round_trips() {
    for options in [vec![], vec![&b"_pq_.a"[..], &b"_pq_.b"[..]]] {
        let mut buf = Vec::new();
        curfew_wire::encode_negotiate_protocol_version(2, &options, &mut buf).expect("encodes");
        let BackendMessage::NegotiateProtocolVersion(negotiate) = backend(&buf) else {
            panic!("NegotiateProtocolVersion");
        };
        assert_eq!(negotiate.newest_minor, 2);
        assert_eq!(negotiate.unrecognized().collect::<Vec<_>>(), options);
    }
}

#[test]
fn other_backend_messages_stay_opaque() {
    let mut buf = Vec::new();
    curfew_wire::encode_frame(
        Direction::Backend,
        b'D',
        b"\x00\x01\x00\x00\x00\x01x",
        &mut buf,
    )
    .expect("encodes");
    let frame = only_frame(Direction::Backend, &buf);
    assert_eq!(
        BackendMessage::parse(frame),
        Ok(BackendMessage::Other(frame))
    );
    assert_eq!(frame.raw(), &buf[..]);
}

#[test]
fn sasl_initial_response_round_trips_with_and_without_data() {
    for data in [Some(&b"n,,n=,r=nonce"[..]), Some(&b""[..]), None] {
        let mut buf = Vec::new();
        curfew_wire::encode_sasl_initial_response(b"SCRAM-SHA-256", data, &mut buf)
            .expect("encodes");
        let FrontendMessage::AuthResponse(response) =
            FrontendMessage::parse(only_frame(Direction::Frontend, &buf)).expect("parses")
        else {
            panic!("a 'p' message");
        };
        let initial = response.sasl_initial().expect("a SASLInitialResponse");
        assert_eq!(initial.mechanism, b"SCRAM-SHA-256");
        assert_eq!(initial.data, data);
    }
}

#[test]
fn sasl_response_round_trips() {
    let mut buf = Vec::new();
    curfew_wire::encode_sasl_response(b"c=biws,r=nonce,p=proof", &mut buf).expect("encodes");
    let frame = only_frame(Direction::Frontend, &buf);
    let response = curfew_wire::AuthResponse::from_frame(frame).expect("a 'p' message");
    assert_eq!(response.sasl_response().data, b"c=biws,r=nonce,p=proof");
}

#[test]
fn password_message_parses_and_hides_the_password() {
    let mut buf = Vec::new();
    curfew_wire::encode_frame(Direction::Frontend, b'p', b"hunter2\0", &mut buf).expect("encodes");
    let frame = only_frame(Direction::Frontend, &buf);
    let response = curfew_wire::AuthResponse::from_frame(frame).expect("a 'p' message");
    let password = response.password().expect("a PasswordMessage");
    assert_eq!(password.password, b"hunter2");
    for shown in [
        format!("{password:?}"),
        format!("{response:?}"),
        format!("{frame:?}"),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn terminate_round_trips_and_others_stay_opaque() {
    let mut buf = Vec::new();
    curfew_wire::encode_terminate(&mut buf);
    assert_eq!(
        FrontendMessage::parse(only_frame(Direction::Frontend, &buf)),
        Ok(FrontendMessage::Terminate)
    );
    // FunctionCall (large objects): forwarded as is.
    buf.clear();
    curfew_wire::encode_frame(
        Direction::Frontend,
        b'F',
        b"\x00\x00\x0b\xb8\x00\x00",
        &mut buf,
    )
    .expect("encodes");
    let frame = only_frame(Direction::Frontend, &buf);
    assert_eq!(
        FrontendMessage::parse(frame),
        Ok(FrontendMessage::Other(frame))
    );
}

#[test]
fn debug_output_hides_keys_and_sasl_data() {
    let mut buf = Vec::new();
    curfew_wire::encode_backend_key_data(1, b"SECRETKEY", &mut buf).expect("encodes");
    let shown = format!("{:?}", backend(&buf));
    assert!(
        !shown.contains("SECRETKEY") && !shown.contains("83, 69"),
        "{shown}"
    );

    buf.clear();
    curfew_wire::encode_cancel_request(1, b"SECRETKEY", &mut buf).expect("encodes");
    let shown = format!("{:?}", initial(&buf));
    assert!(
        !shown.contains("SECRETKEY") && !shown.contains("83, 69"),
        "{shown}"
    );

    buf.clear();
    curfew_wire::encode_authentication_sasl_final(b"v=PROOF", &mut buf).expect("encodes");
    let shown = format!("{:?}", backend(&buf));
    assert!(!shown.contains("PROOF"), "{shown}");

    buf.clear();
    curfew_wire::encode_sasl_initial_response(b"SCRAM-SHA-256", Some(b"n,,n=,r=NONCE"), &mut buf)
        .expect("encodes");
    let frame = only_frame(Direction::Frontend, &buf);
    let initial = curfew_wire::AuthResponse::from_frame(frame)
        .and_then(|r| r.sasl_initial())
        .expect("parses");
    let shown = format!("{initial:?}");
    assert!(!shown.contains("NONCE"), "{shown}");
}
