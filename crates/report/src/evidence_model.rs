//! The evidence sections' data (coverage, completeness, compensating controls, policy metadata,
//! control mapping, sign-off), apart from the code that assembles them from the log: the report's
//! model and the control mapping both hold it without depending on that code.

use jiff::Timestamp;
use serde::Serialize;

use crate::coverage::Coverage;

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

/// Whether one target's latest verify tested the policy in force.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyCurrency {
    /// The target (`None`: no verify is recorded at all).
    pub target: Option<String>,
    /// `current`, `absent`, `other_policy` or `older_than_policy`.
    pub status: String,
    /// In words.
    pub message: String,
}

/// One requirement and the evidence that answers it.
#[derive(Debug, Clone, Serialize)]
pub struct ControlRow {
    /// The requirement's id, e.g. `NIST SP 800-171 3.1.11[a]`.
    pub control: String,
    /// The determining statement or check.
    pub statement: String,
    /// The sections of this report that answer it.
    pub evidence: String,
    /// Rules whose `controls` name it.
    pub rules: Vec<String>,
    /// `shown`, `partly shown` or `not shown`.
    pub status: String,
    /// What is missing for it to be shown fully (empty when nothing is).
    pub missing: String,
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
