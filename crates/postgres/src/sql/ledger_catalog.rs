//! The ledger as the catalogs show it (see `crate::ledger`): whether it is installed and usable
//! by curfew's role (`ledger_status`), and its ownership and privileges for `curfew check`
//! (`ledger_facts`). The statements and the decoding of their rows; catalog reads only.

use curfew_backend::LedgerStatus;
use tokio_postgres::Row;

use crate::error::PgError;
use crate::sql::decode::col;
use crate::sql::ledger::{AGENT_FUNCTIONS, LEDGER_VERSION, SCHEMA_COMMENT};

/// What looking for the ledger's errors say curfew was doing.
pub(crate) const WHAT_STATUS: &str = "looking for the ledger";

/// What reading the ledger's privileges' errors say curfew was doing.
pub(crate) const WHAT_FACTS: &str = "reading the ledger's privileges";

/// Whether the tables exist, curfew's role may read them, the schema is this version, and
/// the role may execute every function of `$1` (`$2`: [`SCHEMA_COMMENT`], `$3`: the owner).
/// Never an error for a schema the role may not enter: it names no object in it.
pub(crate) const STATUS: &str =
    "WITH n AS (SELECT oid, obj_description(oid, 'pg_namespace') AS comment
                            FROM pg_namespace WHERE nspname = 'curfew'),
                      t AS (SELECT c.oid FROM pg_class c JOIN n ON c.relnamespace = n.oid
                            WHERE c.relname IN ('lock', 'disabled_login') AND c.relkind = 'r'),
                      f AS (SELECT p.oid FROM pg_proc p JOIN n ON p.pronamespace = n.oid
                            WHERE format('curfew.%s(%s)', p.proname,
                                         replace(oidvectortypes(p.proargtypes), ', ', ','))
                                  = ANY($1))
                 SELECT (SELECT count(*) FROM t) = 2,
                        coalesce((SELECT has_schema_privilege(oid, 'USAGE') FROM n), false)
                          AND (SELECT bool_and(has_table_privilege(oid, 'SELECT')) FROM t),
                        coalesce((SELECT comment FROM n), '') = $2,
                        (SELECT count(*) FROM f) = cardinality($1)
                          AND (SELECT bool_and(has_function_privilege(oid, 'EXECUTE')) FROM f)
                          AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3)";

/// [`AGENT_FUNCTIONS`] as [`STATUS`]'s and [`FUNCTIONS`]'s `$1`.
pub(crate) fn functions_param() -> Vec<String> {
    AGENT_FUNCTIONS.iter().map(|f| (*f).to_owned()).collect()
}

/// [`STATUS`]'s row.
pub(crate) fn decode_status(row: &Row, target: &str) -> Result<LedgerStatus, PgError> {
    let what = WHAT_STATUS;
    let exists: bool = col(row, 0, target, what)?;
    let readable: Option<bool> = col(row, 1, target, what)?;
    let current: bool = col(row, 2, target, what)?;
    let executable: Option<bool> = col(row, 3, target, what)?;
    Ok(status(exists, readable, current, executable))
}

/// Where the ledger stands, from what [`STATUS`] found: the first thing missing decides.
fn status(
    exists: bool,
    readable: Option<bool>,
    current: bool,
    executable: Option<bool>,
) -> LedgerStatus {
    debug_assert!(SCHEMA_COMMENT.contains(&format!("(version {LEDGER_VERSION})")));
    if !exists {
        LedgerStatus::Missing
    } else if readable != Some(true) {
        LedgerStatus::NoAccess
    } else if !current {
        LedgerStatus::Outdated
    } else if executable != Some(true) {
        LedgerStatus::NotGranted
    } else {
        LedgerStatus::Ready
    }
}

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

/// The schema's owner, whether it can log in, whether the schema is this version (`$1`:
/// [`SCHEMA_COMMENT`]), and what curfew's role may do to it and its tables beyond reading.
pub(crate) const SCHEMA: &str = "SELECT o.rolname::text, o.rolcanlogin,
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
                 WHERE n.nspname = 'curfew'";

/// Each function of `$1` as the catalogs show it, in `$1`'s order.
pub(crate) const FUNCTIONS: &str =
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
                 ORDER BY s.i";

