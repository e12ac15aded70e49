//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod compile;
pub(crate) mod demo;
pub(crate) mod explain;
pub(crate) mod locks;
pub(crate) mod packaging;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod validate;
pub(crate) mod verify;
