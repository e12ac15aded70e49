//! The session's state as the wire shows it: frames in, states out.

use super::*;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn ready(status: u8) -> Vec<u8> {
    frame(b'Z', &[status])
}

#[test]
fn a_query_is_active_until_ready_for_query_then_idle() {
    let mut wire = WireState::new(at(0));
    assert_eq!(wire.state(), SessionState::Idle);
    wire.observe(Direction::Frontend, &frame(b'Q', b"select 1\0"), at(5));
    assert_eq!(wire.state(), SessionState::Active);
    assert_eq!(wire.state_change(), at(5));
    assert_eq!(wire.xact_start(), Some(at(5)));
    let mut answer = frame(b'T', &[0, 0]);
    answer.extend(frame(b'C', b"SELECT 1\0"));
    answer.extend(ready(b'I'));
    wire.observe(Direction::Backend, &answer, at(7));
    assert_eq!(wire.state(), SessionState::Idle);
    assert_eq!(wire.state_change(), at(7));
    assert_eq!(wire.xact_start(), None);
}

#[test]
fn a_transaction_block_is_idle_in_transaction_since_its_begin() {
    let mut wire = WireState::new(at(0));
    wire.observe(Direction::Frontend, &frame(b'Q', b"begin\0"), at(1));
    wire.observe(Direction::Backend, &ready(b'T'), at(2));
    assert_eq!(wire.state(), SessionState::IdleInTransaction);
    assert_eq!(wire.xact_start(), Some(at(1)));
    // The next statement keeps the transaction's start.
    wire.observe(Direction::Frontend, &frame(b'Q', b"select x\0"), at(10));
    assert_eq!(wire.state(), SessionState::Active);
    assert_eq!(wire.xact_start(), Some(at(1)));
    wire.observe(Direction::Backend, &ready(b'E'), at(11));
    assert_eq!(wire.state(), SessionState::IdleInTransactionAborted);
    assert_eq!(wire.state_change(), at(11));
}

#[test]
fn pipelined_queries_stay_active_until_the_last_ready_for_query() {
    let mut wire = WireState::new(at(0));
    let mut two = frame(b'Q', b"select 1\0");
    two.extend(frame(b'Q', b"select pg_sleep(60)\0"));
    wire.observe(Direction::Frontend, &two, at(1));
    wire.observe(Direction::Backend, &ready(b'I'), at(2));
    assert_eq!(wire.state(), SessionState::Active);
    wire.observe(Direction::Backend, &ready(b'I'), at(62));
    assert_eq!(wire.state(), SessionState::Idle);
}

#[test]
fn extended_protocol_is_active_from_parse_even_before_sync() {
    let mut wire = WireState::new(at(0));
    wire.observe(
        Direction::Frontend,
        &frame(b'P', b"\0select 1\0\0\0"),
        at(1),
    );
    assert_eq!(wire.state(), SessionState::Active);
    let mut rest = frame(b'B', b"\0\0\0\0\0\0\0\0");
    rest.extend(frame(b'E', b"\0\0\0\0\0"));
    rest.extend(frame(b'S', b""));
    wire.observe(Direction::Frontend, &rest, at(2));
    assert_eq!(wire.state_change(), at(1));
    wire.observe(Direction::Backend, &ready(b'I'), at(3));
    assert_eq!(wire.state(), SessionState::Idle);
}

#[test]
fn frames_split_anywhere_are_seen_once() {
    let mut wire = WireState::new(at(0));
    let query = frame(b'Q', b"select 1\0");
    for byte in &query {
        wire.observe(Direction::Frontend, std::slice::from_ref(byte), at(1));
    }
    assert_eq!(wire.state(), SessionState::Active);
    let mut answer = frame(b'C', b"SELECT 1\0");
    answer.extend(ready(b'T'));
    let (head, tail) = answer.split_at(answer.len() - 1);
    wire.observe(Direction::Backend, head, at(2));
    // The status byte has not arrived: still running.
    assert_eq!(wire.state(), SessionState::Active);
    wire.observe(Direction::Backend, tail, at(3));
    assert_eq!(wire.state(), SessionState::IdleInTransaction);
    assert_eq!(wire.generation(), 2);
}

#[test]
fn other_client_frames_do_not_start_work() {
    let mut wire = WireState::new(at(0));
    // Flush and Terminate: nothing runs.
    let mut bytes = frame(b'H', b"");
    bytes.extend(frame(b'X', b""));
    wire.observe(Direction::Frontend, &bytes, at(1));
    assert_eq!(wire.state(), SessionState::Idle);
    assert_eq!(wire.generation(), 0);
}

