//! What can be wrong inside a log: the problems verification and reading report, kept apart
//! from both so that the reader and the verifier do not depend on each other.

use std::fmt;

use crate::line::Fault;

/// One thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number in the file.
    pub line: u64,
    /// The seq of the record concerned, where known.
    pub seq: Option<u64>,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// A full sentence naming what is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn malformed(line: u64, seq: Option<u64>, fault: &Fault) -> Problem {
        Problem {
            line,
            seq,
            kind: ProblemKind::Malformed,
            message: fault.describe(line),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

/// The kinds of [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The line is not a record (torn write, garbage, wrong shape).
    Malformed,
    /// The record's hash does not match its bytes: it was edited.
    HashMismatch,
    /// The record's `prev` is not the previous record's hash: records were removed,
    /// inserted or replaced before it.
    BrokenLink,
    /// The record's `seq` is not the previous one plus one.
    SeqGap,
    /// A termination intent that no later record completes.
    IntentWithoutOutcome,
    /// A record names an intent seq that is not a termination intent before it.
    OutcomeWithoutIntent,
    /// Records are missing: between two files of a set, or after the log's last record (an
    /// anchor kept outside the log names a later seq).
    MissingRecords,
    /// A record is not the one an anchor kept outside the log names: the chain was altered
    /// and recomputed.
    AnchorMismatch,
    /// A checkpoint's signature does not verify, or it covers a record the log does not hold.
    BadCheckpoint,
    /// A file of the set belongs to another chain.
    OtherChain,
    /// An anchor was stored long after the record it names: it confirms nothing.
    LateAnchor,
    /// Another chain was anchored from the log's place while the log was written: the log
    /// was replaced (or another agent shares the host and is not acknowledged).
    ReplacedChain,
}

impl ProblemKind {
    /// A stable snake_case name, for machine-readable output.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::Malformed => "malformed",
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::BrokenLink => "broken_link",
            ProblemKind::SeqGap => "seq_gap",
            ProblemKind::IntentWithoutOutcome => "intent_without_outcome",
            ProblemKind::OutcomeWithoutIntent => "outcome_without_intent",
            ProblemKind::MissingRecords => "missing_records",
            ProblemKind::AnchorMismatch => "anchor_mismatch",
            ProblemKind::BadCheckpoint => "bad_checkpoint",
            ProblemKind::OtherChain => "other_chain",
            ProblemKind::LateAnchor => "late_anchor",
            ProblemKind::ReplacedChain => "replaced_chain",
        }
    }
}
