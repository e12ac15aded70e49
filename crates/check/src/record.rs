//! The audit records of a `curfew check`: what was found on each target, written to the audit
//! log so that `curfew report` can show it.

use jiff::Timestamp;

use crate::{Checked, Status, any_failed};

/// One `configuration_checked` record per target, with the findings, for `curfew report`;
/// `policy_sha256` is the hash of the policy the check ran with.
pub fn configuration_records(
    results: &[Checked],
    policy_sha256: &str,
) -> Vec<curfew_audit::Record> {
    results
        .iter()
        .map(|r| {
            let count = |s: Status| r.findings.iter().filter(|f| f.status == s).count();
            curfew_audit::Record::new(Timestamp::now(), curfew_audit::Event::ConfigurationChecked)
                .with_target(&r.target)
                .with_result(if any_failed(&r.findings) {
                    "failed"
                } else {
                    "passed"
                })
                .with_reason(format!(
                    "curfew check: {} failed, {} unknown, {} passed",
                    count(Status::Fail),
                    count(Status::Unknown),
                    count(Status::Pass)
                ))
                .with_detail(serde_json::json!({
                    "actor": curfew_audit::current_actor(Some(&r.db_role)).to_json(),
                    "server": r.server,
                    "policy_sha256": policy_sha256,
                    "findings": r.findings,
                }))
        })
        .collect()
}
