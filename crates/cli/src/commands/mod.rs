//! One module per subcommand.

pub(crate) mod explain;
pub(crate) mod validate;
