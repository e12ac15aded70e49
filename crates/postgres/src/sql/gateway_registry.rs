//! The gateway session registry as statement text (see `crate::ledger::gateway_registry` for
//! what it is and why): the table `curfew.gateway_sessions`, the function the gateway registers
//! a backend with, the view `curfew.sessions`, and the checks of their grants.

use crate::names::{GATEWAY_REGISTRY_OWNER, quote_identifier};
use crate::sql::gateway_admission::{
    GATEWAY_CLAIM_FUNCTION, GATEWAY_RELEASE_FUNCTION, admission_sql,
};
use crate::sql::gateway_violations::{GATEWAY_VIOLATION_FUNCTION, violations_sql};

/// The registry's table.
pub const GATEWAY_SESSIONS_TABLE: &str = "curfew.gateway_sessions";

/// The registering function's signature, as `GRANT`, `ALTER` and `DROP` name it.
pub const GATEWAY_REGISTER_FUNCTION: &str = "curfew.register_gateway_session(pg_catalog.int4, pg_catalog.text, pg_catalog.inet, pg_catalog.int4, pg_catalog.inet, pg_catalog.int4, pg_catalog.text)";

/// What the gateway runs right after logging a client in upstream: `$1` the backend's pid
/// (from BackendKeyData), `$2` the role it logged in as, `$3`/`$4` the gateway's own (local)
/// address and port of that upstream connection, `$5`/`$6` the client's address and port,
/// `$7` the gateway's id. Returns the backend's start, as the server has it.
pub const GATEWAY_REGISTER_QUERY: &str = "SELECT curfew.register_gateway_session($1::int4, $2::text, $3::inet, $4::int4, $5::inet, $6::int4, $7::text)";

/// The SQLSTATE the function raises when the backend is not the caller's own connection.
pub const NOT_A_GATEWAY_BACKEND: &str = "CF010";

/// The longest gateway id the function accepts, in characters.
pub const MAX_GATEWAY_ID_CHARS: usize = 200;

/// The table, the function and the view, created or replaced, owned by the registry's owner;
/// `agent` (curfew's role) and `pg_read_all_stats` may read, the gateway's role may call.
pub(crate) fn registry_sql(agent: &str, gateway: &str) -> String {
    let gateway_role_name = gateway.to_owned();
    let owner = quote_identifier(GATEWAY_REGISTRY_OWNER);
    let agent = quote_identifier(agent);
    let gateway = quote_identifier(gateway);
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {GATEWAY_SESSIONS_TABLE} (
    pid pg_catalog.int4 PRIMARY KEY,
    backend_start pg_catalog.timestamptz NOT NULL,
    role_name pg_catalog.text NOT NULL,
    client_addr pg_catalog.inet NOT NULL,
    client_port pg_catalog.int4 NOT NULL,
    gateway_id pg_catalog.text NOT NULL,
    gateway_role pg_catalog.text NOT NULL,
    registered_at pg_catalog.timestamptz NOT NULL
);
ALTER TABLE {GATEWAY_SESSIONS_TABLE} OWNER TO {owner};
REVOKE ALL ON {GATEWAY_SESSIONS_TABLE} FROM PUBLIC;
GRANT SELECT ON {GATEWAY_SESSIONS_TABLE} TO {agent}, pg_read_all_stats;
COMMENT ON TABLE {GATEWAY_SESSIONS_TABLE} IS 'curfew gateway: the backends it logged in, with the client behind each; written by curfew.register_gateway_session alone';

CREATE OR REPLACE FUNCTION {GATEWAY_REGISTER_FUNCTION_NAMED}
RETURNS pg_catalog.timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $register$
DECLARE
    v_start pg_catalog.timestamptz;
BEGIN
    IF p_gateway_id IS NULL OR pg_catalog.length(p_gateway_id) OPERATOR(pg_catalog.>) {MAX_GATEWAY_ID_CHARS}
       OR p_client_addr IS NULL OR p_client_port IS NULL THEN
        RAISE EXCEPTION 'a gateway id of 1 to {MAX_GATEWAY_ID_CHARS} characters, a client address and a port are required'
            USING ERRCODE = '22023';
    END IF;
    -- The backend must be a live client backend of that role whose peer is the gateway's
    -- own end of the upstream connection; its start comes from the server, never the
    -- caller, so a row never outlives its backend into a reused pid.
    SELECT a.backend_start INTO v_start
      FROM pg_catalog.pg_stat_activity a
     WHERE a.pid OPERATOR(pg_catalog.=) p_pid
       AND a.backend_type OPERATOR(pg_catalog.=) 'client backend'
       AND a.backend_start IS NOT NULL
       AND a.usename::pg_catalog.text OPERATOR(pg_catalog.=) p_role
       AND a.client_addr OPERATOR(pg_catalog.=) p_upstream_addr
       AND a.client_port OPERATOR(pg_catalog.=) p_upstream_port
       -- A caller over TCP is on the host the backend's peer is on.
       AND (pg_catalog.inet_client_addr() IS NULL
            OR pg_catalog.host(pg_catalog.inet_client_addr()) OPERATOR(pg_catalog.=)
               pg_catalog.host(a.client_addr));
    IF v_start IS NULL THEN
        RAISE EXCEPTION 'pid % is not a live session of role % connected from %:%, the caller''s host',
            p_pid, p_role, p_upstream_addr, p_upstream_port
            USING ERRCODE = '{NOT_A_GATEWAY_BACKEND}';
    END IF;
    -- Rows of backends that are gone; rows another registration is clearing are skipped.
    DELETE FROM {GATEWAY_SESSIONS_TABLE} g
     WHERE g.pid OPERATOR(pg_catalog.=) ANY (
        SELECT o.pid FROM {GATEWAY_SESSIONS_TABLE} o
         WHERE NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_stat_activity s
             WHERE s.pid OPERATOR(pg_catalog.=) o.pid
               AND s.backend_start OPERATOR(pg_catalog.=) o.backend_start)
         FOR UPDATE SKIP LOCKED);
    INSERT INTO {GATEWAY_SESSIONS_TABLE}
        (pid, backend_start, role_name, client_addr, client_port, gateway_id, gateway_role,
         registered_at)
    VALUES (p_pid, v_start, p_role, p_client_addr, p_client_port, p_gateway_id,
            SESSION_USER, pg_catalog.clock_timestamp())
    ON CONFLICT (pid) DO UPDATE SET
        backend_start = EXCLUDED.backend_start, role_name = EXCLUDED.role_name,
        client_addr = EXCLUDED.client_addr, client_port = EXCLUDED.client_port,
        gateway_id = EXCLUDED.gateway_id, gateway_role = EXCLUDED.gateway_role,
        registered_at = EXCLUDED.registered_at;
    RETURN v_start;
