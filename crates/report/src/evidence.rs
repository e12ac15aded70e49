//! What an assessor needs besides the terminations: everything the log records that bears on
//! completeness (drift corrections, rejected policies, skipped terminations, worker failures,
//! squatters, warnings, canaries counted apart), what curfew cannot end and what the site must
//! do instead, the policy's metadata, the mapping from each requirement to the evidence that
//! answers it, whether the latest verify tested the policy in force, and a sign-off block.

use curfew_audit::Entry;
use curfew_policy::Policy;
use jiff::Timestamp;
use serde::Serialize;

use crate::coverage::Coverage;
use crate::mapping::{ControlRow, LogFacts, VerifyCurrency, control_mapping};
use crate::runs::{CheckRun, VerifyRun};

/// How many records each list of [`Completeness`] shows (the count is of all).
pub const LISTED: usize = 20;

/// The evidence sections beyond terminations.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// When each target was enforced, and every gap.
    pub coverage: Coverage,
    /// Records bearing on completeness.
    pub completeness: Completeness,
    /// What curfew cannot end, and what the site must do instead.
    pub compensating: Compensating,
    /// `[policy]` and each rule's `controls`.
    pub metadata: Metadata,
    /// Whether the latest verify per target tested the policy in force.
    pub verify_currency: Vec<VerifyCurrency>,
    /// Each requirement and the evidence that answers it.
    pub control_mapping: Vec<ControlRow>,
    /// Who signs the report.
    pub sign_off: SignOff,
}

/// A count and the latest records of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listed {
    /// Records in the period.
    pub total: u64,
    /// The latest, newest first (at most [`LISTED`]).
    pub latest: Vec<Item>,
}

/// One record, as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The record's seq.
    pub seq: u64,
    /// When.
    pub ts: Timestamp,
    /// The target, if any.
    pub target: Option<String>,
    /// The rule, if any.
    pub rule: Option<String>,
    /// The session's role, if any.
    pub role: Option<String>,
    /// The result word, if any.
    pub result: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
}

impl Item {
    /// The column heads of a listed item, in the order of [`Item::row`].
    pub(crate) const COLUMNS: [&'static str; 6] =
        ["Time", "Target", "Rule", "Role", "Result", "Reason"];

    /// The item as a table row, each renderer escaping the texts its own way (`text`) and
    /// writing the time with `time`.
    pub(crate) fn row(
        &self,
        time: impl Fn(Timestamp) -> String,
        text: impl Fn(&Option<String>) -> String,
    ) -> Vec<String> {
        let mut row = vec![time(self.ts)];
        row.extend(
            [
                &self.target,
                &self.rule,
                &self.role,
                &self.result,
                &self.reason,
            ]
            .map(text),
        );
        row
    }
}

/// Records bearing on completeness, in the period.
#[derive(Debug, Clone, Serialize)]
pub struct Completeness {
    /// Login locks found changed by someone else and put back (`lock_drift_corrected`).
    pub drift_corrections: Listed,
    /// Policy files refused at load or reload (`policy_rejected`).
    pub rejected_policies: Listed,
    /// Terminations not done because the session changed first (`termination_skipped`).
    pub skipped_terminations: Listed,
    /// Workers that died and were restarted (`worker_failed`).
    pub worker_failures: Listed,
    /// Sessions of other roles that held curfew's leader lock (`leader_squatted`).
    pub squatters: Listed,
    /// Warnings recorded (`session_warned`).
    pub warnings: Listed,
    /// What a warning is, in words (what the running components do with it).
    pub warnings_statement: String,
    /// `curfew verify` canary sessions ended (not counted with the terminations).
    pub canary_terminated: u64,
    /// Canary sessions reported only, or whose termination failed.
    pub canary_other: u64,
}

/// What curfew cannot end.
#[derive(Debug, Clone, Serialize)]
pub struct Compensating {
    /// The policy's exemptions, as `curfew explain` states them.
    pub exemptions: String,
    /// Roles the policy exempts by name (patterns as written).
    pub exempt_roles: Vec<String>,
    /// Sessions curfew could not end because only a superuser may (from `termination_failed`).
    pub superuser_refusals: Listed,
    /// The statement: what is not covered and what the site must do instead.
    pub statement: String,
    /// What the site must do instead, one measure a line.
    pub measures: Vec<String>,
}

/// `[policy]` and the rules' `controls`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metadata {
    /// Who owns the policy.
    pub owner: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// From when it is in force.
    pub effective: Option<String>,
    /// When it must be reviewed.
    pub review_by: Option<String>,
    /// The organization's document it implements.
    pub implements: Option<String>,
    /// Each rule and the controls it names, in policy order.
    pub rule_controls: Vec<RuleControls>,
}

/// One rule's `controls`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleControls {
    /// The rule.
    pub rule: String,
    /// The controls it implements (empty: none named).
    pub controls: Vec<String>,
}

/// The sign-off block.
#[derive(Debug, Clone, Serialize)]
pub struct SignOff {
    /// Who approved the policy (from `[policy] approved_by`).
    pub policy_approved_by: Option<String>,
    /// The policy's owner.
    pub policy_owner: Option<String>,
    /// The policy's version.
    pub policy_version: Option<String>,
    /// The lines the assessor fills in.
    pub lines: Vec<String>,
}

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
        warnings_statement: warnings_statement(period),
        canary_terminated: canary("session_terminated"),
        canary_other: canary("session_reported") + canary("termination_failed"),
    }
}

/// What a warning is, as the period's records show who gave them: the agent's reach operators
/// only; the gateway's also reach the user, in the session.
fn warnings_statement(period: &[&Entry]) -> String {
    let by_gateway = period
        .iter()
        .filter(|e| {
            e.event == "session_warned"
                && e.detail
                    .as_ref()
                    .and_then(|d| d.get("by"))
                    .and_then(|b| b.as_str())
                    == Some("gateway")
        })
        .count();
    let mut statement = String::from(
        "A warning is recorded for operators (a `session_warned` audit record and a metric) and sent to the hooks configured in [notify]; the agent does not reach the user, whose session gets no message from it before it ends.",
    );
    if by_gateway > 0 {
        let (were, each) = if by_gateway == 1 {
            ("was", "it")
        } else {
            ("were", "each")
        };
        statement.push_str(&format!(
            " {by_gateway} of these {were} given by the curfew gateway, which also queued {each} to the user's session as a WARNING notice (shown by most clients at their next command; a session that ends or drops first never shows it)."
        ));
    }
    statement
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
        let detail = e.details::<curfew_audit::details::PolicyLoad>().ok();
        if detail.as_ref().and_then(|d| d.hash()) == Some(sha256) {
            since.get_or_insert(e.ts);
        } else {
            since = None;
        }
    }
    since
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
            let tested = run.tested_policy_sha256.as_deref();
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
