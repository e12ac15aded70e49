//! Test fixtures shared by several of curfew's test suites.
//!
//! A dev-only crate: other crates list it under `[dev-dependencies]` only, and it is never
//! published. Its own test `tests/module_cycles.rs` checks that no crate of the workspace has an
//! import cycle between its modules.
