//! The statements curfew runs on every snapshot and termination, prepared once per connection
//! (their text is in `crate::sql`).

use tokio_postgres::{Client, Statement};

/// The prepared statements of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) snapshot: Statement,
    pub(crate) terminate: Statement,
    pub(crate) exited: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            snapshot: client.prepare(crate::sql::snapshot::SNAPSHOT).await?,
            terminate: client
                .prepare(&crate::sql::terminate::terminate_sql())
                .await?,
            exited: client.prepare(crate::sql::terminate::EXITED).await?,
        })
    }
}
