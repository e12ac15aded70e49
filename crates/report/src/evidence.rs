//! What an assessor needs besides the terminations: everything the log records that bears on
//! completeness (drift corrections, rejected policies, skipped terminations, worker failures,
//! squatters, warnings, canaries counted apart), what curfew cannot end and what the site must
//! do instead, the policy's metadata, the mapping from each requirement to the evidence that
//! answers it, whether the latest verify tested the policy in force, and a sign-off block.

use curfew_audit::Entry;
use curfew_policy::Policy;
use jiff::Timestamp;
use serde_json::Value;

use crate::evidence_model::{
    Compensating, Completeness, Evidence, Item, LISTED, Listed, Metadata, RuleControls, SignOff,
    VerifyCurrency,
};
use crate::mapping::{LogFacts, control_mapping};
use crate::model::{CheckRun, VerifyRun};

/// The evidence sections from the input and the period's records. `latest_loaded`: the hash
/// of the policy the log last recorded as loaded.
pub(crate) fn assemble(
    input: &crate::Input<'_>,
    period: &[&Entry],
    from: Option<Timestamp>,
    (checks, verifications): (&[CheckRun], &[VerifyRun]),
    terminated: u64,
    latest_loaded: Option<&str>,
) -> Evidence {
    let to = input.generated_at;
    let coverage = crate::coverage::coverage(
        input.entries,
        &input.explanation.targets,
        from.unwrap_or(to).min(to),
        to,
    );
    let in_force = latest_loaded.unwrap_or(input.policy_sha256);
    let verify_currency = verify_currency(input.entries, verifications, in_force);
    let file_in_force = latest_loaded.map(|h| h == input.policy_sha256);
    Evidence {
        control_mapping: control_mapping(
            input.policy,
            &coverage,
            &verify_currency,
            checks,
            &LogFacts {
                file_in_force,
                terminated,
                doubt: log_doubt(input),
                now: input.generated_at,
            },
        ),
        coverage,
        completeness: completeness(period),
        compensating: compensating(input.policy, &input.explanation.exemptions, period),
        metadata: metadata(input.policy),
        verify_currency,
        sign_off: sign_off(input.policy),
    }
}

/// Why the log's records cannot be taken as complete and unaltered, if they cannot: a broken
/// chain, a contradiction by anchors, or no confirmation by anchors at all.
fn log_doubt(input: &crate::Input<'_>) -> Option<String> {
    if input.integrity.contradicted {
        Some("the audit log is contradicted by what was kept of it outside the log (see Audit chain): its records cannot be relied on".to_owned())
    } else if !input.verification.is_intact() || !input.integrity.problems.is_empty() {
        Some("the audit log's hash chain is broken (see Audit chain): its records cannot be relied on".to_owned())
    } else if input.integrity.anchored_up_to.is_none() {
        Some("the audit log was not confirmed by anchors kept outside it: a log cut short or rewritten would look the same".to_owned())
    } else {
        None
    }
}

/// Whether a record is about a `curfew verify` canary session: a role named the way verify
/// names its canaries (the mark, then the rule's index), not merely containing the mark.
pub(crate) fn is_canary(e: &Entry) -> bool {
    e.session
        .as_ref()
        .is_some_and(|s| curfew_policy::canary_rule(&s.role).is_some())
}

fn item(e: &Entry) -> Item {
    Item {
        seq: e.seq,
        ts: e.ts,
        target: e.target.clone(),
        rule: e.rule.clone(),
        role: e.session.as_ref().map(|s| s.role.clone()),
        result: e.result.clone(),
        reason: e.reason.clone(),
    }
}

fn listed<'e>(records: impl Iterator<Item = &'e Entry>) -> Listed {
    let mut all: Vec<&Entry> = records.collect();
    all.sort_by_key(|e| std::cmp::Reverse((e.ts, e.seq)));
    Listed {
        total: all.len() as u64,
        latest: all.into_iter().take(LISTED).map(item).collect(),
    }
}

/// The completeness section from the period's records.
pub(crate) fn completeness(period: &[&Entry]) -> Completeness {
    let of = |event: &'static str| listed(period.iter().copied().filter(move |e| e.event == event));
    let canary = |event: &str| {
        period
            .iter()
            .filter(|e| e.event == event && is_canary(e))
            .count() as u64
    };
    Completeness {
        drift_corrections: of("lock_drift_corrected"),
        rejected_policies: of("policy_rejected"),
        skipped_terminations: listed(
            period
                .iter()
                .copied()
                .filter(|e| e.event == "termination_skipped" && !is_canary(e)),
        ),
        worker_failures: of("worker_failed"),
        squatters: of("leader_squatted"),
        warnings: of("session_warned"),
        warnings_statement: "A warning is recorded for operators (a `session_warned` audit record and a metric) and sent to the hooks configured in [notify]; the agent does not reach the user, whose session gets no message from it before it ends.".to_owned(),
        canary_terminated: canary("session_terminated"),
        canary_other: canary("session_reported") + canary("termination_failed"),
    }
}

