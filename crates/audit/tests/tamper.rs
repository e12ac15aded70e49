//! What verification reports for damaged logs, and how open copes with torn writes.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, OpenOptions};

use common::{TempDir, lines, record, session, ts, write_lines, write_records};
use curfew_audit::{AuditError, AuditLog, Event, ProblemKind, Record, verify};

/// (line, kind) of every problem, for compact assertions.
fn summary(path: &std::path::Path) -> Vec<(u64, ProblemKind)> {
    verify(path)
        .unwrap()
        .problems
        .iter()
        .map(|p| (p.line, p.kind))
        .collect()
}

#[test]
fn altered_reason_is_a_hash_mismatch_at_that_line_only() {
    let dir = TempDir::new("alter");
    let path = dir.log();
    write_records(&path, 4);
    let mut lines = lines(&path);
    lines[1] = lines[1].replacen("idle for 15m02s", "idle for 15m03s", 1);
    write_lines(&path, &lines);

    let v = verify(&path).unwrap();
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    let p = &v.problems[0];
    assert_eq!(
        (p.line, p.seq, p.kind),
        (2, Some(2), ProblemKind::HashMismatch)
    );
    assert_eq!(
        p.message,
        "line 2 (seq 2) was altered: its hash does not match its content."
    );
    assert_eq!(v.records, 4);
}

#[test]
fn altered_seq_is_reported_once() {
    let dir = TempDir::new("alterseq");
    let path = dir.log();
    write_records(&path, 4);
    let mut lines = lines(&path);
    lines[1] = lines[1].replacen("{\"seq\":2,", "{\"seq\":9,", 1);
    write_lines(&path, &lines);
    assert_eq!(summary(&path), [(2, ProblemKind::HashMismatch)]);
}

#[test]
fn deleted_line_is_a_broken_link_and_a_seq_gap() {
    let dir = TempDir::new("delete");
    let path = dir.log();
    write_records(&path, 4);
    let mut lines = lines(&path);
    lines.remove(1);
    write_lines(&path, &lines);

    let v = verify(&path).unwrap();
    let kinds: Vec<_> = v.problems.iter().map(|p| (p.line, p.seq, p.kind)).collect();
    assert_eq!(
        kinds,
        [
            (2, Some(3), ProblemKind::BrokenLink),
            (2, Some(3), ProblemKind::SeqGap),
        ]
    );
    assert!(
        v.problems[0]
            .message
            .contains("does not follow line 1 (seq 1)")
    );
    assert_eq!(
        v.problems[1].message,
        "line 2 has seq 3 where seq 2 was expected: 1 record(s) are missing before it."
    );
}

#[test]
fn deleted_first_line_breaks_the_start_of_the_chain() {
    let dir = TempDir::new("deletefirst");
    let path = dir.log();
    write_records(&path, 3);
    let mut lines = lines(&path);
    lines.remove(0);
    write_lines(&path, &lines);
    assert_eq!(
        summary(&path),
        [(1, ProblemKind::BrokenLink), (1, ProblemKind::SeqGap)]
    );
}

#[test]
fn duplicated_line_is_reported_where_it_was_inserted() {
    let dir = TempDir::new("duplicate");
    let path = dir.log();
    write_records(&path, 4);
    let mut lines = lines(&path);
    let copy = lines[1].clone();
    lines.insert(2, copy);
    write_lines(&path, &lines);
    assert_eq!(
        summary(&path),
        [(3, ProblemKind::BrokenLink), (3, ProblemKind::SeqGap)]
    );
}

#[test]
fn damaged_middle_line_is_malformed_and_the_chain_relinks_after_it() {
    let dir = TempDir::new("garbled");
    let path = dir.log();
    write_records(&path, 4);
    let mut lines = lines(&path);
    // Breaks the JSON but keeps the hash field, so the next line can still be linked.
    lines[1] = lines[1].replacen("\"target\":", "\"target\"", 1);
    write_lines(&path, &lines);
    assert_eq!(summary(&path), [(2, ProblemKind::Malformed)]);

    // Without a recognisable hash the next link cannot be confirmed, which is said once.
    let mut lines = common::lines(&path);
    lines[1] = "not a record".into();
    write_lines(&path, &lines);
    assert_eq!(
        summary(&path),
        [(2, ProblemKind::Malformed), (3, ProblemKind::BrokenLink)]
    );
}

