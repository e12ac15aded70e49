//! Regression tests for each limit and each malformed layout: a clear `ProtocolError`,
//! never a panic, never an allocation of what a frame claims.

use curfew_wire::{
    Direction, Initial, ProtocolError, ProtocolVersion, Split, Tag, frame_limit, parse_initial,
    split_frame,
};

fn header(tag: u8, claimed: u32) -> Vec<u8> {
    let mut buf = vec![tag];
    buf.extend_from_slice(&claimed.to_be_bytes());
    buf
}

fn packet(body: &[u8]) -> Vec<u8> {
    let mut buf = u32::try_from(body.len() + 4)
        .expect("small")
        .to_be_bytes()
        .to_vec();
    buf.extend_from_slice(body);
    buf
}

fn startup_body(params: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    body.extend_from_slice(params);
    body
}

#[test]
fn a_frame_claiming_3_bytes_is_refused_in_both_directions() {
    for direction in [Direction::Frontend, Direction::Backend] {
        assert_eq!(
            split_frame(direction, &header(b'Q', 3)),
            Err(ProtocolError::LengthTooSmall {
                direction,
                tag: Tag(b'Q'),
                claimed: 3
            })
        );
    }
}

#[test]
fn a_frame_claiming_2_gib_is_refused_before_any_body_arrives() {
    for direction in [Direction::Frontend, Direction::Backend] {
        for tag in [b'Q', b'd', b'D', b'?'] {
            let error = split_frame(direction, &header(tag, 0x8000_0000)).expect_err("refused");
            assert!(
                matches!(
                    error,
                    ProtocolError::LengthTooLarge {
                        claimed: 0x8000_0000,
                        ..
                    }
                ),
                "{error:?}"
            );
        }
    }
}

#[test]
fn frontend_limits_follow_the_backend_per_type() {
    // Data-carrying types: up to 1 GiB - 2, and a claim at the limit waits for its bytes.
    for tag in [b'Q', b'F', b'P', b'B', b'd'] {
        assert_eq!(
            split_frame(Direction::Frontend, &header(tag, 0x3FFF_FFFE)),
            Ok(Split::Incomplete {
                frame_len: Some(0x3FFF_FFFF)
            })
        );
        assert!(split_frame(Direction::Frontend, &header(tag, 0x3FFF_FFFF)).is_err());
    }
    // Password and SASL: 65535.
    assert!(split_frame(Direction::Frontend, &header(b'p', 65_535)).is_ok());
    assert_eq!(
        split_frame(Direction::Frontend, &header(b'p', 65_536)),
        Err(ProtocolError::LengthTooLarge {
            direction: Direction::Frontend,
            tag: Tag(b'p'),
            claimed: 65_536,
            limit: 65_535
        })
    );
    // Everything else, unknown types included: 10000.
    for tag in [b'S', b'X', b'c', b'f', b'E', b'D', b'C', b'H', b'z', 0] {
        assert!(split_frame(Direction::Frontend, &header(tag, 10_000)).is_ok());
        assert!(split_frame(Direction::Frontend, &header(tag, 10_001)).is_err());
    }
}

#[test]
fn backend_limits_follow_libpq_per_type() {
    for tag in [b'T', b'D', b'd', b'V', b'E', b'N', b'A', b't'] {
        let limit = frame_limit(Direction::Backend, tag);
        assert!(limit >= 0x3FFF_FFFE, "{}", tag as char);
        assert!(split_frame(Direction::Backend, &header(tag, limit)).is_ok());
        assert!(split_frame(Direction::Backend, &header(tag, limit + 1)).is_err());
    }
    assert!(split_frame(Direction::Backend, &header(b'R', 2_000)).is_ok());
    assert!(split_frame(Direction::Backend, &header(b'R', 2_001)).is_err());
    for tag in [b'Z', b'K', b'C', b'v', b'G', b'?'] {
        assert!(split_frame(Direction::Backend, &header(tag, 30_000)).is_ok());
        assert!(split_frame(Direction::Backend, &header(tag, 30_001)).is_err());
    }
}

