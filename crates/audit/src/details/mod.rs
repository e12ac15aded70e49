//! The typed `detail` of each kind of record: one struct per shape, shared by every writer
//! (the agent, `curfew verify`, `curfew check`, the future gateway) and every reader
//! (`curfew report`, `curfew observe`), instead of free JSON read back by key name.
//!
//! The on-disk form does not change: a struct becomes the same JSON value the writers built
//! with `json!` before (same keys, same value formats; keys come out sorted, as
//! `serde_json`'s map keeps them), so the hash chain and every existing log stay as they are.
//! Reading is as forgiving as the readers always were: missing keys, `null`s and values of
//! another type read as absent (see `lenient.rs`), so records of older versions stay
//! readable.

mod continuity;
mod contract;
mod enforcement;
pub(crate) mod lenient;
mod runs;

pub use continuity::{
    AgentStart, AuditResumption, CheckpointHead, Heartbeat, Leadership, LogContinuation,
    PolicyLoad, PolicyRejection,
};
pub use contract::{Detail, DetailError};
pub use enforcement::{
    LockRecord, LoginChangePlan, LoginChangeResult, RecordedActor, SessionEnded, SessionWarning,
    SquatEnding, TerminationFailure, TerminationPlan, TerminationSkip,
};
pub use runs::{ConfigurationCheck, ControlVerification, RecordedFinding, RecordedRule};

#[cfg(test)]
mod tests;