/// Decided behaviour for a torn write: open warns, closes the torn line with `\n`, and
/// continues the chain after the last complete record (the torn record's seq is reused).
/// verify then reports exactly one problem, the torn line as Malformed; the records after it
/// link to the record before it, so they are not reported.
#[test]
fn torn_last_line() {
    let dir = TempDir::new("torn");
    let path = dir.log();
    write_records(&path, 3);
    let len = fs::metadata(&path).unwrap().len();
    let third = lines(&path)[2].len() as u64;
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - third / 2).unwrap();
    drop(file);

    let v = verify(&path).unwrap();
    assert_eq!(v.problems.len(), 1);
    assert_eq!(
        (v.problems[0].line, v.problems[0].kind),
        (3, ProblemKind::Malformed)
    );
    assert!(
        v.problems[0]
            .message
            .contains("ends in the middle of a record")
    );

    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.warnings().len(), 1, "{:?}", log.warnings());
    assert!(log.warnings()[0].contains("incomplete line"));
    assert_eq!(log.append(record(4)).unwrap().seq, 3);
    assert_eq!(log.append(record(5)).unwrap().seq, 4);
    drop(log);

    let lines = lines(&path);
    assert_eq!(lines.len(), 5);
    assert!(lines[3].starts_with("{\"seq\":3,"));
    let v = verify(&path).unwrap();
    let kinds: Vec<_> = v.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(kinds, [(3, ProblemKind::Malformed)]);
    assert!(v.problems[0].message.starts_with("line 3 is incomplete"));
    assert_eq!(v.records, 4);
}

#[test]
fn crash_after_repairing_a_torn_line_still_opens() {
    let dir = TempDir::new("torntwice");
    let path = dir.log();
    write_records(&path, 2);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":3,\"ts\":\"20");
    fs::write(&path, &text).unwrap();
    // First open repairs the tail and "crashes" before appending.
    drop(AuditLog::open(&path).unwrap());
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.warnings().len(), 1, "{:?}", log.warnings());
    assert_eq!(log.append(record(3)).unwrap().seq, 3);
    drop(log);
    assert_eq!(summary(&path), [(3, ProblemKind::Malformed)]);
}

#[test]
fn lost_newline_after_a_whole_record_is_repaired() {
    let dir = TempDir::new("nonewline");
    let path = dir.log();
    write_records(&path, 2);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.trim_end()).unwrap();
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.warnings().len(), 1);
    assert_eq!(log.append(record(3)).unwrap().seq, 3);
    drop(log);
    assert!(verify(&path).unwrap().is_intact());
}

#[test]
fn damaged_last_record_refuses_to_open() {
    let dir = TempDir::new("corrupt");
    let path = dir.log();
    write_records(&path, 2);
    let mut lines = lines(&path);
    lines[1] = lines[1].replacen("\"seq\":2", "\"seq\":\"x\"", 1);
    write_lines(&path, &lines);
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err:?}");
}

#[test]
fn intents_and_outcomes() {
    let dir = TempDir::new("intents");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    log.append(Record::new(ts(0), Event::AgentStarted)).unwrap();
    let done = log
        .append(Record::new(ts(1), Event::TerminationIntent).with_session(session(1111)))
        .unwrap();
    let open = log
        .append(Record::new(ts(2), Event::TerminationIntent).with_session(session(4242)))
        .unwrap();
    log.append(
        Record::new(ts(3), Event::SessionTerminated)
            .with_session(session(1111))
            .with_result("ended")
            .with_intent(done.seq),
    )
    .unwrap();
    // Only the second intent is still open.
    assert_eq!(verify(&path).unwrap().problems.len(), 1);

    log.append(Record::new(ts(4), Event::TerminationFailed).with_intent(99))
        .unwrap();
    drop(log);

    let v = verify(&path).unwrap();
    let found: Vec<_> = v
        .problems
        .iter()
        .map(|p| (p.line, p.seq, p.kind, p.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                5,
                Some(5),
                ProblemKind::OutcomeWithoutIntent,
                "line 5 (seq 5): termination_failed names intent seq 99, but no intent with that seq comes before it."
            ),
            (
                open.seq,
                Some(open.seq),
                ProblemKind::IntentWithoutOutcome,
                "seq 3: intent to end pid 4242 has no outcome record."
            ),
        ]
    );
}
