//! Reading columns from the server's rows without panics: a missing column, a NULL where none
//! may be, or a value of the wrong type is a [`MysqlError::Decode`].

use mysql_async::Row;
use mysql_async::prelude::FromValue;

use crate::error::MysqlError;

/// Column `index` of `row` as a `T` (`Option<T>` for a column that may be NULL).
pub(crate) fn column<T: FromValue>(
    row: &Row,
    index: usize,
    target: &str,
    what: &'static str,
) -> Result<T, MysqlError> {
    match row.get_opt::<T, usize>(index) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(MysqlError::decode(
            target,
            what,
            format!("column {index}: {e}"),
        )),
        None => Err(MysqlError::decode(
            target,
            what,
            format!("no column {index}"),
        )),
    }
}

/// Microseconds since the Unix epoch (as the statements compute them) as a timestamp.
pub(crate) fn micros(
    us: i64,
    target: &str,
    what: &'static str,
) -> Result<jiff::Timestamp, MysqlError> {
    jiff::Timestamp::from_microsecond(us)
        .map_err(|e| MysqlError::decode(target, what, format!("time {us}us: {e}")))
}
