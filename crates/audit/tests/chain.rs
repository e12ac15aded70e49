//! Writing, reopening and reading a log.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::thread;

use common::{TempDir, lines, record, session, write_records};
use curfew_audit::{AuditError, AuditLog, Event, GENESIS, Record, read, verify};

#[test]
fn reopen_continues_the_chain() {
    let dir = TempDir::new("reopen");
    let path = dir.log();
    let first_hash = {
        let log = AuditLog::open(&path).unwrap();
        assert!(log.warnings().is_empty(), "{:?}", log.warnings());
        let first = log.append(record(1)).unwrap();
        assert_eq!(first.seq, 1);
        log.append(record(2)).unwrap();
        log.append(record(3)).unwrap();
        first.hash
    };
    let log = AuditLog::open(&path).unwrap();
    assert!(log.warnings().is_empty(), "{:?}", log.warnings());
    assert_eq!(log.path(), path.as_path());
    assert_eq!(log.append(record(4)).unwrap().seq, 4);
    let last = log.append(record(5)).unwrap();
    assert_eq!(last.seq, 5);
    drop(log);

    let entries: Vec<_> = read(&path)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(entries[0].prev, GENESIS);
    assert_eq!(entries[0].hash, first_hash);
    assert!(entries.windows(2).all(|w| w[1].prev == w[0].hash));
    assert_eq!(entries[3].event_kind(), Some(Event::SessionReported));

    let v = verify(&path).unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
    assert_eq!(v.records, 5);
    assert_eq!(v.last_hash, Some(last.hash));
}

#[test]
fn new_file_has_mode_0600() {
    let dir = TempDir::new("mode600");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(log.warnings().is_empty());
}

#[test]
fn existing_0644_file_warns() {
    let dir = TempDir::new("mode644");
    let path = dir.log();
    write_records(&path, 1);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(
        log.warnings(),
        [format!(
            "audit log {} is readable by group/others (mode 0644); chmod 600 it",
            path.display()
        )]
    );
    assert_eq!(log.append(record(2)).unwrap().seq, 2);
}

#[test]
fn serialized_line_has_fixed_field_order() {
    let dir = TempDir::new("order");
    let path = dir.log();
    let mut s = session(4242);
    s.backend_start = "2026-11-23T14:45:00Z".parse().unwrap();
    let ts = "2026-11-23T15:00:00.123456Z".parse().unwrap();
    let log = AuditLog::open(&path).unwrap();
    log.append(
        Record::new(ts, Event::SessionTerminated)
            .with_target("prod")
            .with_rule("idle")
            .with_reason("idle for 15m02s; limit 15m")
            .with_session(s)
            .with_result("ended")
            .with_intent(7)
            .with_detail(serde_json::json!({"lateness_ms": 12})),
    )
    .unwrap();
    log.append(Record::new(ts, Event::AgentStopped)).unwrap();
    drop(log);

    let lines = lines(&path);
    assert_eq!(
        lines[0],
        concat!(
            r#"{"seq":1,"ts":"2026-11-23T15:00:00.123456Z","event":"session_terminated","#,
            r#""target":"prod","rule":"idle","reason":"idle for 15m02s; limit 15m","#,
            r#""session":{"pid":4242,"backend_start":"2026-11-23T14:45:00Z","role":"app","#,
            r#""database":"orders","client_addr":"10.0.0.7","application":"psql","state":"idle"},"#,
            r#""result":"ended","intent":7,"detail":{"lateness_ms":12},"#,
            r#""prev":"0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""hash":"fa2fa5335f6bca04d38fc166e90acaa1d0741bc26c520c8e0d11ab89b46a4cdf"}"#
        )
    );
    // The hash is that of the line without its hash field (checked with sha256sum), and
    // None fields are omitted entirely.
    let second = &lines[1];
    assert!(second.starts_with(
        r#"{"seq":2,"ts":"2026-11-23T15:00:00.123456Z","event":"agent_stopped","prev":""#
    ));
}

