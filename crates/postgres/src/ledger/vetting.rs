//! Before `curfew init` hands an existing `curfew` schema to the owner role, it makes sure the
//! schema holds nothing that would run someone else's code with the owner's rights: the
//! functions write the ledger's tables as `curfew_owner` (a superuser on PostgreSQL 16 and
//! later), so a trigger, rule, row-level policy, or a default, check or index expression calling
//! a function planted there by whoever could write the schema before (curfew's role owned it up
//! to version 1, or a role with CREATE on the database made it first) would be an escalation.

use tokio_postgres::Transaction;

use crate::sql::install::FOREIGN;

/// What in schema `curfew` (and among `curfew_owner`'s members, who could act as it) curfew
/// would not trust, in words; empty when nothing. `agent_role` may keep its grants.
pub(crate) async fn foreign_objects(
    tx: &Transaction<'_>,
    agent_role: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = tx.query(FOREIGN, &[&agent_role]).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}
