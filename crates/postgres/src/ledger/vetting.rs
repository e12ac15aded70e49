//! Before `curfew init` hands an existing `curfew` schema to the owner role, it makes sure the
//! schema holds nothing that would run someone else's code with the owner's rights: the
//! functions write the ledger's tables as `curfew_owner` (a superuser on PostgreSQL 16 and
//! later), so a trigger, rule, row-level policy, or a default, check or index expression calling
//! a function planted there by whoever could write the schema before (curfew's role owned it up
//! to version 1, or a role with CREATE on the database made it first) would be an escalation.

use tokio_postgres::Transaction;

/// One line per object in schema `curfew` that curfew did not create and would not trust.
const FOREIGN: &str = "
WITH t AS (
  SELECT c.oid, c.relname FROM pg_class c
  WHERE c.relnamespace = to_regnamespace('curfew') AND c.relkind IN ('r', 'p')
)
SELECT format('trigger %s on curfew.%s', tg.tgname, t.relname)
  FROM pg_trigger tg JOIN t ON t.oid = tg.tgrelid WHERE NOT tg.tgisinternal
UNION ALL
SELECT format('rule %s on curfew.%s', r.rulename, t.relname)
  FROM pg_rewrite r JOIN t ON t.oid = r.ev_class
UNION ALL
SELECT format('row-level security policy %s on curfew.%s', p.polname, t.relname)
  FROM pg_policy p JOIN t ON t.oid = p.polrelid
UNION ALL
SELECT format('row-level security enabled on curfew.%s', t.relname)
  FROM t JOIN pg_class c ON c.oid = t.oid WHERE c.relrowsecurity
UNION ALL
SELECT format('%s curfew.%s', CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
              WHEN 'f' THEN 'foreign table' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence'
              ELSE 'relation' END, c.relname)
  FROM pg_class c
  WHERE c.relnamespace = to_regnamespace('curfew')
    AND NOT (c.relkind = 'r' AND c.relname IN ('lock', 'disabled_login', 'anchor'))
    AND NOT (c.relkind = 'S' AND c.relname = 'lock_id_seq')
    AND NOT (c.relkind = 'i' AND c.relname IN ('lock_pkey', 'disabled_login_pkey', 'lock_one_active',
                                               'anchor_pkey'))
UNION ALL
SELECT format('%s, which calls %s', pg_describe_object(d.classid, d.objid, d.objsubid),
              d.refobjid::regprocedure)
  FROM pg_depend d
  JOIN pg_proc f ON f.oid = d.refobjid
  WHERE d.refclassid = 'pg_proc'::regclass
    AND f.pronamespace <> 'pg_catalog'::regnamespace
    AND (   (d.classid = 'pg_attrdef'::regclass
             AND d.objid IN (SELECT a.oid FROM pg_attrdef a JOIN t ON t.oid = a.adrelid))
         OR (d.classid = 'pg_constraint'::regclass
             AND d.objid IN (SELECT k.oid FROM pg_constraint k JOIN t ON t.oid = k.conrelid))
         OR (d.classid = 'pg_class'::regclass
             AND d.objid IN (SELECT i.indexrelid FROM pg_index i JOIN t ON t.oid = i.indrelid)))
UNION ALL
SELECT format('privileges of role %s on curfew.%s', g.grantee::regrole, t.relname)
  FROM t JOIN pg_class c ON c.oid = t.oid, aclexplode(c.relacl) g
  WHERE g.grantee <> c.relowner AND g.grantee <> 0
    AND g.grantee NOT IN (SELECT oid FROM pg_roles WHERE rolname IN ($1, 'curfew_owner'))
UNION ALL
SELECT format('member %s of role curfew_owner', m.member::regrole)
  FROM pg_auth_members m
  WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = 'curfew_owner')
    AND m.member <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
ORDER BY 1";

/// What in schema `curfew` (and among `curfew_owner`'s members, who could act as it) curfew
/// would not trust, in words; empty when nothing. `agent_role` may keep its grants.
pub(crate) async fn foreign_objects(
    tx: &Transaction<'_>,
    agent_role: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = tx.query(FOREIGN, &[&agent_role]).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}