/// [`SCHEMA`]'s row, once there is a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaRow {
    pub(crate) owner: String,
    pub(crate) owner_can_login: bool,
    pub(crate) current: bool,
    pub(crate) agent_creates: bool,
    pub(crate) agent_owns: bool,
    pub(crate) agent_tables: Vec<String>,
}

impl SchemaRow {
    /// The columns of [`SCHEMA`]'s row.
    pub(crate) fn extract(row: &Row, target: &str) -> Result<SchemaRow, PgError> {
        let what = WHAT_FACTS;
        Ok(SchemaRow {
            owner: col(row, 0, target, what)?,
            owner_can_login: col(row, 1, target, what)?,
            current: col(row, 2, target, what)?,
            agent_creates: col(row, 3, target, what)?,
            agent_owns: col(row, 4, target, what)?,
            agent_tables: col(row, 5, target, what)?,
        })
    }
}

/// One row of [`FUNCTIONS`]: the function, and whether curfew's role owns it.
pub(crate) fn decode_function(row: &Row, target: &str) -> Result<(FunctionFacts, bool), PgError> {
    let what = WHAT_FACTS;
    let owned = col::<bool>(row, 7, target, what)?;
    Ok((
        FunctionFacts {
            signature: col(row, 0, target, what)?,
            present: col(row, 1, target, what)?,
            owner: col(row, 2, target, what)?,
            security_definer: col(row, 3, target, what)?,
            fixed_search_path: col(row, 4, target, what)?,
            public_execute: col(row, 5, target, what)?,
            agent_execute: col(row, 6, target, what)?,
        },
        owned,
    ))
}

/// The ledger's facts from the schema's row and its functions' (each with whether curfew's
/// role owns it): what the role may do beyond reading and calling, the schema first.
pub(crate) fn ledger_facts(
    schema: SchemaRow,
    functions: Vec<(FunctionFacts, bool)>,
) -> LedgerFacts {
    let mut excess = schema.agent_tables;
    if schema.agent_owns {
        excess.insert(0, "ownership of schema curfew".to_owned());
    } else if schema.agent_creates {
        excess.insert(0, "CREATE on schema curfew".to_owned());
    }
    let mut list = Vec::with_capacity(functions.len());
    for (function, owned) in functions {
        if owned {
            excess.push(format!("ownership of {}", function.signature));
        }
        list.push(function);
    }
    LedgerFacts {
        schema_owner: Some(schema.owner),
        owner_can_login: schema.owner_can_login,
        current: schema.current,
        functions: list,
        agent_excess: excess,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_missing_thing_decides_the_status() {
        assert_eq!(status(false, None, false, None), LedgerStatus::Missing);
        assert_eq!(status(true, None, true, Some(true)), LedgerStatus::NoAccess);
        assert_eq!(
            status(true, Some(false), true, Some(true)),
            LedgerStatus::NoAccess
        );
        assert_eq!(
            status(true, Some(true), false, Some(true)),
            LedgerStatus::Outdated
        );
        assert_eq!(
            status(true, Some(true), true, None),
            LedgerStatus::NotGranted
        );
        assert_eq!(
            status(true, Some(true), true, Some(true)),
            LedgerStatus::Ready
        );
    }

    #[test]
    fn ownership_of_the_schema_is_listed_first_and_of_functions_last() {
        let schema = SchemaRow {
            owner: "curfew".to_owned(),
            owner_can_login: true,
            current: false,
            agent_creates: true,
            agent_owns: true,
            agent_tables: vec!["ownership on curfew.lock".to_owned()],
        };
        let function = |signature: &str| FunctionFacts {
            signature: signature.to_owned(),
            present: true,
            ..FunctionFacts::default()
        };
        let facts = ledger_facts(
            schema.clone(),
            vec![
                (function("curfew.a()"), true),
                (function("curfew.b()"), false),
            ],
        );
        assert_eq!(
            facts.agent_excess,
            [
                "ownership of schema curfew",
                "ownership on curfew.lock",
                "ownership of curfew.a()"
            ]
        );
        assert_eq!(facts.functions.len(), 2);
        assert_eq!(facts.schema_owner.as_deref(), Some("curfew"));
        let facts = ledger_facts(
            SchemaRow {
                agent_owns: false,
                agent_tables: Vec::new(),
                ..schema
            },
            Vec::new(),
        );
        assert_eq!(facts.agent_excess, ["CREATE on schema curfew"]);
    }
}
