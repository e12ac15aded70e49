//! Properties over random input: frames encoded then split (in any chunking) come back the
//! same; random bytes never panic and never yield a frame longer than the input.

use curfew_wire::{
    AuthResponse, BackendMessage, Direction, FrontendMessage, Initial, ProtocolVersion, Split,
    frames, parse_initial, split_frame,
};
use proptest::prelude::*;

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Frontend), Just(Direction::Backend)]
}

fn random_frames() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    // Bodies stay under the smallest limit (2000 for 'R'), so every frame is valid.
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..300)),
        0..20,
    )
}

fn encode_all(direction: Direction, list: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (tag, body) in list {
        curfew_wire::encode_frame(direction, *tag, body, &mut buf).expect("within the limits");
    }
    buf
}

/// Everything the codec reads from a frame, exercised; errors are fine, panics are not.
fn parse_everything(direction: Direction, frame: curfew_wire::Frame<'_>) {
    match direction {
        Direction::Backend => {
            if let Ok(message) = BackendMessage::parse(frame) {
                let _ = format!("{message:?}");
                if let BackendMessage::ErrorResponse(fields)
                | BackendMessage::NoticeResponse(fields) = message
                {
                    let _ = (fields.severity(), fields.code(), fields.message());
                    let _ = fields.iter().count();
                }
                if let BackendMessage::NegotiateProtocolVersion(n) = message {
                    let _ = n.unrecognized().count();
                }
            }
        }
        Direction::Frontend => {
            let _ = FrontendMessage::parse(frame);
            if let Ok(response) = AuthResponse::from_frame(frame) {
                let _ = response.password();
                let _ = response.sasl_initial();
                let _ = response.sasl_response();
            }
        }
    }
}

proptest! {
    #[test]
    fn encoded_frames_split_back_the_same(direction in direction(), list in random_frames()) {
        let buf = encode_all(direction, &list);
        let mut split = frames(direction, &buf);
        let found: Vec<(u8, Vec<u8>)> = split
            .by_ref()
            .map(|frame| frame.map(|f| (f.tag(), f.body().to_vec())))
            .collect::<Result<_, _>>()
            .expect("valid frames");
        prop_assert_eq!(found, list);
        prop_assert_eq!(split.consumed(), buf.len());
        prop_assert!(split.rest().is_empty());
    }

    #[test]
    fn frames_arriving_in_any_chunks_split_back_the_same(
        direction in direction(),
        list in random_frames(),
        cuts in prop::collection::vec(1usize..64, 0..64),
    ) {
        let stream = encode_all(direction, &list);
        // A relay's loop: append what arrived, take the whole frames, keep the rest.
        let mut pending = Vec::new();
        let mut found = Vec::new();
        let mut at = 0;
        let mut cuts = cuts.into_iter();
        while at < stream.len() {
            let step = cuts.next().unwrap_or(stream.len());
            let end = stream.len().min(at + step);
            pending.extend_from_slice(&stream[at..end]);
            at = end;
            let mut split = frames(direction, &pending);
            for frame in split.by_ref() {
                let frame = frame.expect("valid frames");
                found.push((frame.tag(), frame.body().to_vec()));
            }
            let consumed = split.consumed();
            pending.drain(..consumed);
        }
        prop_assert!(pending.is_empty());
        prop_assert_eq!(found, list);
    }

    #[test]
    fn a_truncated_stream_yields_a_prefix_of_its_frames(
        direction in direction(),
        list in random_frames(),
        keep in any::<prop::sample::Index>(),
    ) {
        let buf = encode_all(direction, &list);
        let cut = if buf.is_empty() { 0 } else { keep.index(buf.len()) };
        let found: Vec<(u8, Vec<u8>)> = frames(direction, &buf[..cut])
            .map(|frame| frame.map(|f| (f.tag(), f.body().to_vec())))
            .collect::<Result<_, _>>()
            .expect("a prefix of valid frames is no error");
        prop_assert!(found.len() <= list.len());
        prop_assert_eq!(&found[..], &list[..found.len()]);
    }

    #[test]
    fn random_bytes_never_panic_nor_overreach(
        direction in direction(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Ok(Split::Frame(frame)) = split_frame(direction, &bytes) {
            prop_assert!(frame.len() <= bytes.len());
            prop_assert_eq!(frame.raw(), &bytes[..frame.len()]);
        }
        let mut split = frames(direction, &bytes);
        for frame in split.by_ref().flatten() {
            parse_everything(direction, frame);
        }
        prop_assert!(split.consumed() <= bytes.len());
        if let Ok(Initial::Packet { packet, len }) = parse_initial(&bytes) {
            prop_assert!(len <= bytes.len());
            let _ = format!("{packet:?}");
        }
    }

    #[test]
    fn random_bodies_never_panic_any_parser(
        tag in prop::sample::select(b"RKZENSvpX".to_vec()),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        for direction in [Direction::Frontend, Direction::Backend] {
            let mut buf = Vec::new();
            curfew_wire::encode_frame(direction, tag, &body, &mut buf).expect("small");
            let Ok(Split::Frame(frame)) = split_frame(direction, &buf) else {
                panic!("one whole frame");
            };
            parse_everything(direction, frame);
        }
    }

    #[test]
    fn startup_parameters_round_trip(
        minor in 0u16..4,
        values in prop::collection::vec(prop::collection::vec(1u8..=255, 0..40), 0..10),
    ) {
        // Distinct names (a repeated one is refused), values of any bytes but NUL.
        let names: Vec<Vec<u8>> = (0..values.len()).map(|i| format!("p{i}").into_bytes()).collect();
        let mut params: Vec<(&[u8], &[u8])> = vec![(b"user", b"kim")];
        params.extend(names.iter().zip(&values).map(|(n, v)| (&n[..], &v[..])));
        let mut buf = Vec::new();
        let version = ProtocolVersion { major: 3, minor };
        curfew_wire::encode_startup(version, &params, &mut buf).expect("encodes");
        let Ok(Initial::Packet { packet: curfew_wire::InitialPacket::Startup(startup), len }) =
            parse_initial(&buf)
        else {
            panic!("a startup message");
        };
        prop_assert_eq!(len, buf.len());
        prop_assert_eq!(startup.version(), version);
        prop_assert_eq!(startup.params().collect::<Vec<_>>(), params);
    }

    #[test]
    fn error_fields_round_trip(
        fields in prop::collection::vec((1u8..=255, prop::collection::vec(1u8..=255, 0..60)), 0..12),
    ) {
        let fields: Vec<(u8, &[u8])> = fields.iter().map(|(c, v)| (*c, &v[..])).collect();
        let mut buf = Vec::new();
        curfew_wire::encode_error_response(&fields, &mut buf).expect("encodes");
        let Ok(Split::Frame(frame)) = split_frame(Direction::Backend, &buf) else {
            panic!("one whole frame");
        };
        let Ok(BackendMessage::ErrorResponse(parsed)) = BackendMessage::parse(frame) else {
            panic!("an ErrorResponse");
        };
        prop_assert_eq!(parsed.iter().collect::<Vec<_>>(), fields);
    }
}

/// A stream of valid server frames, ReadyForQuery among them, with its frame ends and the
/// status of its last ReadyForQuery.
fn server_stream() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    let ready = prop_oneof![Just(b'I'), Just(b'T'), Just(b'E')].prop_map(|s| (b'Z', vec![s]));
    let other = (any::<u8>(), prop::collection::vec(any::<u8>(), 0..300));
    prop::collection::vec(prop_oneof![ready, other], 0..30)
}

