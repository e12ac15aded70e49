//! A log moved away, deleted or truncated under the writer: refused before anything is
//! appended, then continued in a new file whose first record links to the old file's last.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{TempDir, record, session, ts};
use curfew_audit::{
    AuditError, AuditLog, Continuation, Event, ProblemKind, Record, continuation, read, verify,
};

fn intent(n: i64) -> Record {
    Record::new(ts(n), Event::TerminationIntent)
        .with_target("prod")
        .with_rule("idle")
        .with_session(session(4000 + n))
}

fn outcome(n: i64, intent: u64) -> Record {
    Record::new(ts(n), Event::SessionTerminated)
        .with_target("prod")
        .with_rule("idle")
        .with_session(session(4000 + n))
        .with_result("ended")
        .with_intent(intent)
}

fn events(path: &Path) -> Vec<String> {
    read(path)
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().event)
        .collect()
}

fn assert_intact(path: &Path) {
    let v = verify(path).unwrap();
    assert!(v.is_intact(), "{}: {:#?}", path.display(), v.problems);
}

/// `first` then `second`, as one file.
fn joined(dir: &TempDir, first: &Path, second: &Path) -> std::path::PathBuf {
    let both = dir.log().with_file_name("joined.jsonl");
    let mut bytes = fs::read(first).unwrap();
    bytes.extend(fs::read(second).unwrap());
    fs::write(&both, bytes).unwrap();
    both
}

#[test]
fn copytruncate_then_reopen_continues_the_chain_in_the_same_file() {
    let dir = TempDir::new("copytruncate");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    log.append(record(1)).unwrap();
    let started = log.append(intent(2)).unwrap();
    // logrotate copytruncate: copy, then truncate in place.
    let rotated = path.with_file_name("audit.jsonl.1");
    fs::copy(&path, &rotated).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();

    // Noticed before anything is appended; nothing is written into the truncated file.
    let err = log.append(intent(3)).unwrap_err();
    assert!(
        matches!(&err, AuditError::Detached { reason, .. } if reason.contains("shrank")),
        "{err}"
    );
    assert!(log.check_writable().is_err());
    assert!(log.append(record(3)).is_err(), "refused until recovered");
    // The outcome of the action under way is kept, not lost.
    let kept = log.append_outcomes(vec![outcome(4, started.seq)]);
    assert!(kept.unwrap_err().to_string().contains("kept in memory"));
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);

    let recovered = log.recover(ts(5), false).unwrap();
    let written: Vec<(Event, u64)> = recovered
        .written
        .iter()
        .map(|(r, a)| (r.event, a.seq))
        .collect();
    assert_eq!(
        written,
        [(Event::LogContinued, 3), (Event::SessionTerminated, 4)]
    );
    assert_eq!(log.check_writable(), Ok(()));
    assert!(!log.needs_recovery());
    assert_eq!(log.append(record(6)).unwrap().seq, 5);

    // The new file verifies on its own as a continuation; the copy verifies as far as it
    // goes (its intent's outcome came after the copy); both in order are one chain.
    assert_intact(&path);
    assert_eq!(
        continuation(&path).unwrap(),
        Some(Continuation {
            seq: 2,
            hash: started.hash.clone()
        })
    );
    let old = verify(&rotated).unwrap();
    let kinds: Vec<ProblemKind> = old.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::IntentWithoutOutcome]);
    assert_intact(&joined(&dir, &rotated, &path));
    assert_eq!(continuation(&rotated).unwrap(), None);
}

