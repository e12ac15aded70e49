//! The install half of the "dedicated owner + exact ACL" spec (`crate::sql::dedicated`): the
//! steps the auth function's and the registry's installs share, inside their transaction.

use crate::sql::dedicated::Dedicated;

/// The first column of each row of `sql` (one text parameter, ignored when the statement has
/// none), as text.
pub(super) async fn names(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    parameter: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let statement = tx.prepare(sql).await?;
    let rows = if statement.params().is_empty() {
        tx.query(&statement, &[]).await?
    } else {
        tx.query(&statement, &[&parameter]).await?
    };
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// Revokes every grant on `spec`'s objects from every grantee but their owner (what default
/// privileges, global or `IN SCHEMA`, added at `CREATE`, and what an earlier install granted
/// another role), then runs `grants`.
pub(super) async fn revoke_all_then_grant(
    tx: &tokio_postgres::Transaction<'_>,
    spec: &Dedicated,
    grants: &str,
) -> Result<(), tokio_postgres::Error> {
    for grantee in names(tx, &spec.grantees_sql(), "").await? {
        tx.batch_execute(&spec.revoke_all_sql(&grantee)).await?;
    }
    tx.batch_execute(grants).await
}

/// `spec`'s grants now, when they are not exactly `expected` (sorted).
pub(super) async fn acl_mismatch(
    tx: &tokio_postgres::Transaction<'_>,
    spec: &Dedicated,
    expected: &[String],
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    let acl = names(tx, &spec.acl_sql(), "").await?;
    let mut sorted = expected.to_vec();
    sorted.sort();
    Ok((acl != sorted).then_some(acl))
}
