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
    /// Prepares them; the snapshot joins the gateway session registry when this role can read
    /// it (a registry installed later is joined from the next connection on).
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        let registry: bool = client
            .query_one(crate::sql::snapshot::REGISTRY_READABLE, &[])
            .await?
            .try_get(0)?;
        Ok(Statements {
            snapshot: client
                .prepare(&crate::sql::snapshot::snapshot_sql(registry))
                .await?,
            terminate: client
                .prepare(&crate::sql::terminate::terminate_sql())
                .await?,
            exited: client.prepare(crate::sql::terminate::EXITED).await?,
        })
    }
}
