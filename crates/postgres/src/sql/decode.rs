//! Reading values out of server rows without ever panicking: a column of an unexpected type or
//! an unexpected NULL is an error naming what curfew was doing, not a crash of the worker.

use tokio_postgres::Row;
use tokio_postgres::row::RowIndex;
use tokio_postgres::types::FromSql;

use crate::error::PgError;

/// Column `idx` (a position or a name) of `row`, decoded as `T`; a mismatch is a query error
/// of `what` on `target`.
pub(crate) fn col<'a, T: FromSql<'a>>(
    row: &'a Row,
    idx: impl RowIndex + std::fmt::Display + Copy,
    target: &str,
    what: &'static str,
) -> Result<T, PgError> {
    row.try_get(idx).map_err(|e| PgError::Query {
        target: target.to_owned(),
        what,
        reason: format!("unexpected value in column {idx} of the reply: {e}"),
        lost: false,
    })
}
