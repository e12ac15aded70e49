//! The report's content, independent of its rendering; serialized as is for `--format json`.

use std::collections::BTreeMap;

use curfew_policy::explain::Explanation;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use crate::runs::{CheckRun, VerifyRun};

/// The assessor's evidence report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the report was made.
    pub generated_at: Timestamp,
    /// The period the report covers.
    pub period: Period,
    /// The policy file the report was made with.
    pub policy: PolicyFile,
    /// The audit log read.
    pub audit_log: AuditLog,
    /// The conditions under which sessions end, as `curfew explain` states them.
    pub conditions: Explanation,
    /// Every policy loaded in the period, plus the one in force when it began, oldest first.
    pub policy_history: Vec<PolicyLoad>,
    /// Sessions ended (and not ended) in the period.
    pub terminations: Terminations,
    /// Lock and login records in the period, oldest first.
    pub locks: Vec<LockEvent>,
    /// The latest `curfew check` result per target, by target name.
    pub checks: Vec<CheckRun>,
    /// The latest `curfew verify` result per target, by target name.
    pub verifications: Vec<VerifyRun>,
    /// The audit chain's verification.
    pub chain: Chain,
    /// Continuity, completeness, compensating controls, metadata, control mapping, sign-off.
    pub evidence: crate::evidence::Evidence,
}

/// The period a report covers.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// The start asked for (`--since`); `None` for the whole log.
    pub since: Option<Timestamp>,
    /// The effective start: `since`, or the first record's time for the whole log (`None` for
    /// an empty log).
    pub from: Option<Timestamp>,
    /// The end: when the report was made.
    pub to: Timestamp,
}

/// The policy file the report was made with.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFile {
    /// Its file name.
    pub source: String,
    /// The SHA-256 of its bytes.
    pub sha256: String,
    /// Whether it is the policy the log last recorded as loaded (`None`: the log records no
    /// policy load at all). `false` means the file on disk is not the one in force.
    pub matches_latest_loaded: Option<bool>,
}

/// The audit log read.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLog {
    /// Its path, as given.
    pub path: String,
    /// Readable records in the whole log.
    pub records: usize,
    /// Readable records in the period.
    pub records_in_period: usize,
}

/// One `policy_loaded` record.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyLoad {
    /// The record's seq.
    pub seq: u64,
    /// When the policy was loaded.
    pub ts: Timestamp,
    /// The SHA-256 of the policy file loaded (empty if the record does not say).
    pub sha256: String,
    /// The policy file's name.
    pub source: Option<String>,
    /// How many rules it has.
    pub rules: Option<u64>,
    /// The targets it names.
    pub targets: Vec<String>,
    /// True for the load before the period's start: the policy in force when it began.
    pub before_period: bool,
}

/// Terminations in the period.
#[derive(Debug, Clone, Serialize)]
pub struct Terminations {
    /// Sessions ended (`session_terminated`).
    pub total: u64,
    /// Terminations that failed (`termination_failed`).
    pub failed: u64,
    /// Sessions reported but not ended (`session_reported`: report-only rules and dry runs).
    pub reported: u64,
    /// Every rule named, in policy order, then rules no longer in the policy by name; the
    /// columns of [`Self::by_day`] and the colours of the chart.
    pub rules: Vec<String>,
    /// Counts per rule, in the order of [`Self::rules`].
    pub by_rule: Vec<RuleCounts>,
    /// Sessions ended per target, by target name.
    pub by_target: Vec<TargetCount>,
    /// Sessions ended per UTC day, every day of the period (days without any included).
    pub by_day: Vec<DayCounts>,
    /// The latest terminations, newest first (at most [`crate::LATEST`]).
    pub latest: Vec<Termination>,
}

/// Counts for one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    /// The rule's name.
    pub rule: String,
    /// Sessions ended.
    pub terminated: u64,
    /// Terminations that failed.
    pub failed: u64,
    /// Sessions reported only.
    pub reported: u64,
}

/// Sessions ended on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetCount {
    /// The target's name.
    pub target: String,
    /// Sessions ended.
    pub terminated: u64,
}

/// Sessions ended on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    /// The day (UTC).
    pub date: Date,
    /// Sessions ended that day.
    pub total: u64,
    /// Sessions ended that day per rule; rules with none are left out.
    pub by_rule: BTreeMap<String, u64>,
}

