//! The audit records of a `curfew verify`: the evidence of each target's live test, written to
//! the audit log so that `curfew report` can show it.

use curfew_policy::{Limit, LoadedPolicy};
use jiff::Timestamp;

use crate::live::Verified;
use crate::{RuleResult, Status};

/// One `control_verified` record per target, with the evidence, for `curfew report`; the
/// actor is the person running this process, with the role the target's URL connects as.
pub fn control_records(
    verified: &[Verified],
    loaded: &LoadedPolicy,
    max_wait: Limit,
    full: bool,
) -> Vec<curfew_audit::Record> {
    verified
        .iter()
        .map(|v| {
            let all: Vec<RuleResult> = v
                .results
                .iter()
                .chain(&v.mechanisms)
                .chain(v.gateway.iter().flat_map(|g| &g.results))
                .cloned()
                .collect();
            let failed = all.iter().any(|r| r.status == Status::Fail);
            curfew_audit::Record::new(Timestamp::now(), curfew_audit::Event::ControlVerified)
                .with_target(&v.target)
                .with_result(if failed { "failed" } else { "passed" })
                .with_reason(format!("curfew verify: {}", crate::summary(&all)))
                .with_detail(serde_json::json!({
                    // Who ran it: the real uid's user and the role the target's URL connects as.
                    "actor": curfew_audit::current_actor(
                        loaded.policy.targets.iter().find(|t| t.name == v.target).and_then(|t| t.url.login_role.as_deref()),
                    ).to_json(),
                    "server": v.server,
                    "agent": v.agent,
                    // The hash `policy_loaded` records carry: `report` compares the two.
                    "policy_sha256": loaded.sha256,
                    "max_wait": max_wait.to_string(),
                    "full": full,
                    "counts": crate::counts(&all),
                    "rules": v.results,
                    "mechanisms": v.mechanisms,
                    "cleanup": v.cleanup,
                    // What `rules` and `mechanisms` are for; the gateway's own results apart.
                    "enforcement_point": v.enforcement_point,
                    "gateway": v.gateway,
                }))
        })
        .collect()
}
