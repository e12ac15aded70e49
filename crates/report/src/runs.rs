//! The recorded runs of `curfew check` and `curfew verify` as the report shows them: kept
//! apart from the report's document so that the evidence sections and the control mapping,
//! which read them, do not depend on the document that holds those sections.

use jiff::Timestamp;
use serde::Serialize;

/// What every recorded run (`curfew check`, `curfew verify`) states about itself: the header
/// of [`CheckRun`] and [`VerifyRun`].
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The record's seq.
    pub seq: u64,
    /// When the run was recorded.
    pub ts: Timestamp,
    /// True when it ran before the period began (it is still the latest).
    pub before_period: bool,
    /// The target's name.
    pub target: Option<String>,
    /// `passed` or `failed`.
    pub result: Option<String>,
    /// The summary sentence.
    pub reason: Option<String>,
}

/// The latest `curfew check` of one target (a `configuration_checked` record).
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    /// The record's seq, time, target, result and summary (flattened into this object in JSON).
    #[serde(flatten)]
    pub run: RunRecord,
    /// The server checked.
    pub server: Option<String>,
    /// The SHA-256 of the policy the check judged against.
    pub policy_sha256: Option<String>,
    /// The findings, as recorded.
    pub findings: Vec<Finding>,
}

/// One finding of `curfew check`; fields missing from the record are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `pass`, `fail`, `unknown` or `info`.
    pub status: String,
    /// E.g. `V-261910`.
    pub id: String,
    /// What is checked.
    pub title: String,
    /// The requirement it comes from.
    pub requirement: String,
    /// What the server shows.
    pub observed: String,
    /// What the requirement asks for.
    pub expected: String,
    /// How to fix it.
    pub fix: String,
}

/// The latest `curfew verify` of one target (a `control_verified` record).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRun {
    /// The record's seq, time, target, result and summary (flattened into this object in JSON).
    #[serde(flatten)]
    pub run: RunRecord,
    /// The per-rule results found in the detail's `rules` array.
    pub rules: Vec<VerifiedRule>,
    /// The SHA-256 of the policy it tested, where the record says (not repeated in the
    /// JSON document: it is in `detail`).
    #[serde(skip)]
    pub tested_policy_sha256: Option<String>,
    /// The record's detail, as recorded.
    pub detail: Option<serde_json::Value>,
}

/// One rule's result in a `curfew verify` record; fields missing from the record are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedRule {
    /// The rule's name.
    pub rule: String,
    /// How it was tested.
    pub method: String,
    /// `pass`, `fail` or `skipped`.
    pub status: String,
    /// What was done and seen.
    pub evidence: String,
}
