//! The forger's attacks on anchors: a replaced log, a log cut from the front, anchors stored
//! after the fact.

use curfew_testkit::TempDir;
use jiff::SignedDuration;

use crate::chain_tests::{anchor, entries, rotate, ts, write};
use crate::{Anchor, AnchorRules, AuditLog, ProblemKind, verify_chain};

fn kinds(check: &crate::AnchorCheck) -> Vec<ProblemKind> {
    check.problems.iter().map(|p| p.kind).collect()
}

fn from(a: Anchor, by: &str, origin: Option<&str>) -> Anchor {
    Anchor {
        by: by.to_owned(),
        origin: origin.map(str::to_owned),
        ..a
    }
}

#[test]
fn a_replaced_log_is_contradicted_by_the_old_chains_anchors_from_the_same_place() {
    let dir = TempDir::new("chain", "replaced");
    let old = dir.join("old.jsonl");
    let log = AuditLog::open(&old).unwrap();
    write(&log, 0, 5);
    let old_entries = entries(&old);
    let old_chain = old_entries[0].hash.clone();
    // The agent stopped, `rm audit.jsonl`, restarted: a new chain, anchored as it goes.
    let new = dir.join("audit.jsonl");
    let log = AuditLog::open(&new).unwrap();
    write(&log, 100, 5);
    let new_entries = entries(&new);
    let chain = new_entries[0].hash.clone();
    assert_ne!(chain, old_chain);
    let mut anchors = vec![anchor(&old_chain, 4, &old_entries[3].hash)];
    let mut theirs = anchor(&chain, 5, &new_entries[4].hash);
    theirs.at = ts(105);
    anchors.push(theirs);
    let v = verify_chain(std::slice::from_ref(&new), |_| {}).unwrap();
    assert!(v.is_intact());
    let check = v.check_anchors(&anchors, &AnchorRules::default());
    assert_eq!(kinds(&check), vec![ProblemKind::ReplacedChain]);
    let message = &check.problems[0].message;
    assert!(message.starts_with(&format!("chain {old_chain} was anchored in")));
    assert!(
        message.contains(&format!("--other-chain {old_chain}")),
        "{message}"
    );

    // Acknowledged as another agent's chain, or its files given too: no contradiction.
    let rules = AnchorRules {
        other_chains: vec![old_chain.clone()],
        ..AnchorRules::default()
    };
    let check = v.check_anchors(&anchors, &rules);
    assert!(check.is_consistent(), "{:?}", check.problems);
    assert_eq!(check.acknowledged, vec![old_chain.clone()]);
    let both = verify_chain(&[old.clone(), new.clone()], |_| {}).unwrap();
    assert_eq!(both.other_file_chains, vec![old_chain.clone()]);
    let check = both.check_anchors(&anchors, &AnchorRules::default());
    assert!(!kinds(&check).contains(&ProblemKind::ReplacedChain));

    // Another role, or another address: another place, not held against this log.
    for (by, origin) in [("someone_else", Some("10.0.0.5")), ("curfew_agent", None)] {
        let moved = vec![from(anchors[0].clone(), by, origin), anchors[1].clone()];
        let check = v.check_anchors(&moved, &AnchorRules::default());
        assert!(
            check.is_consistent(),
            "{by} {origin:?}: {:?}",
            check.problems
        );
    }
    // Both over a Unix socket (no address): the same place.
    let local = vec![
        from(anchors[0].clone(), "curfew_agent", None),
        from(anchors[1].clone(), "curfew_agent", None),
    ];
    let check = v.check_anchors(&local, &AnchorRules::default());
    assert_eq!(kinds(&check), vec![ProblemKind::ReplacedChain]);

    // A chain begun after this log's last record (e.g. this is the old log): not this log's
    // contradiction.
    let v_old = verify_chain(std::slice::from_ref(&old), |_| {}).unwrap();
    let check = v_old.check_anchors(&anchors, &AnchorRules::default());
    assert!(check.is_consistent(), "{:?}", check.problems);

    // Replaced and never anchored: the verifier's own place tells.
    let only_old = vec![anchors[0].clone()];
    let check = v.check_anchors(&only_old, &AnchorRules::default());
    assert!(
        check.is_consistent(),
        "no place known, nothing to hold against it"
    );
    let rules = AnchorRules {
        verifier: Some(("curfew_agent".to_owned(), Some("10.0.0.5".to_owned()))),
        ..AnchorRules::default()
    };
    let check = v.check_anchors(&only_old, &rules);
    assert_eq!(kinds(&check), vec![ProblemKind::ReplacedChain]);
}

#[test]
fn an_emptied_log_is_contradicted_by_anchors_from_the_verifiers_place() {
    let dir = TempDir::new("chain", "emptied");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 5);
    let e = entries(&path);
    let anchors = vec![anchor(&e[0].hash, 5, &e[4].hash)];
    std::fs::write(&path, "").unwrap(); // `: > audit.jsonl`
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    assert!(v.is_intact(), "an empty file alone looks fine");
    let rules = AnchorRules {
        verifier: Some(("curfew_agent".to_owned(), Some("10.0.0.5".to_owned()))),
        ..AnchorRules::default()
    };
    let check = v.check_anchors(&anchors, &rules);
    assert_eq!(kinds(&check), vec![ProblemKind::ReplacedChain]);
    assert!(
        check.problems[0]
            .message
            .contains("this log holds no record")
    );
}