END $register$;
ALTER FUNCTION {GATEWAY_REGISTER_FUNCTION} OWNER TO {owner};
REVOKE ALL ON FUNCTION {GATEWAY_REGISTER_FUNCTION} FROM PUBLIC;
GRANT USAGE ON SCHEMA curfew TO {gateway}, {owner};
GRANT EXECUTE ON FUNCTION {GATEWAY_REGISTER_FUNCTION} TO {gateway};
COMMENT ON FUNCTION {GATEWAY_REGISTER_FUNCTION} IS 'curfew gateway: registers a backend it logged in, with the client behind it; callable by its role only';

CREATE OR REPLACE VIEW curfew.sessions AS
SELECT a.pid, a.backend_start, a.usename, a.datname, a.application_name, a.state,
       a.state_change, a.xact_start,
       g.pid IS NOT NULL AS via_gateway,
       COALESCE(g.client_addr, a.client_addr) AS client_addr,
       COALESCE(g.client_port, a.client_port) AS client_port,
       g.gateway_id,
       CASE WHEN g.pid IS NOT NULL THEN a.client_addr END AS gateway_addr,
       g.registered_at
  FROM pg_catalog.pg_stat_activity a
  LEFT JOIN {GATEWAY_SESSIONS_TABLE} g
    ON g.pid OPERATOR(pg_catalog.=) a.pid
   AND g.backend_start OPERATOR(pg_catalog.=) a.backend_start
 WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend';
ALTER VIEW curfew.sessions OWNER TO {owner};
REVOKE ALL ON curfew.sessions FROM PUBLIC;
GRANT SELECT ON curfew.sessions TO {agent}, pg_read_all_stats;
COMMENT ON VIEW curfew.sessions IS 'curfew: client sessions, with the real client of those that came through curfew gateway';
{admission}{violations}"#,
        GATEWAY_REGISTER_FUNCTION_NAMED = "curfew.register_gateway_session(p_pid pg_catalog.int4, p_role pg_catalog.text, p_upstream_addr pg_catalog.inet, p_upstream_port pg_catalog.int4, p_client_addr pg_catalog.inet, p_client_port pg_catalog.int4, p_gateway_id pg_catalog.text)",
        admission = admission_sql(GATEWAY_REGISTRY_OWNER, &gateway_role_name),
        violations = violations_sql(GATEWAY_REGISTRY_OWNER, &gateway_role_name),
    )
}

