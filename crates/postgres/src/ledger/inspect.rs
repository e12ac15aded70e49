//! What `curfew check` reads about the ledger: who owns it, whether its functions are the ones
//! `curfew init` installs and secured as it installs them, and whether curfew's role can do
//! more to it than read and call. Catalog reads only.

use super::{AGENT_FUNCTIONS, SCHEMA_COMMENT};
use crate::connect::Connection;
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
        let mut excess: Vec<String> = schema.get(5);
        if schema.get::<_, bool>(4) {
            excess.insert(0, "ownership of schema curfew".to_owned());
        } else if schema.get::<_, bool>(3) {
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
        let functions = rows
            .iter()
            .map(|r| {
                if r.get::<_, bool>(7) {
                    excess.push(format!("ownership of {}", r.get::<_, String>(0)));
                }
                FunctionFacts {
                    signature: r.get(0),
                    present: r.get(1),
                    owner: r.get(2),
                    security_definer: r.get(3),
                    fixed_search_path: r.get(4),
                    public_execute: r.get(5),
                    agent_execute: r.get(6),
                }
            })
            .collect();
        Ok(LedgerFacts {
            schema_owner: Some(schema.get(0)),
            owner_can_login: schema.get(1),
            current: schema.get(2),
            functions,
            agent_excess: excess,
        })
    }
}
