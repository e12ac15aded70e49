//! The writer's own tests that need its internals.

use super::*;

#[test]
fn check_writable_flags_a_log_moved_or_deleted_under_the_writer() {
    let dir = curfew_testkit::TempDir::new("audit", "moved");
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.check_writable(), Ok(()));
    std::fs::rename(&path, dir.join("audit.jsonl.1")).unwrap();
    let gone = log.check_writable().unwrap_err();
    assert!(gone.contains("moved away"), "{gone}");
    // A new file under the old name is not the one being written either.
    std::fs::write(&path, b"").unwrap();
    let replaced = log.check_writable().unwrap_err();
    assert!(replaced.contains("names another file"), "{replaced}");
}
