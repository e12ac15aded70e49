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

/// Output formats of the commands that write a document (`check`, `verify`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Document {
    /// Markdown: a table per target, then the details.
    Md,
    /// One JSON document.
    Json,
}