#[test]
fn a_long_parameter_status_from_the_server_is_accepted() {
    // A GUC_REPORT setting (a long search_path, application_name or a custom reported
    // setting) can exceed libpq's 30000 bytes; ending the session for it would be the
    // gateway's doing, and drivers other than libpq take it.
    let limit = frame_limit(Direction::Backend, b'S');
    assert_eq!(limit, 0x3FFF_FFFE + 4);
    assert!(split_frame(Direction::Backend, &header(b'S', 1_000_000)).is_ok());
    assert!(split_frame(Direction::Backend, &header(b'S', limit + 1)).is_err());
}

#[test]
fn a_partial_header_or_body_asks_for_more() {
    assert_eq!(
        split_frame(Direction::Frontend, &[b'Q', 0, 0]),
        Ok(Split::Incomplete { frame_len: None })
    );
    assert_eq!(
        split_frame(Direction::Frontend, &[b'Q', 0, 0, 0, 6, b'x']),
        Ok(Split::Incomplete { frame_len: Some(7) })
    );
}

#[test]
fn a_startup_packet_of_10001_body_bytes_is_refused() {
    // PostgreSQL limits the body after the length word to 10000 bytes.
    let mut params = b"user\0kim\0pad\0".to_vec();
    params.resize(10_000 - 4 - 2, b'x');
    params.extend_from_slice(b"\0\0");
    let at_limit = packet(&startup_body(&params));
    assert_eq!(at_limit.len(), 10_004);
    assert!(matches!(
        parse_initial(&at_limit),
        Ok(Initial::Packet { len: 10_004, .. })
    ));

    params.insert(14, b'x');
    let over = packet(&startup_body(&params));
    assert_eq!(
        parse_initial(&over),
        Err(ProtocolError::StartupLength { claimed: 10_005 })
    );
    // Refused from the length word alone, before the body arrives.
    assert_eq!(
        parse_initial(&over[..4]),
        Err(ProtocolError::StartupLength { claimed: 10_005 })
    );
    assert_eq!(
        parse_initial(&0x8000_0000u32.to_be_bytes()),
        Err(ProtocolError::StartupLength {
            claimed: 0x8000_0000
        })
    );
    assert_eq!(
        parse_initial(&7u32.to_be_bytes()),
        Err(ProtocolError::StartupLength { claimed: 7 })
    );
}

#[test]
fn cancel_keys_of_3_and_257_bytes_are_refused() {
    for length in [3usize, 257] {
        let mut body = curfew_wire::CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        body.extend_from_slice(&1234i32.to_be_bytes());
        body.resize(8 + length, 0x5A);
        assert_eq!(
            parse_initial(&packet(&body)),
            Err(ProtocolError::CancelKeyLength { length })
        );
        let mut out = Vec::new();
        assert_eq!(
            curfew_wire::encode_cancel_request(1234, &vec![0; length], &mut out),
            Err(ProtocolError::CancelKeyLength { length })
        );
        assert!(out.is_empty());
        assert_eq!(
            curfew_wire::encode_backend_key_data(1234, &vec![0; length], &mut out),
            Err(ProtocolError::CancelKeyLength { length })
        );
        // And from the server: BackendKeyData with such a key.
        let mut key_data = 1234i32.to_be_bytes().to_vec();
        key_data.resize(4 + length, 0x5A);
        let mut frame = Vec::new();
        curfew_wire::encode_frame(Direction::Backend, b'K', &key_data, &mut frame)
            .expect("encodes");
        let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, &frame) else {
            panic!("a frame");
        };
        assert_eq!(
            curfew_wire::BackendMessage::parse(frame),
            Err(ProtocolError::CancelKeyLength { length })
        );
    }
    // A cancel request too short for its process id.
    let mut body = curfew_wire::CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    assert!(matches!(
        parse_initial(&packet(&body)),
        Err(ProtocolError::RequestLength {
            request: "CancelRequest",
            ..
        })
    ));
}

#[test]
fn ssl_and_gssenc_requests_of_the_wrong_length_are_refused() {
    for (code, request) in [
        (curfew_wire::SSL_REQUEST_CODE, "SSLRequest"),
        (curfew_wire::GSSENC_REQUEST_CODE, "GSSENCRequest"),
    ] {
        let mut body = code.to_be_bytes().to_vec();
        body.push(0);
        assert_eq!(
            parse_initial(&packet(&body)),
            Err(ProtocolError::RequestLength { request, length: 9 })
        );
    }
}

