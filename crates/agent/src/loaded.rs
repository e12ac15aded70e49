//! The loaded policy now lives in `curfew-policy` (below `observe`, `report` and `verify`); this
//! module keeps the agent's internal import path while the restructuring of issue 15 merges.

pub use curfew_policy::{LoadError, LoadedPolicy};
