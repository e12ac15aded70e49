//! curfew's audit log: one JSON object per line, hash-chained, appended with fsync.
//!
//! Every record carries `seq` (1, 2, 3, ...), `prev` (the previous record's `hash`, or
//! [`GENESIS`] for the first) and `hash`, the lowercase hex SHA-256 of the line's own bytes
//! without the hash field. Removing, inserting or editing a line therefore breaks the chain
//! at that point, and [`verify`] names the line. Rewriting the whole tail consistently is
//! possible for anyone with write access, which is why [`Verification::last_hash`] should be
//! compared with a copy kept elsewhere.
//!
//! A crash can tear the last line. [`AuditLog::open`] then closes it with a newline, warns,
//! and continues the chain after the last complete record (reusing the torn record's seq);
//! [`verify`] reports the torn line once, as [`ProblemKind::Malformed`], and nothing after it.
//!
//! The writer fails closed: a log moved away, deleted or truncated under it, or a failed
//! write, makes it refuse appends (so nothing is done that cannot be recorded) until
//! [`AuditLog::recover`] succeeds; outcome records of actions under way are kept in memory
//! meanwhile. A rotated or truncated log goes on in a new file that begins with a
//! `log_continued` record linking to the last record of the file before, so the chain never
//! restarts and [`verify`] accepts the new file on its own (see [`continuation`]).
//!
//! The chain has an identity, the hash of its first record, which every continuing file
//! repeats ([`chain_id`]); a log and its rotated files verify as one chain
//! ([`verify_chain`]), against anchors of the chain's head kept outside the log
//! ([`ChainVerification::check_anchors`]) and against signed checkpoints
//! ([`ChainVerification::check_signatures`]).
//!
//! [`AuditLog`] is the single writer of a file (guarded by an advisory lock); [`verify`] and
//! [`read`] stream the file and may run while the writer is alive.

pub mod actor;
mod anchor;
mod chain;
pub mod details;
mod error;
mod event;
mod file;
mod integrity;
mod journal;
mod line;
mod log_check;
mod log_files;
mod operator;
mod problem;
mod reader;
mod record;
mod recover;
mod sign;
mod tail;
mod verify;
mod writer;

pub use actor::{Actor, LedgerActor, ServerStamp};
pub use anchor::{Anchor, AnchorCheck, AnchorRules};
pub use chain::{ChainFile, ChainVerification, chain_id, expand, verify_chain};
pub use error::AuditError;
pub use event::Event;
pub use integrity::{IntegrityCheck, TargetAnchors};
pub use journal::{
    Action, Authorized, Intent, IntentToken, LoginChange, LoginChangeEnd, LoginChangeOutcome,
    Outcome, SquatOutcome, SquatterEnding, Termination, TerminationOutcome,
};
pub use line::GENESIS;
pub use log_check::{CheckedLog, LogCheckError, check_log};
pub use log_files::log_set;
pub use operator::{current_actor, ledger_actor};
pub use problem::{Problem, ProblemKind};
pub use reader::{Entries, entries, read};
pub use record::{Entry, Record, SessionInfo};
pub use recover::Recovered;
pub use sign::{CheckpointKey, KeyError, PublicKey, SignatureCheck};
pub use verify::{Continuation, Verification, continuation, verify, verify_each};
pub use writer::{Appended, AuditLog, Head};

#[cfg(test)]
mod anchor_tests;
#[cfg(test)]
mod chain_tests;