#[test]
fn a_parameter_list_without_terminator_is_refused() {
    let refused = parse_initial(&packet(&startup_body(b"user\0kim\0"))).expect_err("refused");
    assert_eq!(
        refused,
        ProtocolError::StartupLayout {
            reason: "expected terminator as last byte"
        }
    );
    assert_eq!(
        refused.to_string(),
        "invalid startup packet layout: expected terminator as last byte"
    );
    // A name without a value, and bytes after the terminator.
    assert!(matches!(
        parse_initial(&packet(&startup_body(b"user\0kim\0database\0"))),
        Err(ProtocolError::StartupLayout { .. })
    ));
    assert!(matches!(
        parse_initial(&packet(&startup_body(b"user\0kim\0\0x"))),
        Err(ProtocolError::StartupLayout { .. })
    ));
}

#[test]
fn a_startup_without_user_is_refused() {
    assert_eq!(
        parse_initial(&packet(&startup_body(b"database\0d\0\0"))),
        Err(ProtocolError::MissingUser)
    );
    assert_eq!(
        parse_initial(&packet(&startup_body(b"\0"))),
        Err(ProtocolError::MissingUser)
    );
    let mut out = Vec::new();
    assert_eq!(
        curfew_wire::encode_startup(ProtocolVersion::V3_0, &[(b"database", b"d")], &mut out),
        Err(ProtocolError::MissingUser)
    );
    assert!(
        out.is_empty(),
        "a refused encoding leaves the buffer as it was"
    );
}

#[test]
fn a_repeated_parameter_is_refused() {
    // PostgreSQL keeps the last `user`: a gateway that read the first would authenticate one
    // role and log in another.
    let error = parse_initial(&packet(&startup_body(b"user\0kim\0user\0postgres\0\0")))
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "invalid startup packet: parameter \"user\" given twice"
    );
}

#[test]
fn only_protocol_3_is_served() {
    let mut body = vec![0, 2, 0, 0];
    body.extend_from_slice(b"user\0kim\0\0");
    assert_eq!(
        parse_initial(&packet(&body)),
        Err(ProtocolError::UnsupportedProtocol { major: 2, minor: 0 })
    );
}

#[test]
fn encoders_refuse_nul_inside_strings_and_leave_the_buffer_alone() {
    let mut out = b"before".to_vec();
    assert!(curfew_wire::encode_parameter_status(b"a\0b", b"v", &mut out).is_err());
    assert!(curfew_wire::encode_error_response(&[(b'M', b"x\0y")], &mut out).is_err());
    assert!(curfew_wire::encode_error_response(&[(0, b"x")], &mut out).is_err());
    assert!(curfew_wire::encode_authentication_sasl(&[b""], &mut out).is_err());
    assert!(
        curfew_wire::encode_startup(ProtocolVersion::V3_0, &[(b"user", b"k\0m")], &mut out)
            .is_err()
    );
    assert!(
        curfew_wire::encode_startup(
            ProtocolVersion { major: 4, minor: 0 },
            &[(b"user", b"k")],
            &mut out
        )
        .is_err()
    );
    assert_eq!(out, b"before");
}

#[test]
fn encoders_refuse_messages_over_their_limit() {
    let mut out = Vec::new();
    // SASLResponse: 'p' may claim at most 65535 (65531 bytes of data).
    assert!(curfew_wire::encode_sasl_response(&vec![b'x'; 65_531], &mut out).is_ok());
    out.clear();
    assert!(curfew_wire::encode_sasl_response(&vec![b'x'; 65_532], &mut out).is_err());
    assert!(out.is_empty());
    // A startup packet whose parameters exceed 10000 bytes.
    let long = vec![b'x'; 10_000];
    assert!(
        curfew_wire::encode_startup(ProtocolVersion::V3_0, &[(b"user", &long)], &mut out).is_err()
    );
    assert!(out.is_empty());
}

