//! The operator commands' work: `init`, `lock`, `unlock`, `locks`, `plan`, reading a log's
//! anchors from the targets, and appending a command's result to the audit log, on the
//! adapters (PostgreSQL, the agent for the stand-in).
//! Long commands report what they do as [`Step`]s to a caller's [`Progress`]; results come
//! back as data. The binary parses the arguments, calls these, and prints.

mod anchors;
mod error;
mod ledger;
mod lock;
mod plan;
mod primary;
mod record;
mod step;
mod targets;

pub use anchors::{TARGET_LIMIT, late_after, read_anchors};
pub use error::OpsError;
pub use ledger::{InitRequest, LockListing, Login, init, list};
pub use lock::{
    Completion, LockRequest, StandInConnector, UnlockRequest, audit_path, lock, unlock,
};
pub use plan::{LoginLock, TargetPlan, plan};
pub use record::{ResultRecording, record_results};
pub use step::{AfterLift, Step, Warning};
pub use targets::{Progress, primaries};