/// The registry owner's setup: created when absent, then (again) a role nobody logs in as,
/// with no attribute, that may read every row of `pg_stat_activity` (`pg_read_all_stats`).
pub(crate) fn registry_owner_sql(create: bool) -> String {
    let owner = quote_identifier(GATEWAY_REGISTRY_OWNER);
    let mut sql = String::new();
    if create {
        sql.push_str(&format!("CREATE ROLE {owner} NOLOGIN;"));
    }
    sql.push_str(&format!(
        "ALTER ROLE {owner} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
           PASSWORD NULL;
         GRANT pg_read_all_stats TO {owner};
         COMMENT ON ROLE {owner} IS 'owns curfew.gateway_sessions and the function that writes it; nobody logs in as it';"
    ));
    sql
}

/// What `GATEWAY_REGISTRY.acl_sql()` (`crate::sql::dedicated`) must return: reading for the agent and `pg_read_all_stats`, calling
/// for the gateway's role.
pub(crate) fn expected_acl(agent: &str, gateway: &str) -> Vec<String> {
    let mut expected = vec![
        format!("table:{agent}:SELECT"),
        "table:pg_read_all_stats:SELECT".to_owned(),
        format!("view:{agent}:SELECT"),
        "view:pg_read_all_stats:SELECT".to_owned(),
        format!("function:{gateway}:EXECUTE"),
        format!("claim function:{gateway}:EXECUTE"),
        format!("release function:{gateway}:EXECUTE"),
        format!("violation function:{gateway}:EXECUTE"),
    ];
    expected.sort();
    expected.dedup();
    expected
}

/// The grants made again after every grant is revoked.
pub(crate) fn grants_sql(agent: &str, gateway: &str) -> String {
    let agent = quote_identifier(agent);
    let gateway = quote_identifier(gateway);
    format!(
        "GRANT SELECT ON {GATEWAY_SESSIONS_TABLE} TO {agent}, pg_read_all_stats;
         GRANT SELECT ON curfew.sessions TO {agent}, pg_read_all_stats;
         GRANT EXECUTE ON FUNCTION {GATEWAY_REGISTER_FUNCTION} TO {gateway};
         GRANT EXECUTE ON FUNCTION {GATEWAY_CLAIM_FUNCTION} TO {gateway};
         GRANT EXECUTE ON FUNCTION {GATEWAY_RELEASE_FUNCTION} TO {gateway};
         GRANT EXECUTE ON FUNCTION {GATEWAY_VIOLATION_FUNCTION} TO {gateway};"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admission_claims_read_this_registry() {
        use crate::sql::gateway_admission::REGISTRY_TABLE;
        assert_eq!(REGISTRY_TABLE, GATEWAY_SESSIONS_TABLE);
    }

    #[test]
    fn names_are_quoted_and_the_function_is_fixed_and_revoked_from_public() {
        let sql = registry_sql("cur\"few", "gate way");
        assert!(sql.contains("TO \"cur\"\"few\", pg_read_all_stats;"));
        assert!(sql.contains("TO \"gate way\";"));
        assert!(sql.contains("SECURITY DEFINER SET search_path = pg_catalog, pg_temp"));
        assert!(sql.contains(&format!(
            "REVOKE ALL ON FUNCTION {GATEWAY_REGISTER_FUNCTION} FROM PUBLIC;"
        )));
        assert!(registry_owner_sql(true).starts_with("CREATE ROLE \"curfew_gateway_registry\""));
        assert!(!registry_owner_sql(false).contains("CREATE ROLE"));
    }

    #[test]
    fn the_expected_grants_are_the_readers_and_the_gateway() {
        assert_eq!(
            expected_acl("curfew", "gw"),
            vec![
                "claim function:gw:EXECUTE",
                "function:gw:EXECUTE",
                "release function:gw:EXECUTE",
                "table:curfew:SELECT",
                "table:pg_read_all_stats:SELECT",
                "view:curfew:SELECT",
                "view:pg_read_all_stats:SELECT",
                "violation function:gw:EXECUTE",
            ]
        );
    }
}
