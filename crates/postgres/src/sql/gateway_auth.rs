//! The gateway's auth function as statement text (see `crate::ledger::gateway_auth` for what
//! it is and why): `curfew.gateway_secret(role_name)`, with the served set baked in.

use crate::names::{GATEWAY_AUTH_OWNER, quote_identifier};

/// The function's signature, as `GRANT`, `ALTER` and `DROP` name it.
pub const GATEWAY_SECRET_FUNCTION: &str = "curfew.gateway_secret(pg_catalog.text)";

/// What the gateway runs: `$1` is the role a client logs in as. One row for every role (the
/// same query and path whoever asks): the kind of its secret (`scram-sha-256`, `md5`,
/// `password`, `none`, or `mock` for a role not served), the verifier only for SCRAM, and the
/// mock salt (base64, 16 bytes, from the mock key and the name: stable across restarts and
/// gateways) and iteration count (the server's `scram_iterations`, 4096 before PostgreSQL 16)
/// a stand-in verifier takes when there is no SCRAM one. For a served role also the login
/// locks in force on it in the ledger (kind `incident` or `window`, the rule, the reason, the
/// expiry in Unix milliseconds; parallel arrays) and the roles it is a member of, directly or
/// indirectly (as the agent's snapshot has them): facts the gateway acts on only once the
/// client has proved its password. A role NOLOGIN because curfew disabled its login for a lock
/// in force is served (so it can be refused with the reason); NOLOGIN otherwise, it is not.
pub const GATEWAY_SECRET_QUERY: &str = "SELECT secret_kind, verifier, mock_salt, mock_iterations, \
     lock_kinds, lock_rules, lock_reasons, lock_until_ms, member_of FROM curfew.gateway_secret($1)";

/// The table holding the mock key: one row of 32 random bytes, written at the first install
/// and kept, readable by the function's owner alone.
pub(crate) const GATEWAY_MOCK_KEY_TABLE: &str = "curfew.gateway_mock_key";

/// Writes the mock key `$1` (32 bytes) unless one is there already.
pub(crate) const INSERT_MOCK_KEY: &str =
    "INSERT INTO curfew.gateway_mock_key (key) VALUES ($1) ON CONFLICT (only_row) DO NOTHING";

/// Grantees on the mock key's table other than its owner (the installing superuser) and the
/// function's owner, quoted, `PUBLIC` for everyone: what default privileges granted.
pub(crate) const EXTRA_KEY_GRANTEES: &str = "SELECT DISTINCT CASE WHEN e.grantee = 0 THEN 'PUBLIC'
         ELSE quote_ident(r.rolname) END
  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) e
  LEFT JOIN pg_roles r ON r.oid = e.grantee
 WHERE c.oid = 'curfew.gateway_mock_key'::regclass
   AND e.grantee <> c.relowner
   AND (r.rolname IS NULL OR r.rolname <> $1 OR e.privilege_type <> 'SELECT')
 ORDER BY 1";

/// The mock key's table, created when absent (its key kept across installs), owned by the
/// installer, readable by the function's owner alone.
pub(crate) fn mock_key_sql() -> String {
    let owner = quote_identifier(GATEWAY_AUTH_OWNER);
    format!(
        "CREATE TABLE IF NOT EXISTS {GATEWAY_MOCK_KEY_TABLE} (
           only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
           key bytea NOT NULL CHECK (pg_catalog.length(key) = 32));
         ALTER TABLE {GATEWAY_MOCK_KEY_TABLE} OWNER TO CURRENT_USER;
         REVOKE ALL ON {GATEWAY_MOCK_KEY_TABLE} FROM PUBLIC;
         GRANT SELECT ON {GATEWAY_MOCK_KEY_TABLE} TO {owner};
         GRANT USAGE ON SCHEMA curfew TO {owner};
         GRANT SELECT ({LOCK_COLUMNS_READ}) ON curfew.lock TO {owner};
         GRANT SELECT (role_oid) ON curfew.disabled_login TO {owner};
         COMMENT ON TABLE {GATEWAY_MOCK_KEY_TABLE} IS 'curfew gateway: the key of the mock salts of roles it does not serve; read by curfew.gateway_secret alone';"
    )
}

/// The columns of the ledger's `curfew.lock` the auth function reads (its owner may read
/// these alone): which role, the kind, rule and reason, and whether it is still in force.
pub(crate) const LOCK_COLUMNS_READ: &str =
    "id, role_oid, kind, rule, reason, expires_at, released_at";