/// One session ended.
#[derive(Debug, Clone, Serialize)]
pub struct Termination {
    /// The record's seq.
    pub seq: u64,
    /// When it was recorded.
    pub ts: Timestamp,
    /// The target's name.
    pub target: Option<String>,
    /// The rule that ended it.
    pub rule: Option<String>,
    /// The backend's pid.
    pub pid: Option<i64>,
    /// The session's role.
    pub role: Option<String>,
    /// The session's database.
    pub database: Option<String>,
    /// The session's `application_name`.
    pub application: Option<String>,
    /// The client address (absent for Unix sockets).
    pub client_addr: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
}

/// One lock or login record.
#[derive(Debug, Clone, Serialize)]
pub struct LockEvent {
    /// The record's seq.
    pub seq: u64,
    /// When it was recorded.
    pub ts: Timestamp,
    /// `lock_created`, `lock_released`, `login_locked` or `login_restored`.
    pub event: String,
    /// The target's name.
    pub target: Option<String>,
    /// The role concerned.
    pub role: Option<String>,
    /// `window` or `incident`.
    pub kind: Option<String>,
    /// The rule, for a window lock.
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
    /// Who made the lock.
    pub created_by: Option<String>,
    /// When the lock expires.
    pub expires_at: Option<String>,
    /// Who released it.
    pub released_by: Option<String>,
    /// When it was released.
    pub released_at: Option<String>,
    /// The record's result (e.g. `disabled`, `restored`).
    pub result: Option<String>,
    /// The person whose action it records (`detail.actor`: OS user, uid, database role), where
    /// the record says.
    pub actor: Option<String>,
}

/// The audit chain's verification.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    /// True when no problem was found.
    pub intact: bool,
    /// Records checked.
    pub records: u64,
    /// The last record's hash, to compare with a copy kept elsewhere.
    pub last_hash: Option<String>,
    /// Every problem: the chain's in file order, then what anchors and signatures contradict.
    pub problems: Vec<ChainProblem>,
    /// Exactly what the checks establish, in one paragraph: "no record altered, removed or
    /// inserted" only as far as anchors kept outside the log confirm it.
    pub statement: String,
    /// What was checked beyond the chain's own hashes.
    pub integrity: Integrity,
}

impl Chain {
    /// The chain's state in a few words, for the report's header: "intact" only where anchors
    /// kept outside the log confirm it.
    pub fn headline(&self) -> String {
        let first = self.problems.iter().filter_map(|p| p.seq).min();
        if self.integrity.contradicted {
            return format!(
                "CONTRADICTED by what was kept of it outside the log{}",
                first
                    .map(|s| format!(" (first missing or differing seq {s})"))
                    .unwrap_or_default()
            );
        }
        if !self.intact {
            return format!("BROKEN: {} problem(s)", self.problems.len());
        }
        match &self.integrity.anchored_up_to {
            Some((seq, _, target)) => {
                let last = self.integrity.seqs.map_or(0, |s| s.1);
                let rest = if last > *seq {
                    format!("; seq {} to {last} not anchored yet", seq + 1)
                } else {
                    String::new()
                };
                format!("intact, confirmed by anchors on target \"{target}\" up to seq {seq}{rest}")
            }
            None => "internally consistent only: not confirmed by anchors kept outside the log"
                .to_owned(),
        }
    }

    /// Whether the header may show the chain as good (intact and anchored).
    pub fn confirmed(&self) -> bool {
        self.intact && !self.integrity.contradicted && self.integrity.anchored_up_to.is_some()
    }
}

/// What was checked of the audit log beyond its own hashes (filled in by the caller, which
/// reads the anchors and keys): the files, the anchors per target, the signatures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Integrity {
    /// The files checked as one chain, in chain order.
    pub files: Vec<String>,
    /// The chain's identity (the hash of its first record).
    pub chain_id: Option<String>,
    /// The seq of the first and of the last record checked.
    pub seqs: Option<(u64, u64)>,
    /// One sentence per thing checked (the chain, each target's anchors or why they were
    /// not read, the signatures).
    pub checked: Vec<String>,
    /// The highest seq anchors confirm: seq, when it was anchored, where.
    pub anchored_up_to: Option<(u64, jiff::Timestamp, String)>,
    /// Anchors or signed checkpoints contradict the log (truncation, a recomputed chain).
    pub contradicted: bool,
    /// What the anchors and signatures contradict, first missing or differing seq first.
    pub problems: Vec<ChainProblem>,
}

/// One problem with the chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainProblem {
    /// 1-based line number.
    pub line: u64,
    /// The record's seq, where known.
    pub seq: Option<u64>,
    /// E.g. `hash_mismatch`.
    pub kind: String,
    /// What is wrong.
    pub message: String,
}
