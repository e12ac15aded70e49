//! Sets of files, anchors and signed checkpoints.

use std::path::Path;

use curfew_testkit::TempDir;
use jiff::Timestamp;

use crate::{
    Anchor, AnchorRules, AuditLog, CheckpointKey, Entry, Event, ProblemKind, Record, chain_id,
    read, verify_chain,
};

pub(crate) fn ts(n: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + n).unwrap()
}

pub(crate) fn write(log: &AuditLog, from: i64, n: i64) {
    for i in from..from + n {
        log.append(Record::new(ts(i), Event::SessionReported).with_reason(format!("r{i}")))
            .unwrap();
    }
}

/// Rename the log away and let the writer continue in a new file, as logrotate does.
pub(crate) fn rotate(log: &AuditLog, to: &Path) {
    std::fs::rename(log.path(), to).unwrap();
    assert!(log.needs_recovery());
    let recovered = log.recover(ts(500), true).unwrap();
    assert_eq!(
        recovered.written[0].0.event,
        Event::LogContinued,
        "{recovered:?}"
    );
}

pub(crate) fn entries(path: &Path) -> Vec<Entry> {
    read(path)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

pub(crate) fn to_record(e: &Entry) -> Record {
    Record {
        ts: e.ts,
        event: e.event_kind().unwrap(),
        target: e.target.clone(),
        rule: e.rule.clone(),
        reason: e.reason.clone(),
        session: e.session.clone(),
        result: e.result.clone(),
        intent: e.intent,
        detail: e.detail.clone(),
    }
}

/// The forger: writes `entries` without the record `drop_seq` into `to`, every hash recomputed.
pub(crate) fn forge(entries: &[Entry], drop_seq: u64, to: &Path) {
    let _ = std::fs::remove_file(to);
    let log = AuditLog::open(to).unwrap();
    for e in entries.iter().filter(|e| e.seq != drop_seq) {
        log.append(to_record(e)).unwrap();
    }
}

pub(crate) fn anchor(chain: &str, seq: u64, hash: &str) -> Anchor {
    Anchor {
        chain: chain.to_owned(),
        seq,
        hash: hash.to_owned(),
        at: ts(i64::try_from(seq).unwrap()),
        from: "target \"t\"".to_owned(),
        by: "curfew_agent".to_owned(),
        origin: Some("10.0.0.5".to_owned()),
    }
}

#[test]
fn a_rotated_set_is_one_chain_in_seq_order_and_names_its_chain() {
    let dir = TempDir::new("chain", "rotated");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 3);
    let chain = log.head().unwrap().chain;
    assert_eq!(chain, entries(&path)[0].hash, "the chain is named by seq 1");
    // Names that sort against the chain's order.
    rotate(&log, &dir.join("audit.jsonl.9"));
    write(&log, 10, 2);
    rotate(&log, &dir.join("audit.jsonl.1"));
    write(&log, 20, 2);
    let head = log.head().unwrap();
    assert_eq!((head.chain.as_str(), head.seq), (chain.as_str(), 9));
    // Each continued file knows its chain on its own.
    assert_eq!(chain_id(&entries(&dir.join("audit.jsonl.1"))[0]), chain);

    let v = verify_chain(&[dir.path().to_path_buf()], |_| {}).unwrap();
    assert!(v.is_intact(), "{:?}", v.verification.problems);
    assert_eq!(v.chain.as_deref(), Some(chain.as_str()));
    let order: Vec<_> = v.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        order,
        vec![
            dir.join("audit.jsonl.9"),
            dir.join("audit.jsonl.1"),
            path.clone()
        ]
    );
    assert_eq!((v.first_seq, v.last_seq), (Some(1), Some(9)));
    assert_eq!(v.hash_at(9), Some(head.hash.as_str()));
    // The same files named one by one, in any order.
    let files = vec![
        path.clone(),
        dir.join("audit.jsonl.1"),
        dir.join("audit.jsonl.9"),
    ];
    assert!(verify_chain(&files, |_| {}).unwrap().is_intact());
}

#[test]
fn a_file_missing_from_the_set_is_named_as_missing_records() {
    let dir = TempDir::new("chain", "gap");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 3); // seq 1-3, then audit.jsonl.2
    rotate(&log, &dir.join("audit.jsonl.2"));
    write(&log, 10, 2); // 4 (log_continued), 5-6, then audit.jsonl.1
    rotate(&log, &dir.join("audit.jsonl.1"));
    write(&log, 20, 1); // 7 (log_continued), 8
    std::fs::remove_file(dir.join("audit.jsonl.1")).unwrap();
    let v = verify_chain(&[dir.path().to_path_buf()], |_| {}).unwrap();
    let problems = &v.verification.problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::MissingRecords);
    assert_eq!(problems[0].seq, Some(4));
    assert!(
        problems[0].message.contains("records from seq 4 missing"),
        "{}",
        problems[0].message
    );
}

