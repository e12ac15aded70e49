//! Test fixtures shared by several of curfew's test suites.
//!
//! A dev-only crate: other crates list it under `[dev-dependencies]` only, and it is never
//! published. What one suite alone needs stays in that suite's `tests/common`. Its own test
//! `tests/module_cycles.rs` checks that no crate of the workspace has an import cycle between
//! its modules.

mod pg_bin;
mod process;
mod sandbox;
mod temp_dir;
mod webhook;

pub use pg_bin::{pg_bin, pg_bin_variable};
pub use process::KillOnDrop;
pub use sandbox::{AGENT_ROLE, cluster_with_agent_role, started};
pub use temp_dir::TempDir;
pub use webhook::{Received, WebhookReceiver};
