//! A real full disk (a small tmpfs, filled up): the writer refuses appends after the failed
//! write, leaves no partial record behind, keeps the outcome of the action under way, and
//! resumes when there is room again, so the log verifies afterwards.
//!
//! Mounting needs root (as in CI); elsewhere the test fails and says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{record, session, ts};
use curfew_audit::{AuditLog, Event, Record, verify};
use curfew_testkit::TempDir;

/// A tmpfs of `size` bytes mounted on a fresh directory; unmounted when dropped, then the
/// directory removed (also when mounting failed).
struct Tmpfs(TempDir);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let dir = TempDir::new("audit-tmpfs", name);
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "this test fills a small tmpfs to make writes really fail, and mounting one failed ({status:?}): run it as root (or with CAP_SYS_ADMIN)"
        );
        Tmpfs(dir)
    }

    /// Fill the file system up with a file at `filler`.
    fn fill(&self, filler: &Path) {
        let mut file = fs::File::create(filler).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_stops_appends_and_they_resume_with_the_kept_outcomes_when_there_is_room() {
    let fs_ = Tmpfs::mount("full", "256k");
    let path = fs_.0.join("audit.jsonl");
    let filler = fs_.0.join("filler");
    let log = AuditLog::open(&path).unwrap();
    let started = log
        .append(
            Record::new(ts(1), Event::TerminationIntent)
                .with_target("prod")
                .with_session(session(7)),
        )
        .unwrap();
    fs_.fill(&filler);
    // The log's last page may still have room: append until it has none.
    let mut n = 2;
    let failure = loop {
        match log.append(record(n)) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1000, "the log never filled up");
    };
    assert!(failure.to_string().contains("No space left"), "{failure}");
    let len = fs::metadata(&path).unwrap().len();
    let intact_before = verify(&path).unwrap();
    assert!(
        intact_before
            .problems
            .iter()
            .all(|p| p.kind == curfew_audit::ProblemKind::IntentWithoutOutcome),
        "no partial record may stay: {:?}",
        intact_before.problems
    );

    // Refused from now on (no intent can be written, so nothing is done), and loud.
    assert!(log.append(record(0)).is_err());
    assert!(log.check_writable().is_err());
    let outcome = Record::new(ts(3), Event::SessionTerminated)
        .with_target("prod")
        .with_session(session(7))
        .with_result("ended")
        .with_intent(started.seq);
    let kept = log.append_outcomes(vec![outcome]).unwrap_err();
    assert!(kept.to_string().contains("kept in memory"), "{kept}");
    // Retrying while the disk is still full fails again and leaves the file as it was.
    assert!(log.recover(ts(4), false).is_err());
    assert!(log.needs_recovery());
    assert_eq!(fs::metadata(&path).unwrap().len(), len);

    fs::remove_file(&filler).unwrap();
    let recovered = log.recover(ts(5), false).unwrap();
    let events: Vec<Event> = recovered.written.iter().map(|(r, _)| r.event).collect();
    assert_eq!(events, [Event::AuditResumed, Event::SessionTerminated]);
    let resumed = recovered.written[0].0.reason.clone().unwrap();
    assert!(resumed.contains("No space left"), "{resumed}");
    assert_eq!(log.check_writable(), Ok(()));
    log.append(record(6)).unwrap();
    let v = verify(&path).unwrap();
    assert!(v.is_intact(), "{:#?}", v.problems);
}
