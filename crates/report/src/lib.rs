//! `curfew report`: one document for the assessor. The conditions under which sessions end (as
//! `curfew explain` states them), the history of the policy in force, the sessions ended by rule
//! and by day, the locks and why, the latest `curfew check` and `curfew verify` results, and
//! whether the audit chain is intact. Then the evidence beyond terminations ([`Evidence`]): the
//! coverage timeline per target from the agent's heartbeats (every gap with its cause and
//! duration, the share of the period enforced, the largest clock offset), completeness (drift
//! corrections, rejected policies, skipped terminations, worker failures, squatters, warnings;
//! `curfew verify` canaries counted apart), compensating controls for what curfew cannot end,
//! the policy's metadata and each rule's controls, whether the latest verify tested the policy
//! in force, a mapping from each requirement to the evidence, and a sign-off block.
//!
//! Pure: the caller reads the policy and the audit log and passes the time; [`build`] turns
//! them into a [`Report`], which renders as self-contained HTML ([`Report::to_html`]: no
//! script, no external asset, readable on paper), Markdown ([`Report::to_markdown`]) or JSON
//! (`serde_json::to_string_pretty(&report)`).
//!
//! ```
//! use curfew_audit::Verification;
//! use curfew_policy::{explain::explain, parse_policy};
//!
//! let policy = parse_policy("curfew.toml", "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\n", jiff::tz::db())
//!     .unwrap()
//!     .policy;
//! let explanation = explain(&policy);
//! let verification = Verification { records: 0, problems: vec![], last_hash: None };
//! let report = curfew_report::build(&curfew_report::Input {
//!     policy_source: "curfew.toml",
//!     policy_sha256: "ab12",
//!     policy: &policy,
//!     explanation: &explanation,
//!     audit_path: "audit.jsonl",
//!     entries: &[],
//!     verification: &verification,
//!     integrity: &Default::default(),
//!     since: None,
//!     generated_at: "2026-11-23T12:00:00Z".parse().unwrap(),
//! });
//! assert!(report.to_markdown().contains("inactivity"));
//! assert!(report.to_html().unwrap().contains("inactivity"));
//! ```

mod build;
mod chart;
mod coverage;
mod evidence;
mod evidence_html;
mod evidence_md;
mod html;
mod integrity;
mod mapping;
mod markdown;
mod model;
mod runs;
mod text;
mod timeline;

pub use build::{LATEST, build};
pub use coverage::{Coverage, Gap, SILENCE_FACTOR, Segment, TargetCoverage, coverage};
pub use evidence::{
    Compensating, Completeness, Evidence, Item, LISTED, Listed, Metadata, RuleControls, SignOff,
};
pub use mapping::{ControlRow, VerifyCurrency};
pub use model::{
    AuditLog, Chain, ChainProblem, DayCounts, Integrity, LockEvent, Period, PolicyFile, PolicyLoad,
    Report, RuleCounts, TargetCount, Termination, Terminations,
};
pub use runs::{CheckRun, Finding, RunRecord, VerifiedRule, VerifyRun};

/// What the report is made from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The policy file's name.
    pub policy_source: &'a str,
    /// The SHA-256 of the policy file's bytes.
    pub policy_sha256: &'a str,
    /// The policy in force (its metadata, exemptions and rules' controls).
    pub policy: &'a curfew_policy::Policy,
    /// The policy, explained.
    pub explanation: &'a curfew_policy::explain::Explanation,
    /// The audit log's path, as shown in the report.
    pub audit_path: &'a str,
    /// Every readable record of the log, in file order.
    pub entries: &'a [curfew_audit::Entry],
    /// The log's verification.
    pub verification: &'a curfew_audit::Verification,
    /// What was checked beyond the chain (anchors, signatures); default: nothing.
    pub integrity: &'a Integrity,
    /// The period's start; `None` for the whole log.
    pub since: Option<jiff::Timestamp>,
    /// When the report is made (the period's end).
    pub generated_at: jiff::Timestamp,
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The HTML template failed.
    #[error("rendering the HTML report: {0}")]
    Html(#[from] askama::Error),
}

impl Report {
    /// The report as one self-contained HTML document.
    pub fn to_html(&self) -> Result<String, ReportError> {
        Ok(html::render(self)?)
    }

    /// The report as a Markdown document.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }
}

#[cfg(test)]
mod coverage_tests;
#[cfg(test)]
mod evidence_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_claims;

#[cfg(test)]
mod integrity_tests;
