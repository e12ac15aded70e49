//! What `curfew check` reads about the gateway's auth function and session registry (see
//! `crate::ledger::gateway_inspect`): roles, functions, relations and their grants as the
//! catalogs show them. Catalog reads only, readable by any role.

/// What errors reading them say curfew was doing.
pub(crate) const WHAT_GATEWAY_FACTS: &str = "reading the gateway's auth function and registry";

/// The auth function's signature as [`DEFINER`] matches it.
pub(crate) const AUTH_FUNCTION_SIGNATURE: &str = "curfew.gateway_secret(text)";

/// The registering function's signature as [`DEFINER`] matches it.
pub(crate) const REGISTER_FUNCTION_SIGNATURE: &str =
    "curfew.register_gateway_session(integer,text,inet,integer,inet,integer,text)";

/// Role `$1`: its name, `LOGIN`, `SUPERUSER`, its other attributes, the roles it is a member
/// of and its members (both as names, sorted, once each: from PostgreSQL 16 a membership may be
/// granted by several grantors).
pub(crate) const ROLE: &str = "SELECT r.rolname::text, r.rolcanlogin, r.rolsuper,
       array_remove(ARRAY[CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
                          CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
                          CASE WHEN r.rolreplication THEN 'REPLICATION' END,
                          CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END], NULL)::text[],
       coalesce((SELECT array_agg(DISTINCT g.rolname::text ORDER BY g.rolname::text)
                   FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE m.member = r.oid), '{}')::text[],
       coalesce((SELECT array_agg(DISTINCT g.rolname::text ORDER BY g.rolname::text)
                   FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.member
                  WHERE m.roleid = r.oid), '{}')::text[]
  FROM pg_roles r WHERE r.rolname = $1";

/// Function `$1` in schema curfew (`curfew.name(type,type)`, as `oidvectortypes` spells the
/// types): its owner, `SECURITY DEFINER`, and whether it fixes `search_path = pg_catalog,
/// pg_temp`. Its grants are read with the install's own statement
/// (`crate::sql::dedicated::Dedicated::acl_sql`).
pub(crate) const DEFINER: &str = "SELECT o.rolname::text, p.prosecdef,
       coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)
  FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
 WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'curfew')
   AND format('curfew.%s(%s)', p.proname, replace(oidvectortypes(p.proargtypes), ', ', ',')) = $1";

/// The owner of relation `$1` in schema curfew, if it exists.
pub(crate) const RELATION_OWNER: &str = "SELECT o.rolname::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
 WHERE n.nspname = 'curfew' AND c.relname = $1";
