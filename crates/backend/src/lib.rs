//! The contract between curfew's enforcement loop and a database, in neutral types: no
//! PostgreSQL (or other database) type appears here. The loop (`curfew-agent`) depends on these
//! traits only; a database adapter (`curfew-postgres`) implements them, and the binary wires the
//! two together. The traits are split by capability:
//!
//! - [`SessionReader`]: the live client sessions, on the server's clock;
//! - [`SessionEnder`]: guarded ends ([`EndRequest`]: what must still hold) and a poll for exits;
//!   an end request is [`Authorized`] by the audit intent that announced it;
//! - [`Coordination`]: one leader per server, and the fence on its actions;
//! - [`LoginLedger`]: login locks, as outcomes; a login change is [`Authorized`] by its intent;
//! - [`AnchorStore`]: the audit chain's head, kept outside the log;
//! - [`Connector`]: opens a [`Backend`], which has them all.
//!
//! No session is ended and no login changed without an intent record on disk: the requests are
//! [`Authorized`] by the audit journal's tokens, which a bare request is not:
//!
//! ```
//! use curfew_audit::IntentToken;
//! use curfew_backend::{EndRequest, SessionEnder, Termination};
//!
//! async fn end<B: SessionEnder>(b: &mut B, intent: &IntentToken<Termination>, r: EndRequest) {
//!     let _ = b.signal_all(&[intent.authorize(r)]).await;
//! }
//! ```
//!
//! ```compile_fail,E0308
//! async fn end<B: curfew_backend::SessionEnder>(backend: &mut B, request: curfew_backend::EndRequest) {
//!     let _ = backend.signal_all::<curfew_backend::Termination>(&[request]).await;
//! }
//! ```
//!
//! ```compile_fail,E0308
//! async fn lock<L: curfew_backend::LoginLedger>(ledger: &mut L, role: u32) {
//!     let _ = ledger.disable_login(role, &|_| {}).await;
//! }
//! ```
//!
//! Sessions are identified by [`SessionKey`] (the policy's session identity), which the loop
//! only compares, hashes and passes back.

mod coordination;
mod ending;
mod error;
mod ledger;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
mod traits;

pub use coordination::{Announcement, LockHolder};
pub use curfew_audit::{Authorized, SquatterEnding, Termination};
pub use curfew_policy::SessionKey;
pub use ending::{
    AuthorizedEnd, EndRequest, GatewayClient, IdleState, Outcome, SessionEnding, Signal, Snapshot,
};
pub use error::{BackendError, ErrorKind};
pub use ledger::{
    AuthorizedLoginChange, FaultHook, LedgerStatus, LockProgress, LockRow, LockedRole, LoginChange,
    RoleInfo,
};
pub use traits::{
    AnchorStore, Backend, Connector, Coordination, LoginLedger, SessionEnder, SessionReader,
};