fn error_response(code: &[u8]) -> Vec<u8> {
    let mut body = b"SERROR\0VERROR\0".to_vec();
    body.push(b'C');
    body.extend_from_slice(code);
    body.extend_from_slice(b"\0Mpermission denied for table t\0\0");
    frame(b'E', &body)
}

#[test]
fn the_servers_error_codes_are_read_even_split_byte_by_byte() {
    let mut wire = WireState::new(at(0));
    assert!(!wire.has_errors());
    let mut bytes = error_response(b"42501");
    bytes.extend(ready(b'I'));
    bytes.extend(error_response(b"42P01"));
    for byte in &bytes {
        wire.observe(Direction::Backend, std::slice::from_ref(byte), at(1));
    }
    let codes: Vec<String> = wire
        .take_errors()
        .map(|(c, _)| c.as_str().to_owned())
        .collect();
    assert_eq!(codes, ["42501", "42P01"]);
    assert!(!wire.has_errors());
}

#[test]
fn a_code_that_is_no_sqlstate_and_the_clients_frames_are_not_counted() {
    let mut wire = WireState::new(at(0));
    // Too long, too short, a character no SQLSTATE has.
    let mut bytes = error_response(b"425010");
    bytes.extend(error_response(b"4250"));
    bytes.extend(error_response(b"42-01"));
    // A notice with a 'C' field is no error.
    bytes.extend(frame(b'N', b"SWARNING\0C01000\0Mx\0\0"));
    wire.observe(Direction::Backend, &bytes, at(1));
    // The client's 'E' is an Execute.
    wire.observe(Direction::Frontend, &error_response(b"42501"), at(1));
    assert!(!wire.has_errors());
}

#[tokio::test(start_paused = true)]
async fn the_clock_follows_paused_time() {
    let clock = Clock::starting_at(at(0));
    tokio::time::advance(std::time::Duration::from_secs(90)).await;
    assert_eq!(clock.now(), at(90));
    let instant = clock.instant_of(at(150));
    assert_eq!(instant - Instant::now(), std::time::Duration::from_secs(60));
    assert_eq!(clock.instant_of(at(10)), Instant::now());
}

/// A hostile client: a Query sent inside an extended batch whose Bind fails is discarded by
/// the server, which answers only the Sync. Counted, the session stayed "running" for ever and
/// no idle rule reached it.
#[test]
fn a_query_discarded_after_an_error_in_a_batch_does_not_keep_the_session_running() {
    let mut wire = WireState::new(at(0));
    let mut batch = frame(b'P', b"\0select 1\0\0\0");
    batch.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
    batch.extend(frame(b'E', b"\0\0\0\0\0"));
    batch.extend(frame(b'Q', b"select 2\0"));
    batch.extend(frame(b'S', b""));
    wire.observe(Direction::Frontend, &batch, at(1));
    assert_eq!(wire.state(), SessionState::Active);
    let mut answer = frame(b'1', b"");
    answer.extend(frame(b'E', b"SERROR\0C22P02\0Mbad\0\0"));
    answer.extend(ready(b'I'));
    wire.observe(Direction::Backend, &answer, at(2));
    assert_eq!(wire.state(), SessionState::Idle);
    assert_eq!(wire.state_change(), at(2));
}

/// The Syncs sent during a COPY FROM STDIN get no answer (the server ignores them): libpq
/// sends one after an extended COPY's Execute and another after CopyDone.
#[test]
fn syncs_sent_during_copy_in_are_not_waited_for() {
    let mut wire = WireState::new(at(0));
    let mut start = frame(b'P', b"\0copy t from stdin\0\0\0");
    start.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
    start.extend(frame(b'E', b"\0\0\0\0\0"));
    start.extend(frame(b'S', b""));
    wire.observe(Direction::Frontend, &start, at(1));
    wire.observe(Direction::Backend, &frame(b'G', &[0, 0, 0]), at(2));
    let mut data = frame(b'd', b"1\n");
    data.extend(frame(b'c', b""));
    data.extend(frame(b'S', b""));
    wire.observe(Direction::Frontend, &data, at(3));
    assert_eq!(wire.state(), SessionState::Active);
    let mut done = frame(b'C', b"COPY 1\0");
    done.extend(ready(b'I'));
    wire.observe(Direction::Backend, &done, at(4));
    assert_eq!(wire.state(), SessionState::Idle);
    // A simple-protocol COPY with a Sync slipped in: the same.
    let mut simple = frame(b'Q', b"copy t from stdin\0");
    simple.extend(frame(b'S', b""));
    simple.extend(frame(b'd', b"2\n"));
    simple.extend(frame(b'c', b""));
    wire.observe(Direction::Frontend, &simple, at(5));
    wire.observe(Direction::Backend, &done, at(6));
    assert_eq!(wire.state(), SessionState::Idle);
    assert_eq!(wire.state_change(), at(6));
}