/// Attributes of role `$1`: whether it is a superuser. No row when it does not exist.
pub(crate) const ROLE_SUPERUSER: &str = "SELECT rolsuper FROM pg_roles WHERE rolname = $1";

/// Whether a role named by the UTF-8 bytes `$1` exists, compared as bytes: a name the
/// database's encoding cannot hold is then not found rather than an error.
pub(crate) const ROLE_EXISTS_BYTES: &str =
    "SELECT 1 FROM pg_roles WHERE convert_to(rolname::text, 'UTF8') = $1::bytea";

/// Members of role `$1` (whoever inherits its privileges or may act as it), as names.
pub(crate) const ROLE_MEMBERS: &str = "SELECT m.member::regrole::text FROM pg_auth_members m
     JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = $1 ORDER BY 1";

/// What role `$1` (the owner) holds besides the function and its grant on `pg_authid`, one
/// line each: roles it is a member of, shared dependencies (objects it owns, privileges it
/// holds, in any database) other than those and its reads of the mock key, the ledger's
/// locks (and the schema), per-role or per-database settings. Both
/// are allowed in this database only (`IS NOT DISTINCT FROM`: an object that does not exist
/// yet allows nothing, where `=` would give NULL and hide the row) (`pg_authid`'s ACL lives in each database's `pg_class`).
pub(crate) const OWNER_HOLDINGS: &str =
    "WITH owner AS (SELECT oid FROM pg_roles WHERE rolname = $1),
     here AS (SELECT oid FROM pg_database WHERE datname = current_database())
SELECT 'member of role ' || m.roleid::regrole::text
  FROM pg_auth_members m, owner o WHERE m.member = o.oid
UNION ALL
SELECT CASE d.deptype WHEN 'o' THEN 'owner of ' ELSE 'privileges on ' END
       || COALESCE(pg_describe_object(d.classid, d.objid, d.objsubid),
                   d.classid::regclass::text || ' ' || d.objid::text)
       || CASE WHEN d.dbid = 0 THEN '' ELSE ' in database oid ' || d.dbid::text END
  FROM pg_shdepend d, owner o
 WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = o.oid
   AND NOT (d.classid = 'pg_proc'::regclass AND d.deptype = 'o'
            AND d.dbid = (SELECT oid FROM here)
            AND d.objid IS NOT DISTINCT FROM to_regprocedure('curfew.gateway_secret(text)'))
   AND NOT (d.classid = 'pg_class'::regclass AND d.deptype = 'a'
            AND d.dbid = (SELECT oid FROM here)
            AND (d.objid = 'pg_catalog.pg_authid'::regclass
                 OR d.objid IS NOT DISTINCT FROM to_regclass('curfew.gateway_mock_key')
                 OR d.objid IS NOT DISTINCT FROM to_regclass('curfew.lock')
                 OR d.objid IS NOT DISTINCT FROM to_regclass('curfew.disabled_login')))
   AND NOT (d.classid = 'pg_namespace'::regclass AND d.deptype = 'a'
            AND d.dbid = (SELECT oid FROM here) AND d.objid IS NOT DISTINCT FROM to_regnamespace('curfew'))
UNION ALL
SELECT 'settings (ALTER ROLE ... SET) '
       || CASE WHEN s.setdatabase = 0 THEN 'in every database'
               ELSE 'in database oid ' || s.setdatabase::text END
  FROM pg_db_role_setting s, owner o WHERE s.setrole = o.oid
ORDER BY 1";

/// The owner's setup: created when absent, then (again) a role nobody logs in as, with no
/// attribute, that may read only the columns of `pg_authid` the function reads. Never a
/// superuser: a role someone created before the install could then own a SECURITY DEFINER
/// function with a superuser's rights (an earlier install's superuser owner is demoted here).
pub(crate) fn owner_sql(create: bool) -> String {
    let owner = quote_identifier(GATEWAY_AUTH_OWNER);
    let mut sql = String::new();
    if create {
        sql.push_str(&format!("CREATE ROLE {owner} NOLOGIN;"));
    }
    sql.push_str(&format!(
        "ALTER ROLE {owner} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
           PASSWORD NULL;
         REVOKE ALL ON pg_catalog.pg_authid FROM {owner};
         GRANT SELECT ({AUTHID_COLUMNS}) ON pg_catalog.pg_authid TO {owner};
         COMMENT ON ROLE {owner} IS 'owns curfew.gateway_secret, which reads pg_authid; nobody logs in as it';"
    ));
    sql
}

/// The columns of `pg_authid` the function reads: all its owner may read.
pub(crate) const AUTHID_COLUMNS: &str =
    "oid, rolname, rolpassword, rolcanlogin, rolvaliduntil, rolsuper";