#[test]
fn anchors_confirm_the_log_and_catch_truncation_and_recomputed_chains() {
    let dir = TempDir::new("chain", "anchors");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 10);
    let original = entries(&path);
    let chain = original[0].hash.clone();
    let anchors = vec![
        anchor(&chain, 3, &original[2].hash),
        anchor(&chain, 8, &original[7].hash),
        anchor("another-chain", 50, "ff"),
    ];
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    let check = v.check_anchors(&anchors, &AnchorRules::default());
    assert!(check.is_consistent(), "{:?}", check.problems);
    assert_eq!(check.compared, 2);
    assert_eq!(check.confirmed, Some((8, ts(8))));
    assert_eq!(
        check.other_chains,
        vec![("another-chain".to_owned(), 50, ts(50))]
    );

    // Cut short, as `head -n 5` would.
    let cut = dir.join("cut.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let head5: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cut, head5).unwrap();
    let v = verify_chain(std::slice::from_ref(&cut), |_| {}).unwrap();
    assert!(v.is_intact(), "the file alone looks fine");
    let check = v.check_anchors(&anchors, &AnchorRules::default());
    assert_eq!(check.problems.len(), 1, "{:?}", check.problems);
    assert_eq!(check.problems[0].kind, ProblemKind::MissingRecords);
    assert_eq!(check.problems[0].seq, Some(6));
    assert!(
        check.problems[0]
            .message
            .starts_with("records from seq 6 missing: seq 8 was anchored at")
    );
    assert_eq!(check.confirmed, Some((3, ts(3))));

    // Record 5 removed and every hash recomputed.
    let forged = dir.join("forged.jsonl");
    forge(&original, 5, &forged);
    let v = verify_chain(std::slice::from_ref(&forged), |_| {}).unwrap();
    assert!(v.is_intact(), "a recomputed chain verifies on its own");
    assert_eq!(v.chain.as_deref(), Some(chain.as_str()));
    let check = v.check_anchors(&anchors, &AnchorRules::default());
    let kinds: Vec<_> = check.problems.iter().map(|p| (p.kind, p.seq)).collect();
    assert_eq!(kinds, vec![(ProblemKind::AnchorMismatch, Some(4))]);
    assert!(
        check.problems[0]
            .message
            .starts_with("record seq 8 is not the record anchored at"),
        "{}",
        check.problems[0].message
    );
}

#[test]
fn signed_checkpoints_verify_and_fail_for_a_wrong_key_a_flipped_byte_and_a_forged_chain() {
    let dir = TempDir::new("chain", "signed");
    let key_path = dir.join("checkpoint.key");
    let key = CheckpointKey::generate().unwrap();
    let public_path = key.write(&key_path).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let key = CheckpointKey::load(&key_path).unwrap();
    let public = crate::PublicKey::load(&public_path).unwrap();
    assert!(
        key.write(&key_path).is_err(),
        "an existing key is never overwritten"
    );

    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 4);
    log.append(key.checkpoint(&log.head().unwrap(), ts(5)))
        .unwrap(); // seq 5 covers 4
    write(&log, 6, 3); // 6-8
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    assert!(v.is_intact());
    let check = v.check_signatures(&public);
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(
        (check.valid, check.signed_up_to, check.unsigned_after),
        (1, Some(4), 4)
    );

    let other = CheckpointKey::generate().unwrap().public();
    let check = v.check_signatures(&other);
    assert_eq!(check.valid, 0);
    assert!(
        check.problems[0].message.contains("does not verify"),
        "{:?}",
        check.problems
    );

    // One byte of the signature flipped (and the line's hash recomputed, so only the
    // signature tells).
    let original = entries(&path);
    let mut flipped: Vec<Entry> = original.clone();
    let detail = flipped[4].detail.as_mut().unwrap();
    let sig = detail["signature"].as_str().unwrap().to_owned();
    let first = if sig.starts_with('0') { "1" } else { "0" };
    detail["signature"] = format!("{first}{}", &sig[1..]).into();
    let flipped_path = dir.join("flipped.jsonl");
    forge(&flipped, 0, &flipped_path);
    let v = verify_chain(std::slice::from_ref(&flipped_path), |_| {}).unwrap();
    assert!(v.is_intact());
    let check = v.check_signatures(&public);
    assert_eq!(check.valid, 0);
    assert_eq!(check.problems[0].kind, ProblemKind::BadCheckpoint);

    // Record 2 removed and the chain recomputed: the signed head is no longer in the log.
    let forged = dir.join("forged.jsonl");
    forge(&original, 2, &forged);
    let v = verify_chain(std::slice::from_ref(&forged), |_| {}).unwrap();
    let check = v.check_signatures(&public);
    assert_eq!(check.valid, 0);
    assert!(
        check.problems[0]
            .message
            .contains("is not the record signed"),
        "{:?}",
        check.problems
    );
}

#[test]
fn files_from_before_chain_names_stay_in_the_set_and_another_chains_file_is_left_out() {
    let dir = TempDir::new("chain", "legacy");
    let first = dir.join("audit.jsonl.1");
    let log = AuditLog::open(&first).unwrap();
    write(&log, 100, 3);
    let last = entries(&first).pop().unwrap();
    // A continuation as written before chain names: no "chain" in its detail.
    let continued = Record::new(ts(200), Event::LogContinued).with_detail(serde_json::json!({
        "previous_seq": 3,
        "previous_hash": last.hash,
    }));
    let (line4, hash4) = crate::line::seal(4, &last.hash, &continued).unwrap();
    let (line5, _) = crate::line::seal(
        5,
        &hash4,
        &Record::new(ts(201), Event::SessionReported).with_reason("after"),
    )
    .unwrap();
    let second = dir.join("audit.jsonl");
    std::fs::write(&second, [line4, line5].concat()).unwrap();
    // Another agent's log, begun earlier.
    let other = dir.join("other.jsonl");
    let other_log = AuditLog::open(&other).unwrap();
    write(&other_log, 0, 2);

    let v = verify_chain(&[dir.path().to_path_buf()], |_| {}).unwrap();
    assert_eq!(v.chain.as_deref(), Some(entries(&first)[0].hash.as_str()));
    assert_eq!(v.files.len(), 2, "{:?}", v.files);
    assert_eq!(v.last_seq, Some(5));
    let problems = &v.verification.problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::OtherChain);
    assert!(
        problems[0].message.contains("other.jsonl"),
        "{}",
        problems[0].message
    );
}