#[test]
fn malformed_bodies_are_clear_errors() {
    fn backend(tag: u8, body: &[u8]) -> Result<(), ProtocolError> {
        let mut buf = Vec::new();
        curfew_wire::encode_frame(Direction::Backend, tag, body, &mut buf)?;
        let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, &buf) else {
            panic!("a frame");
        };
        curfew_wire::BackendMessage::parse(frame).map(|_| ())
    }
    assert!(matches!(
        backend(b'R', &[0, 0]),
        Err(ProtocolError::Truncated { .. })
    ));
    assert!(matches!(
        backend(b'R', &[0, 0, 0, 0, 1]),
        Err(ProtocolError::TrailingBytes { count: 1, .. })
    ));
    // SASL list without its terminating empty name.
    assert!(backend(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0").is_err());
    assert!(matches!(
        backend(b'Z', b"X"),
        Err(ProtocolError::InvalidField { .. })
    ));
    assert!(backend(b'Z', b"").is_err());
    assert!(backend(b'E', b"Mno terminator").is_err());
    assert!(backend(b'E', b"").is_err());
    assert!(backend(b'S', b"name\0").is_err());
    // NegotiateProtocolVersion claiming 2^32-1 options over a few bytes: refused quickly.
    assert!(backend(b'v', b"\0\0\0\x02\xff\xff\xff\xff_pq_.a\0").is_err());
    assert!(backend(b'v', b"\0\0\0\x02\0\0\0\x01_pq_.a\0extra").is_err());

    let sasl_initial = |body: &[u8]| {
        let mut buf = Vec::new();
        curfew_wire::encode_frame(Direction::Frontend, b'p', body, &mut buf)?;
        let Ok(Split::Frame(frame)) = split_frame(Direction::Frontend, &buf) else {
            panic!("a frame");
        };
        curfew_wire::AuthResponse::from_frame(frame)?
            .sasl_initial()
            .map(|_| ())
    };
    // Data length claiming 2 GiB - 1 over 3 bytes; -2; more bytes than claimed.
    assert!(matches!(
        sasl_initial(b"SCRAM-SHA-256\0\x7f\xff\xff\xffabc"),
        Err(ProtocolError::Truncated { .. })
    ));
    assert!(matches!(
        sasl_initial(b"SCRAM-SHA-256\0\xff\xff\xff\xfe"),
        Err(ProtocolError::InvalidField { .. })
    ));
    assert!(matches!(
        sasl_initial(b"SCRAM-SHA-256\0\0\0\0\x01ab"),
        Err(ProtocolError::TrailingBytes { .. })
    ));
    // A 'p' parser given another type.
    let mut buf = Vec::new();
    curfew_wire::encode_terminate(&mut buf);
    let Ok(Split::Frame(frame)) = split_frame(Direction::Frontend, &buf) else {
        panic!("a frame");
    };
    assert!(matches!(
        curfew_wire::AuthResponse::from_frame(frame),
        Err(ProtocolError::UnexpectedType { .. })
    ));
}

#[test]
fn errors_show_hostile_bytes_escaped() {
    let error = split_frame(Direction::Frontend, &header(0x1b, 2)).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "invalid message length: client message 0x1B claims 2 bytes, less than its own 4-byte length word"
    );
    let error = parse_initial(&packet(&startup_body(b"us\x1b[31m\0a\0us\x1b[31m\0b\0\0")))
        .expect_err("refused");
    assert!(!error.to_string().contains('\x1b'), "{error}");
}

#[test]
fn a_header_alone_tells_a_streaming_relay_what_follows() {
    // A 1 GiB CopyData: its header is enough to forward it without buffering it.
    let mut buf = header(b'd', 0x3FFF_FFFE);
    buf.extend_from_slice(b"first bytes");
    assert_eq!(
        curfew_wire::frame_header(Direction::Frontend, &buf),
        Ok(Some(curfew_wire::FrameHeader {
            tag: b'd',
            frame_len: 0x3FFF_FFFF
        }))
    );
    assert_eq!(
        curfew_wire::frame_header(Direction::Frontend, &buf[..4]),
        Ok(None)
    );
    assert!(curfew_wire::frame_header(Direction::Backend, &header(b'Z', 2)).is_err());
}
