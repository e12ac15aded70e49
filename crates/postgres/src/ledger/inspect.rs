//! What `curfew check` reads about the ledger: who owns it, whether its functions are the ones
//! `curfew init` installs and secured as it installs them, and whether curfew's role can do
//! more to it than read and call. Catalog reads only.

use super::{AGENT_FUNCTIONS, SCHEMA_COMMENT};
use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

/// The ledger as the catalogs show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerFacts {
    /// The `curfew` schema's owner; `None` when there is no schema.
    pub schema_owner: Option<String>,
    /// Whether that owner can log in (it should not).
    pub owner_can_login: bool,
    /// Whether the schema is the current version (else an older curfew made it).
    pub current: bool,
    /// Each function curfew's role calls.
    pub functions: Vec<FunctionFacts>,
    /// What curfew's role can do beyond reading the ledger and calling the functions, in
    /// words (`INSERT/UPDATE/DELETE on curfew.lock`, `CREATE on schema curfew`, `owns ...`).
    pub agent_excess: Vec<String>,
}

/// One of the ledger's functions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionFacts {
    /// Its signature, e.g. `curfew.change_login(oid,boolean,integer,timestamp with time zone)`.
    pub signature: String,
    /// Whether it exists.
    pub present: bool,
    /// Its owner.
    pub owner: Option<String>,
    /// `SECURITY DEFINER`.
    pub security_definer: bool,
    /// Whether it fixes `search_path = pg_catalog, pg_temp`.
    pub fixed_search_path: bool,
    /// Whether `PUBLIC` may execute it.
    pub public_execute: bool,
    /// Whether curfew's role may execute it.
    pub agent_execute: bool,
}

impl Connection {
    /// Read the ledger's ownership and privileges (for `curfew check`).
    pub async fn ledger_facts(&self) -> Result<LedgerFacts, PgError> {
        let failed = |e| PgError::query(&self.target, "reading the ledger's privileges", e);
        let Some(schema) = self
            .client
            .query_opt(
                "SELECT o.rolname::text, o.rolcanlogin,
                        coalesce(obj_description(n.oid, 'pg_namespace'), '') = $1,
                        has_schema_privilege(n.oid, 'CREATE'),
                        pg_has_role(n.nspowner, 'MEMBER'),
                        coalesce((SELECT array_agg(format('%s on curfew.%s',
                                    CASE WHEN pg_has_role(c.relowner, 'MEMBER') THEN 'ownership'
                                         ELSE 'INSERT/UPDATE/DELETE/TRUNCATE' END, c.relname)
                                    ORDER BY c.relname)
                                  FROM pg_class c
                                  WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'S')
                                    AND (pg_has_role(c.relowner, 'MEMBER')
                                         OR (c.relkind = 'r' AND has_table_privilege(c.oid,
                                               'INSERT, UPDATE, DELETE, TRUNCATE'))
                                         OR (c.relkind = 'S' AND has_sequence_privilege(c.oid,
                                               'UPDATE')))), '{}')
                 FROM pg_namespace n JOIN pg_roles o ON o.oid = n.nspowner
                 WHERE n.nspname = 'curfew'",
                &[&SCHEMA_COMMENT],
            )
            .await
            .map_err(failed)?
        else {
            return Ok(LedgerFacts::default());
        };
        let what = "reading the ledger's privileges";
        let mut excess: Vec<String> = col(&schema, 5, &self.target, what)?;
        if col::<bool>(&schema, 4, &self.target, what)? {
            excess.insert(0, "ownership of schema curfew".to_owned());
        } else if col::<bool>(&schema, 3, &self.target, what)? {
            excess.insert(0, "CREATE on schema curfew".to_owned());
        }
        let signatures: Vec<String> = AGENT_FUNCTIONS.iter().map(|f| (*f).to_owned()).collect();
        let rows = self
            .client
            .query(
                "SELECT s.sig, p.oid IS NOT NULL, o.rolname::text, coalesce(p.prosecdef, false),
                        coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false),
                        p.oid IS NOT NULL AND (p.proacl IS NULL OR EXISTS (
                            SELECT 1 FROM aclexplode(p.proacl) a
                            WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')),
                        coalesce(has_function_privilege(p.oid, 'EXECUTE'), false),
                        coalesce(pg_has_role(p.proowner, 'MEMBER'), false)
                 FROM unnest($1::text[]) WITH ORDINALITY AS s(sig, i)
                 LEFT JOIN pg_proc p
                   ON p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'curfew')
                  AND format('curfew.%s(%s)', p.proname,
                             replace(oidvectortypes(p.proargtypes), ', ', ',')) = s.sig
                 LEFT JOIN pg_roles o ON o.oid = p.proowner
                 ORDER BY s.i",
                &[&signatures],
            )
            .await
            .map_err(failed)?;
        let mut functions = Vec::with_capacity(rows.len());
        for r in &rows {
            let signature: String = col(r, 0, &self.target, what)?;
            if col::<bool>(r, 7, &self.target, what)? {
                excess.push(format!("ownership of {signature}"));
            }
            functions.push(FunctionFacts {
                signature,
                present: col(r, 1, &self.target, what)?,
                owner: col(r, 2, &self.target, what)?,
                security_definer: col(r, 3, &self.target, what)?,
                fixed_search_path: col(r, 4, &self.target, what)?,
                public_execute: col(r, 5, &self.target, what)?,
                agent_execute: col(r, 6, &self.target, what)?,
            });
        }
        Ok(LedgerFacts {
            schema_owner: Some(col(&schema, 0, &self.target, what)?),
            owner_can_login: col(&schema, 1, &self.target, what)?,
            current: col(&schema, 2, &self.target, what)?,
            functions,
            agent_excess: excess,
        })
    }
}