/// Cut points: sorted offsets inside `0..=len`.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.push(0);
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

proptest! {
    #[test]
    fn a_cursor_fed_in_pieces_finds_the_boundaries_of_the_whole_stream(
        list in server_stream(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let stream = encode_all(Direction::Backend, &list);
        // The whole-stream parse: every frame's end, and the last ReadyForQuery's status.
        let mut ends = Vec::new();
        let mut whole = frames(Direction::Backend, &stream);
        while let Some(frame) = whole.next() {
            prop_assert!(frame.is_ok());
            ends.push(whole.consumed());
        }
        let expected_status = list
            .iter()
            .rev()
            .find(|(tag, body)| *tag == b'Z' && body.len() == 1 && b"ITE".contains(&body[0]))
            .and_then(|(_, body)| curfew_wire::TransactionStatus::from_byte(body[0]));

        let cuts = cuts(stream.len(), &raw_cuts);
        let mut cursor = curfew_wire::FrameCursor::new(Direction::Backend);
        for pair in cuts.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            // Before feeding: the first boundary in this piece, asked on a copy.
            let first = ends.iter().copied().find(|&e| e >= start && e <= end);
            let at_start = start == 0 || ends.contains(&start);
            let mut probe = cursor;
            let found = probe.feed_to_boundary(&stream[start..end]).expect("valid frames");
            let expected_first = if at_start { Some(0) } else { first.map(|e| e - start) };
            prop_assert_eq!(found, expected_first);

            let last = ends.iter().copied().rfind(|&e| e > start && e <= end);
            let fed = cursor.feed(&stream[start..end]).expect("valid frames");
            prop_assert_eq!(fed, last.map(|e| e - start));
            prop_assert_eq!(cursor.at_boundary(), ends.contains(&end) || end == 0);
        }
        prop_assert!(cursor.at_boundary());
        prop_assert_eq!(cursor.transaction_status(), expected_status);
    }

    #[test]
    fn a_cursor_never_panics_on_random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..10),
        direction in direction(),
    ) {
        let mut cursor = curfew_wire::FrameCursor::new(direction);
        for pair in cuts(bytes.len(), &raw_cuts).windows(2) {
            if let Ok(Some(end)) = cursor.feed(&bytes[pair[0]..pair[1]]) {
                prop_assert!(end <= pair[1] - pair[0]);
            }
        }
    }
}
