//! What `curfew check` reads about the ledger: who owns it, whether its functions are the ones
//! `curfew init` installs and secured as it installs them, and whether curfew's role can do
//! more to it than read and call. Catalog reads only.

use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::ledger::SCHEMA_COMMENT;
use crate::sql::ledger_catalog::{
    FUNCTIONS, LedgerFacts, SchemaRow, WHAT_FACTS, decode_function, functions_param, ledger_facts,
};

impl Connection {
    /// Read the ledger's ownership and privileges (for `curfew check`).
    pub async fn ledger_facts(&self) -> Result<LedgerFacts, PgError> {
        let failed = |e| PgError::query(&self.target, WHAT_FACTS, e);
        let Some(schema) = self
            .client
            .query_opt(crate::sql::ledger_catalog::SCHEMA, &[&SCHEMA_COMMENT])
            .await
            .map_err(failed)?
        else {
            return Ok(LedgerFacts::default());
        };
        let schema = SchemaRow::extract(&schema, &self.target)?;
        let signatures = functions_param();
        let functions = self
            .client
            .query(FUNCTIONS, &[&signatures])
            .await
            .map_err(failed)?
            .iter()
            .map(|r| decode_function(r, &self.target))
            .collect::<Result<Vec<_>, PgError>>()?;
        Ok(ledger_facts(schema, functions))
    }
}