#[test]
fn a_log_moved_away_is_finished_then_continued_in_a_new_file() {
    let dir = TempDir::new("moved");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    log.append(record(1)).unwrap();
    let started = log.append(intent(2)).unwrap();
    let rotated = path.with_file_name("audit.jsonl.1");
    fs::rename(&path, &rotated).unwrap();

    // Noticed before anything needs writing (the agent looks a few times a second).
    assert!(log.needs_recovery());
    let err = log.append(intent(3)).unwrap_err();
    assert!(err.to_string().contains("moved away"), "{err}");
    // Without SIGHUP nothing is created; and while an action is under way its outcome is
    // awaited, so that it goes next to its intent.
    assert!(log.recover(ts(3), false).is_err());
    assert!(!path.exists());
    let waiting = log.recover(ts(4), true).unwrap_err();
    assert!(
        waiting.to_string().contains("waiting for the outcome"),
        "{waiting}"
    );
    log.append_outcomes(vec![outcome(5, started.seq)]).unwrap();
    assert_eq!(events(&rotated).last().unwrap(), "session_terminated");

    // The SIGHUP asked for a new file: it is created now that nothing is under way.
    let recovered = log.recover(ts(6), false).unwrap();
    assert_eq!(recovered.written.len(), 1);
    assert_eq!(recovered.written[0].0.event, Event::LogContinued);
    assert_eq!(recovered.written[0].1.seq, 4);
    log.append(record(7)).unwrap();
    assert_eq!(events(&path), ["log_continued", "session_reported"]);
    assert_intact(&rotated);
    assert_intact(&path);
    assert_intact(&joined(&dir, &rotated, &path));
}

#[test]
fn an_action_under_way_does_not_hold_up_a_rotation_for_ever() {
    let dir = TempDir::new("stuck");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    let started = log.append(intent(1)).unwrap();
    fs::rename(&path, path.with_file_name("audit.jsonl.1")).unwrap();
    assert!(log.recover(ts(2), true).is_err());
    // 30 s later the new file is started anyway; the outcome goes there, after the link.
    let recovered = log.recover(ts(33), false).unwrap();
    assert_eq!(recovered.written[0].0.event, Event::LogContinued);
    log.append_outcomes(vec![outcome(34, started.seq)]).unwrap();
    assert_intact(&path);
}

#[test]
fn a_deleted_log_is_recreated_on_reopen_with_the_outcomes_kept_meanwhile() {
    let dir = TempDir::new("deleted");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    let started = log.append(intent(1)).unwrap();
    fs::remove_file(&path).unwrap();
    // Records into an unlinked file would be lost: kept instead.
    assert!(log.append_outcomes(vec![outcome(2, started.seq)]).is_err());
    let err = log.append(intent(3)).unwrap_err();
    assert!(err.to_string().contains("not writable"), "{err}");
    let refused = log.recover(ts(4), false).unwrap_err();
    assert!(refused.to_string().contains("SIGHUP"), "{refused}");
    assert!(log.check_writable().unwrap_err().contains("kept in memory"));

    let recovered = log.recover(ts(5), true).unwrap();
    let events: Vec<Event> = recovered.written.iter().map(|(r, _)| r.event).collect();
    assert_eq!(events, [Event::LogContinued, Event::SessionTerminated]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_intact(&path);
    assert_eq!(log.append(record(6)).unwrap().seq, 4);
}

#[test]
fn a_sighup_with_nothing_wrong_writes_nothing() {
    let dir = TempDir::new("noop");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    log.append(record(1)).unwrap();
    assert_eq!(log.recover(ts(2), true).unwrap().written, []);
    assert_eq!(events(&path), ["session_reported"]);
}

#[test]
fn a_file_cut_at_its_head_is_still_reported_unless_it_begins_with_a_continuation() {
    let dir = TempDir::new("head");
    let path = dir.log();
    let log = AuditLog::open(&path).unwrap();
    log.append(record(1)).unwrap();
    fs::rename(&path, path.with_file_name("old.jsonl")).unwrap();
    log.recover(ts(2), true).unwrap();
    log.append(record(3)).unwrap();
    log.append(record(4)).unwrap();
    assert_intact(&path);

    // Without its first line (the continuation), the file is cut short at its head.
    let lines = common::lines(&path);
    common::write_lines(&path, &lines[1..]);
    let v = verify(&path).unwrap();
    assert_eq!(
        v.problems[0].kind,
        ProblemKind::BrokenLink,
        "{:?}",
        v.problems
    );
    assert_eq!(continuation(&path).unwrap(), None);

    // A continuation that was edited does not count as one.
    let forged = lines[0].replace("log_continued", "log_continuer");
    common::write_lines(&path, &[forged, lines[1].clone()]);
    assert!(!verify(&path).unwrap().is_intact());
    assert_eq!(continuation(&path).unwrap(), None);
}