/// The compensating-controls section.
pub(crate) fn compensating(policy: &Policy, exemptions: &str, period: &[&Entry]) -> Compensating {
    let exempt_roles: Vec<String> = policy
        .exempt
        .entries
        .iter()
        .flat_map(|x| x.scope.roles.iter().map(ToString::to_string))
        .collect();
    let superuser_refusals = listed(period.iter().copied().filter(|e| {
        e.event == "termination_failed"
            && e.reason.as_deref().is_some_and(|r| r.contains("superuser"))
    }));
    let mut statement = String::from(
        "curfew does not end exempt sessions, nor the sessions of superusers (curfew's role may not signal them, and should not be one).",
    );
    if !exempt_roles.is_empty() {
        statement.push_str(&format!(
            " The policy exempts the roles {}.",
            exempt_roles.join(", ")
        ));
    }
    if superuser_refusals.total > 0 {
        statement.push_str(&format!(
            " In the period, {} session(s) due to end could not be ended because only a superuser may end them.",
            superuser_refusals.total
        ));
    }
    statement.push_str(" For these sessions the site must rely on other controls:");
    Compensating {
        exemptions: exemptions.to_owned(),
        exempt_roles,
        superuser_refusals,
        statement,
        measures: vec![
            "restrict superuser and exempt-role logins (pg_hba.conf: local or bastion only, named people, MFA) and keep them out of daily work".to_owned(),
            "set the server's own timeouts (`curfew compile` writes idle_session_timeout, idle_in_transaction_session_timeout and per-role settings with a margin above curfew's limits)".to_owned(),
            "log and review privileged sessions (log_connections, log_disconnections, pgaudit)".to_owned(),
        ],
    }
}

/// `[policy]` and the rules' controls.
pub(crate) fn metadata(policy: &Policy) -> Metadata {
    let m = &policy.meta;
    Metadata {
        owner: m.owner.clone(),
        approved_by: m.approved_by.clone(),
        version: m.version.clone(),
        effective: m.effective.clone(),
        review_by: m.review_by.clone(),
        implements: m.implements.clone(),
        rule_controls: policy
            .rules
            .iter()
            .map(|r| RuleControls {
                rule: r.name.clone(),
                controls: r.controls.clone(),
            })
            .collect(),
    }
}

/// When the policy in force (by hash) took force: the first load of the latest unbroken run
/// of loads of that hash.
fn in_force_since(entries: &[Entry], sha256: &str) -> Option<Timestamp> {
    let mut loads: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.event == "policy_loaded")
        .collect();
    loads.sort_by_key(|e| (e.ts, e.seq));
    let mut since = None;
    for e in loads {
        let hash = detail_str(e, "sha256").or_else(|| detail_str(e, "policy_sha256"));
        if hash.as_deref() == Some(sha256) {
            since.get_or_insert(e.ts);
        } else {
            since = None;
        }
    }
    since
}

fn detail_str(e: &Entry, key: &str) -> Option<String> {
    e.detail
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether each target's latest verify tested the policy in force (`in_force`: its hash).
pub(crate) fn verify_currency(
    entries: &[Entry],
    runs: &[VerifyRun],
    in_force: &str,
) -> Vec<VerifyCurrency> {
    if runs.is_empty() {
        return vec![VerifyCurrency {
            target: None,
            status: "absent".to_owned(),
            message: "no `curfew verify` is recorded: nothing shows the policy was tested live"
                .to_owned(),
        }];
    }
    let since = in_force_since(entries, in_force);
    let short = |h: &str| h.get(..12).unwrap_or(h).to_owned();
    runs.iter()
        .map(|run| {
            let tested = run
                .detail
                .as_ref()
                .and_then(|d| d.get("policy_sha256"))
                .and_then(Value::as_str);
            let (status, message) = match (tested, since) {
                (Some(h), _) if h != in_force => (
                    "other_policy",
                    format!(
                        "the latest verify tested another policy (sha256 {}), not the one in force (sha256 {}): run `curfew verify` again",
                        short(h),
                        short(in_force)
                    ),
                ),
                (None, Some(s)) if run.run.ts < s => (
                    "older_than_policy",
                    format!(
                        "the latest verify ({}) is older than the policy in force (loaded {}) and does not say which policy it tested: run `curfew verify` again",
                        run.run.ts, s
                    ),
                ),
                (Some(_), _) => ("current", "the latest verify tested the policy in force".to_owned()),
                (None, _) => (
                    "current",
                    "the latest verify ran after the policy in force was loaded (it does not record which policy it tested)".to_owned(),
                ),
            };
            VerifyCurrency {
                target: run.run.target.clone(),
                status: status.to_owned(),
                message,
            }
        })
        .collect()
}

/// The sign-off block.
pub(crate) fn sign_off(policy: &Policy) -> SignOff {
    SignOff {
        policy_approved_by: policy.meta.approved_by.clone(),
        policy_owner: policy.meta.owner.clone(),
        policy_version: policy.meta.version.clone(),
        lines: vec![
            "Assessor (name, organization)".to_owned(),
            "Date of assessment".to_owned(),
            "Signature".to_owned(),
            "System owner (name)".to_owned(),
            "Signature".to_owned(),
        ],
    }
}