#[test]
fn a_log_cut_from_the_front_is_missing_the_records_anchored_before_it() {
    let dir = TempDir::new("chain", "front");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 10);
    let e = entries(&path);
    let chain = e[0].hash.clone();
    let anchors = vec![anchor(&chain, 3, &e[2].hash), anchor(&chain, 8, &e[7].hash)];
    // Rotated; the rotated file deleted.
    rotate(&log, &dir.join("audit.jsonl.1"));
    let mut last = anchor(&chain, 11, &entries(&path)[0].hash);
    last.at = ts(500);
    let mut anchors = anchors;
    anchors.push(last);
    std::fs::remove_file(dir.join("audit.jsonl.1")).unwrap();
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    assert_eq!(v.first_seq, Some(11));
    let check = v.check_anchors(&anchors, &AnchorRules::default());
    assert_eq!(kinds(&check), vec![ProblemKind::MissingRecords]);
    assert_eq!(check.problems[0].seq, Some(1));
    let message = &check.problems[0].message;
    assert!(
        message.starts_with(&format!(
            "records seq 1..10, anchored from {} to {} in target \"t\", are not in the files given",
            ts(3),
            ts(8)
        )),
        "{message}"
    );
    // A retention boundary acknowledged: the anchors before it are only counted.
    let rules = AnchorRules {
        from_seq: Some(11),
        ..AnchorRules::default()
    };
    let check = v.check_anchors(&anchors, &rules);
    assert!(check.is_consistent(), "{:?}", check.problems);
    assert_eq!(
        (check.before_files, check.confirmed),
        (2, Some((11, ts(500))))
    );
    // A boundary earlier than the files given still leaves records missing.
    let rules = AnchorRules {
        from_seq: Some(5),
        ..AnchorRules::default()
    };
    let check = v.check_anchors(&anchors, &rules);
    assert_eq!(kinds(&check), vec![ProblemKind::MissingRecords]);
    assert!(check.problems[0].message.starts_with("records seq 5..10"));
}

#[test]
fn anchors_stored_after_the_fact_confirm_nothing() {
    let dir = TempDir::new("chain", "late");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 5);
    let e = entries(&path);
    let mut late = anchor(&e[0].hash, 5, &e[4].hash);
    late.at = ts(4) + SignedDuration::from_mins(10);
    let on_time = anchor(&e[0].hash, 2, &e[1].hash);
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    let check = v.check_anchors(&[on_time, late.clone()], &AnchorRules::default());
    assert_eq!(kinds(&check), vec![ProblemKind::LateAnchor]);
    assert_eq!((check.late, check.confirmed), (1, Some((2, ts(2)))));
    assert!(
        check.problems[0]
            .message
            .contains("more than 2 min later): anchored after the fact"),
        "{}",
        check.problems[0].message
    );
    // Within a longer limit (a slow interval), on time.
    let rules = AnchorRules {
        late_after: SignedDuration::from_mins(15),
        ..AnchorRules::default()
    };
    let check = v.check_anchors(&[late], &rules);
    assert!(check.is_consistent());
    assert_eq!(check.confirmed.map(|c| c.0), Some(5));
}

#[test]
fn a_record_claiming_the_highest_seq_does_not_panic_the_verifier() {
    let dir = TempDir::new("chain", "maxseq");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 3);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"seq\":2,", &format!("\"seq\":{},", u64::MAX));
    std::fs::write(&path, text).unwrap();
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.verification.records, 3);
}

#[test]
fn keygen_never_writes_through_a_symlink_planted_at_the_public_key_path() {
    let dir = TempDir::new("chain", "keysymlink");
    let victim = dir.join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    let key_path = dir.join("checkpoint.key");
    std::os::unix::fs::symlink(&victim, dir.join("checkpoint.key.pub")).unwrap();
    let error = crate::CheckpointKey::generate()
        .unwrap()
        .write(&key_path)
        .unwrap_err();
    assert!(error.to_string().contains("never overwritten"), "{error}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(
        !key_path.exists(),
        "no private key left without its public half"
    );
}

#[test]
fn a_private_key_given_as_the_public_key_is_refused() {
    let dir = TempDir::new("chain", "privaspub");
    let key_path = dir.join("checkpoint.key");
    let key = crate::CheckpointKey::generate().unwrap();
    let public_path = key.write(&key_path).unwrap();
    let error = crate::PublicKey::load(&key_path).unwrap_err();
    assert!(matches!(error, crate::KeyError::Private(_)), "{error}");
    assert!(crate::PublicKey::load(&public_path).is_ok());
    // Without the .pub beside it, the log's checkpoints tell.
    std::fs::remove_file(&public_path).unwrap();
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 2);
    log.append(key.checkpoint(&log.head().unwrap(), ts(3)))
        .unwrap();
    let v = verify_chain(std::slice::from_ref(&path), |_| {}).unwrap();
    let error = v.load_public_key(&key_path).unwrap_err();
    assert!(matches!(error, crate::KeyError::Private(_)), "{error}");
    std::fs::write(&public_path, format!("{}\n", key.public_hex())).unwrap();
    assert!(v.load_public_key(&public_path).is_ok());
}

#[test]
fn a_damaged_first_line_leaves_the_chain_unknown_and_says_so() {
    let dir = TempDir::new("chain", "damagedfirst");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    write(&log, 0, 3);
    assert!(!log.chain_unknown());
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("garbage{}", &text[1..])).unwrap();
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.head(), None, "nothing to anchor");
    assert!(log.chain_unknown(), "but the agent can tell why");
}
