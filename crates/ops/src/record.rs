//! A command's result appended to the audit log (`check`, `verify`), for `curfew report`; the
//! command's own outcome does not depend on it.

use std::path::{Path, PathBuf};

use curfew_audit::{AuditError, AuditLog, Record};

/// Whether a command's result reached the audit log.
#[derive(Debug)]
pub enum ResultRecording {
    /// Appended.
    Recorded,
    /// No audit log was named (no `audit_log` in `[agent]`, no `--audit-log`).
    NoAuditLog,
    /// Appending failed.
    Failed {
        /// The log.
        path: PathBuf,
        /// Why.
        error: AuditError,
    },
}

/// Append `records` to the audit log `audit_log`, if one is named.
pub fn record_results(audit_log: Option<&Path>, records: Vec<Record>) -> ResultRecording {
    let Some(path) = audit_log else {
        return ResultRecording::NoAuditLog;
    };
    match AuditLog::open(path).and_then(|log| log.append_all(records)) {
        Ok(_) => ResultRecording::Recorded,
        Err(error) => ResultRecording::Failed {
            path: path.to_owned(),
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::*;

    fn records() -> Vec<Record> {
        vec![Record::new(
            jiff::Timestamp::UNIX_EPOCH,
            curfew_audit::Event::AgentStarted,
        )]
    }

    #[test]
    fn without_a_log_nothing_is_recorded_and_it_says_so() {
        assert!(matches!(
            record_results(None, records()),
            ResultRecording::NoAuditLog
        ));
    }

    #[test]
    fn a_log_that_cannot_be_opened_is_a_failure_naming_it() {
        let dir = curfew_testkit::TempDir::new("ops", "record_unopenable");
        let path = dir.join("no-such-dir").join("audit.jsonl");
        match record_results(Some(&path), records()) {
            ResultRecording::Failed { path: named, .. } => assert_eq!(named, path),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_records_are_appended_to_a_verifiable_chain() {
        let dir = curfew_testkit::TempDir::new("ops", "record_appended");
        let path = dir.join("audit.jsonl");
        assert!(matches!(
            record_results(Some(&path), records()),
            ResultRecording::Recorded
        ));
        assert!(matches!(
            record_results(Some(&path), records()),
            ResultRecording::Recorded
        ));
        let verified = curfew_audit::verify(&path).unwrap();
        assert_eq!(verified.records, 2, "{verified:?}");
        assert!(verified.is_intact(), "{verified:?}");
    }
}
