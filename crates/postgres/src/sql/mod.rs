//! curfew's SQL as pure data and functions, apart from the connection that sends it (as
//! `postgres-protocol` stands apart from `tokio-postgres`): each statement's text, the building
//! of its parameters from neutral inputs, and the decoding of its rows into domain values,
//! fallibly. Nothing here does I/O; `crate::connect::Connection` and its methods prepare, send,
//! and map the driver's errors.
//!
//! Decoding is split in two where it is more than reading columns: extracting a row's columns
//! (which needs a `tokio_postgres::Row`, which only a server can make) and turning those values
//! into domain values (a plain function, tested here without a server).

pub(crate) mod anchor;
pub(crate) mod canary;
pub(crate) mod decode;
pub(crate) mod dedicated;
pub(crate) mod facts;
pub(crate) mod gateway_admission;
pub(crate) mod gateway_auth;
pub(crate) mod gateway_catalog;
pub(crate) mod gateway_registry;
pub(crate) mod gateway_violations;
pub(crate) mod install;
pub(crate) mod leader;
pub(crate) mod ledger;
pub(crate) mod ledger_catalog;
pub(crate) mod server;
pub(crate) mod snapshot;
pub(crate) mod terminate;

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::error::PgError;
use crate::sql::decode::col;

/// The one value of a one-column reply row (a flag, a count, a clock reading), decoded as
/// `T`; a mismatch is a query error of `what` on `target`.
pub(crate) fn scalar<'a, T: FromSql<'a>>(
    row: &'a Row,
    target: &str,
    what: &'static str,
) -> Result<T, PgError> {
    col(row, 0, target, what)
}