/// `curfew scram mock salt` and a NUL, as hex: the label between the key and the name.
const MOCK_LABEL_HEX: &str = "63757266657720736372616d206d6f636b2073616c7400";

/// Hex digits of a text's UTF-8 bytes: how a role name enters the function's body. Hex has no
/// quote or backslash, so no name and no `standard_conforming_strings` can change the SQL.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The function, dropped and created again (so its grants start from nothing and a changed
/// served set replaces the old), owned by [`GATEWAY_AUTH_OWNER`], executable by
/// `gateway_role` alone.
pub(crate) fn function_sql(
    gateway_role: &str,
    serve_members_of: Option<&str>,
    serve_superusers: bool,
) -> String {
    let owner = quote_identifier(GATEWAY_AUTH_OWNER);
    let gateway = quote_identifier(gateway_role);
    // Names compare as UTF-8 bytes: converting the other way would fail, in a database whose
    // encoding cannot hold the name, for every login.
    // The served set: the members, direct or indirect, of one role and the role itself (as
    // pg_hba.conf's `+role`, whatever INHERIT says); a superuser is no member by its power.
    let (served_cte, member_clause) = match serve_members_of {
        Some(role) => (
            format!(
                "WITH RECURSIVE served(oid) AS (
    SELECT g.oid FROM pg_catalog.pg_authid g
    WHERE pg_catalog.convert_to(g.rolname::pg_catalog.text, 'UTF8') OPERATOR(pg_catalog.=)
          pg_catalog.decode('{}', 'hex')
  UNION
    SELECT m.member FROM pg_catalog.pg_auth_members m
    JOIN served s ON m.roleid OPERATOR(pg_catalog.=) s.oid
),
",
                hex(role)
            ),
            "a.oid IN (SELECT s.oid FROM served s)",
        ),
        // RECURSIVE either way: the memberships below are recursive.
        None => ("WITH RECURSIVE ".to_owned(), "true"),
    };
    let superusers = if serve_superusers {
        "true"
    } else {
        "NOT a.rolsuper"
    };
    let gateway_hex = hex(gateway_role);
    format!(
        "DROP FUNCTION IF EXISTS {GATEWAY_SECRET_FUNCTION};
CREATE FUNCTION curfew.gateway_secret(role_name pg_catalog.text)
  RETURNS TABLE (secret_kind pg_catalog.text, verifier pg_catalog.text,
                 mock_salt pg_catalog.text, mock_iterations pg_catalog.int4,
                 lock_kinds pg_catalog.text[], lock_rules pg_catalog.text[],
                 lock_reasons pg_catalog.text[], lock_until_ms pg_catalog.int8[],
                 member_of pg_catalog.text[])
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $gateway_secret$
{served_cte}asked AS (
  SELECT a.oid, a.rolname, a.rolpassword, a.rolcanlogin, a.rolvaliduntil, a.rolsuper
  FROM pg_catalog.pg_authid a
  WHERE a.rolname::pg_catalog.text OPERATOR(pg_catalog.=) role_name
),
-- The ledger's locks in force on the role (as the ledger's own ACTIVE condition).
locked AS (
  SELECT l.id, l.kind, l.rule, l.reason, l.expires_at
  FROM curfew.lock l JOIN asked a ON l.role_oid OPERATOR(pg_catalog.=) a.oid
  WHERE l.released_at IS NULL
    AND (l.expires_at IS NULL OR l.expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp())
),
found AS (
  SELECT a.oid,
         CASE
           WHEN a.rolpassword IS NULL THEN 'none'
           WHEN pg_catalog.starts_with(a.rolpassword, 'SCRAM-SHA-256$') THEN 'scram-sha-256'
           WHEN a.rolpassword OPERATOR(pg_catalog.~) '^md5[0-9a-f]{{32}}$' THEN 'md5'
           ELSE 'password' END AS kind,
         CASE WHEN pg_catalog.starts_with(a.rolpassword, 'SCRAM-SHA-256$') THEN a.rolpassword END
           AS verifier
  FROM asked a
  -- NOLOGIN only because curfew disabled the login for a lock still in force: served, so the
  -- gateway can refuse it with the lock's reason once the password is proved.
  WHERE (a.rolcanlogin
         OR (EXISTS (SELECT 1 FROM curfew.disabled_login d
                      WHERE d.role_oid OPERATOR(pg_catalog.=) a.oid)
             AND EXISTS (SELECT 1 FROM locked)))
    AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil OPERATOR(pg_catalog.>) pg_catalog.now())
    AND {superusers}
    AND {member_clause}
    -- Never the gateway's own role: whoever runs the gateway holds its password already.
    AND pg_catalog.convert_to(a.rolname::pg_catalog.text, 'UTF8') OPERATOR(pg_catalog.<>)
        pg_catalog.decode('{gateway_hex}', 'hex')
),
-- Its memberships, direct or indirect, as the agent's snapshot computes them.
groups(roleid) AS (
  SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN found f
      ON m.member OPERATOR(pg_catalog.=) f.oid
  UNION
  SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN groups g
      ON m.member OPERATOR(pg_catalog.=) g.roleid
)
-- One row whoever is asked: a role not served gets kind 'mock' and no locks or memberships;
-- every row carries the mock salt (SHA-256 of the key, a label and the name, cut to
-- PostgreSQL's 16 bytes) and the server's iteration count, so a stand-in looks like a real
-- verifier made now.
SELECT COALESCE(f.kind, 'mock'), f.verifier,
       pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(
           k.key OPERATOR(pg_catalog.||) pg_catalog.decode('{MOCK_LABEL_HEX}', 'hex')
                 OPERATOR(pg_catalog.||) pg_catalog.convert_to(role_name, 'UTF8')), 1, 16),
         'base64'),
       COALESCE(pg_catalog.current_setting('scram_iterations', true)::pg_catalog.int4, 4096),
       CASE WHEN f.kind IS NOT NULL THEN
         COALESCE((SELECT pg_catalog.array_agg(l.kind ORDER BY l.id) FROM locked l), '{{}}') END,
       CASE WHEN f.kind IS NOT NULL THEN
         COALESCE((SELECT pg_catalog.array_agg(l.rule ORDER BY l.id) FROM locked l), '{{}}') END,
       CASE WHEN f.kind IS NOT NULL THEN
         COALESCE((SELECT pg_catalog.array_agg(l.reason ORDER BY l.id) FROM locked l), '{{}}') END,
       CASE WHEN f.kind IS NOT NULL THEN
         COALESCE((SELECT pg_catalog.array_agg(
             (EXTRACT(epoch FROM l.expires_at) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8
             ORDER BY l.id) FROM locked l), '{{}}') END,
       CASE WHEN f.kind IS NOT NULL THEN
         COALESCE((SELECT pg_catalog.array_agg(DISTINCT g.rolname::pg_catalog.text)
                   FROM groups x JOIN pg_catalog.pg_authid g ON g.oid OPERATOR(pg_catalog.=) x.roleid),
                  '{{}}') END
FROM curfew.gateway_mock_key k LEFT JOIN found f ON true
$gateway_secret$;
ALTER FUNCTION {GATEWAY_SECRET_FUNCTION} OWNER TO {owner};
REVOKE ALL ON FUNCTION {GATEWAY_SECRET_FUNCTION} FROM PUBLIC;
GRANT USAGE ON SCHEMA curfew TO {gateway};
GRANT EXECUTE ON FUNCTION {GATEWAY_SECRET_FUNCTION} TO {gateway};
COMMENT ON FUNCTION {GATEWAY_SECRET_FUNCTION} IS 'curfew gateway: the SCRAM verifier of a role the gateway serves; callable by its role only';"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_enter_the_body_as_hex_and_grants_as_quoted_identifiers() {
        let sql = function_sql("gate\"way", Some("o'brien\\ \"x\""), false);
        assert!(sql.contains(&format!("decode('{}', 'hex')", hex("o'brien\\ \"x\""))));
        assert!(!sql.contains("o'brien"));
        assert!(sql.contains("TO \"gate\"\"way\";"));
        assert!(sql.contains("AND NOT a.rolsuper"));
        assert_eq!(hex("a'é"), "6127c3a9");
        assert_eq!(hex("curfew scram mock salt\0"), MOCK_LABEL_HEX);
    }

    #[test]
    fn without_a_role_every_login_role_is_in_the_served_set() {
        let sql = function_sql("gw", None, true);
        assert!(!sql.contains("served(oid)"));
        assert!(sql.contains("WITH RECURSIVE asked AS"));
        assert!(sql.contains("AND true\n    AND true\n"));
        assert!(sql.contains(&format!("pg_catalog.decode('{}', 'hex')", hex("gw"))));
        assert!(sql.contains("SET search_path = pg_catalog, pg_temp"));
        assert!(sql.contains(
            "REVOKE ALL ON FUNCTION curfew.gateway_secret(pg_catalog.text) FROM PUBLIC;"
        ));
    }
}