#[test]
fn two_writers_of_one_file_continue_one_chain() {
    let dir = TempDir::new("two-writers");
    let path = dir.log();
    let first = AuditLog::open(&path).unwrap();
    let second = AuditLog::open(&path).unwrap();
    let ts = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let mut seqs = Vec::new();
    for round in 0..3 {
        seqs.push(
            first
                .append(Record::new(ts, Event::AgentStarted))
                .unwrap()
                .seq,
        );
        seqs.push(
            second
                .append(Record::new(ts, Event::PolicyLoaded))
                .unwrap()
                .seq,
        );
        if round == 1 {
            // A batch from one writer, then the other continues after it.
            let batch = vec![Record::new(ts, Event::LeaderAcquired); 3];
            seqs.extend(first.append_all(batch).unwrap().iter().map(|a| a.seq));
        }
    }
    assert_eq!(seqs, (1..=9).collect::<Vec<u64>>());
    drop((first, second));
    let verification = curfew_audit::verify(&path).unwrap();
    assert!(verification.is_intact(), "{:?}", verification.problems);
    assert_eq!(verification.records, 9);
}

#[test]
fn a_writer_threads_through_records_another_process_appended() {
    let dir = TempDir::new("threads");
    let path = dir.log();
    let ours = AuditLog::open(&path).unwrap();
    let ts = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    ours.append(Record::new(ts, Event::AgentStarted)).unwrap();
    // Another process: a separate open of the file, gone again before we write.
    {
        let theirs = AuditLog::open(&path).unwrap();
        theirs.append(Record::new(ts, Event::PolicyLoaded)).unwrap();
        theirs.append(Record::new(ts, Event::PolicyLoaded)).unwrap();
    }
    assert_eq!(
        ours.append(Record::new(ts, Event::AgentStopped))
            .unwrap()
            .seq,
        4
    );
    assert!(curfew_audit::verify(&path).unwrap().is_intact());
}

#[test]
fn a_log_truncated_under_the_writer_is_refused_not_overwritten() {
    let dir = TempDir::new("truncated");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    let ts = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    log.append(Record::new(ts, Event::AgentStarted)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let err = log
        .append(Record::new(ts, Event::AgentStopped))
        .unwrap_err();
    assert!(err.to_string().contains("shrank"), "{err}");
    assert!(log.check_writable().is_err());
}

#[test]
fn concurrent_appends_from_eight_threads() {
    let dir = TempDir::new("concurrent");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            thread::spawn(move || {
                for n in 0..50 {
                    log.append(record(t * 100 + n)).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    drop(log);

    let seqs: Vec<u64> = read(&path)
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    let v = verify(&path).unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
    assert_eq!(v.records, 400);
}

#[test]
fn empty_file_is_intact_and_missing_file_is_an_error() {
    let dir = TempDir::new("empty");
    let path = dir.log();
    fs::write(&path, "").unwrap();
    let v = verify(&path).unwrap();
    assert!(v.is_intact());
    assert_eq!(v.records, 0);
    assert_eq!(v.last_hash, None);

    let missing = verify(&path.with_extension("nope")).unwrap_err();
    assert!(matches!(missing, AuditError::Io { .. }), "{missing:?}");
}

#[test]
fn a_batch_is_consecutive_links_and_verifies() {
    let dir = TempDir::new("batch");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    log.append(Record::new(jiff::Timestamp::now(), Event::AgentStarted))
        .unwrap();
    let batch: Vec<Record> = (0..5)
        .map(|i| {
            Record::new(jiff::Timestamp::now(), Event::SessionReported)
                .with_reason(format!("batch {i}"))
        })
        .collect();
    let appended = log.append_all(batch).unwrap();
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert!(log.append_all(Vec::new()).unwrap().is_empty());
    let after = log
        .append(Record::new(jiff::Timestamp::now(), Event::AgentStopped))
        .unwrap();
    assert_eq!(after.seq, 7);
    drop(log);
    let v = verify(&path).unwrap();
    assert!(v.is_intact(), "{:#?}", v.problems);
    assert_eq!(v.records, 7);
}

#[test]
fn a_second_agent_on_one_log_is_refused_but_other_writers_are_not() {
    let dir = TempDir::new("agent-claim");
    let path = dir.log();
    let agent = AuditLog::open_for_agent(&path).unwrap();
    let err = AuditLog::open_for_agent(&path).unwrap_err();
    assert!(
        matches!(&err, AuditError::InUse { path: p, .. } if *p == path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("in use by another curfew agent"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    // `curfew check` and the like still append.
    let ts = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    AuditLog::open(&path)
        .unwrap()
        .append(Record::new(ts, Event::AgentStarted))
        .unwrap();
    drop(agent);
    AuditLog::open_for_agent(&path).unwrap();
}
