//! Session caps at the gateway's login (issue 17), as statement text: the gateway claims a
//! place for a login before judging it, through a function only its role may call, owned by
//! the registry's owner (a member of `pg_read_all_stats`, so it sees every backend).
//!
//! The claim serializes the admissions of one role across every gateway instance on a row
//! lock in `curfew.gateway_admission_gate` (a curfew-owned table nobody else may touch, unlike
//! an advisory lock's key, which any role can take), then counts the role's live client
//! backends (`pg_stat_activity`, its per-transaction snapshot cleared first) plus the
//! admissions still in flight (`curfew.gateway_admissions`), records its own, and returns the
//! count with what a session cap's scope reads of each: database, application name and client
//! address (the client behind the gateway for a backend it registered), so the gateway counts
//! per cap as the agent does (`curfew_policy::admit`). The gateway releases its claim once the
//! new backend is logged in (and visible) or the login refused. The claim's uuid is the
//! gateway's own: a claim whose answer it stopped waiting for (the login then goes on
//! uncounted) is released too, behind the claim on the same connection (should that connection
//! be lost and replaced between the two while the server still runs the claim, the release
//! may come first and the claim count until it expires: rare, and it only over-counts). A
//! claim a lost gateway never released stops counting after [`CLAIM_LIFETIME_SECONDS`]. Two gateways can
//! therefore not both admit "the last" session.

use crate::names::quote_identifier;

/// The admissions in flight.
pub(crate) const GATEWAY_ADMISSIONS_TABLE: &str = "curfew.gateway_admissions";

/// The gateway session registry's table (`crate::sql::gateway_registry`, which installs this
/// module's SQL after it), read for the client behind a registered backend.
pub(crate) const REGISTRY_TABLE: &str = "curfew.gateway_sessions";

/// One row per role, locked to serialize that role's admissions.
pub(crate) const GATEWAY_ADMISSION_GATE_TABLE: &str = "curfew.gateway_admission_gate";

/// The claiming function's signature, as `GRANT`, `ALTER` and `DROP` name it.
pub(crate) const GATEWAY_CLAIM_FUNCTION: &str = "curfew.claim_gateway_admission(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.inet, pg_catalog.uuid)";

/// The claiming function's signature before it took the login's database, application and
/// client (dropped by `curfew init`: its result would count every session of the role).
const GATEWAY_CLAIM_FUNCTION_V1: &str = "curfew.claim_gateway_admission(pg_catalog.text)";

/// The claiming function's signature before the gateway named the claim (dropped by `curfew
/// init`: a claim whose answer came too late could not be released, and counted until it
/// expired).
const GATEWAY_CLAIM_FUNCTION_V2: &str = "curfew.claim_gateway_admission(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.inet)";

/// The releasing function's signature.
pub(crate) const GATEWAY_RELEASE_FUNCTION: &str =
    "curfew.release_gateway_admission(pg_catalog.uuid)";

/// What the gateway runs after a client proved its password, when its policy caps sessions:
/// `$1` the role, `$2` the database, `$3` the application name, `$4` the client's address
/// (NULL: a Unix socket), `$5` the claim, a uuid the gateway chose (so that it can release a
/// claim whose answer it stopped waiting for). Returns the claim (NULL for an unknown role:
/// nothing recorded), how many live sessions
/// and other admissions in flight the role has before this one, and for each of them (in
/// three arrays of that length, in the same order) its database, application name and client
/// address (NULL: a Unix socket).
pub const GATEWAY_CLAIM_QUERY: &str = "SELECT claim::pg_catalog.text, live, databases, applications, client_addrs FROM curfew.claim_gateway_admission($1::text, $2::text, $3::text, $4::inet, $5::pg_catalog.text::pg_catalog.uuid)";

/// Releases claim `$1` (the gateway's own only).
pub const GATEWAY_RELEASE_QUERY: &str =
    "SELECT curfew.release_gateway_admission($1::pg_catalog.text::pg_catalog.uuid)";

/// How long an unreleased claim counts: longer than any login takes.
pub const CLAIM_LIFETIME_SECONDS: u32 = 60;

/// The tables and functions, owned by `owner`, the functions executable by `gateway`.
pub(crate) fn admission_sql(owner: &str, gateway: &str) -> String {
    let owner = quote_identifier(owner);
    let gateway = quote_identifier(gateway);
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {GATEWAY_ADMISSION_GATE_TABLE} (
    role_oid pg_catalog.oid PRIMARY KEY
);
ALTER TABLE {GATEWAY_ADMISSION_GATE_TABLE} OWNER TO {owner};
REVOKE ALL ON {GATEWAY_ADMISSION_GATE_TABLE} FROM PUBLIC;
COMMENT ON TABLE {GATEWAY_ADMISSION_GATE_TABLE} IS 'curfew gateway: a row per role, locked while one of its logins is counted; written by curfew.claim_gateway_admission alone';
CREATE TABLE IF NOT EXISTS {GATEWAY_ADMISSIONS_TABLE} (
    claim pg_catalog.uuid PRIMARY KEY,
    role_oid pg_catalog.oid NOT NULL,
    gateway_role pg_catalog.text NOT NULL,
    claimed_at pg_catalog.timestamptz NOT NULL
);
-- What a cap's scope reads of a login in flight (added to an earlier install's table).
ALTER TABLE {GATEWAY_ADMISSIONS_TABLE}
    ADD COLUMN IF NOT EXISTS database_name pg_catalog.text,
    ADD COLUMN IF NOT EXISTS application_name pg_catalog.text,
    ADD COLUMN IF NOT EXISTS client_addr pg_catalog.inet;
-- Claims of the function this replaces have no database: none is left, it has expired or
-- its gateway calls a function that no longer exists.
DELETE FROM {GATEWAY_ADMISSIONS_TABLE} WHERE database_name IS NULL;
ALTER TABLE {GATEWAY_ADMISSIONS_TABLE} OWNER TO {owner};
REVOKE ALL ON {GATEWAY_ADMISSIONS_TABLE} FROM PUBLIC;
COMMENT ON TABLE {GATEWAY_ADMISSIONS_TABLE} IS 'curfew gateway: logins admitted and not logged in yet, counted against session caps';

DROP FUNCTION IF EXISTS {GATEWAY_CLAIM_FUNCTION_V1};
DROP FUNCTION IF EXISTS {GATEWAY_CLAIM_FUNCTION_V2};
-- The database and application name are the client's own words: they only decide which caps
-- count a session (as the agent reads them from pg_stat_activity), never admit anything.
CREATE OR REPLACE FUNCTION curfew.claim_gateway_admission(p_role pg_catalog.text,
    p_database pg_catalog.text, p_application pg_catalog.text, p_client_addr pg_catalog.inet,
    p_claim pg_catalog.uuid)
RETURNS TABLE (claim pg_catalog.uuid, live pg_catalog.int4, databases pg_catalog.text[],
               applications pg_catalog.text[], client_addrs pg_catalog.inet[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $claim$
DECLARE
    v_oid pg_catalog.oid;
    v_live pg_catalog.int4;
    v_databases pg_catalog.text[];
    v_applications pg_catalog.text[];
    v_addrs pg_catalog.inet[];
BEGIN
    SELECT r.oid INTO v_oid FROM pg_catalog.pg_roles r
     WHERE r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) p_role;
    IF p_database IS NULL OR p_application IS NULL OR p_claim IS NULL THEN
        RAISE EXCEPTION 'a database, an application name (empty if none) and a claim are required'
            USING ERRCODE = '22023';
    END IF;
    IF v_oid IS NULL THEN
        RETURN QUERY SELECT NULL::pg_catalog.uuid, 0, '{{}}'::pg_catalog.text[],
            '{{}}'::pg_catalog.text[], '{{}}'::pg_catalog.inet[];
        RETURN;
    END IF;
    -- One admission of this role at a time, across gateways: held until this commits.
    INSERT INTO {GATEWAY_ADMISSION_GATE_TABLE} (role_oid) VALUES (v_oid) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM {GATEWAY_ADMISSION_GATE_TABLE} g
     WHERE g.role_oid OPERATOR(pg_catalog.=) v_oid FOR UPDATE;
    DELETE FROM {GATEWAY_ADMISSIONS_TABLE} a
     WHERE a.claimed_at OPERATOR(pg_catalog.<) (pg_catalog.clock_timestamp()
           OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => {CLAIM_LIFETIME_SECONDS}));
    -- pg_stat_activity is read once per transaction: read it again, now that the lock is
    -- held, so a backend that logged in meanwhile counts.
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    -- The role's client backends, a registered gateway backend with the client behind it
    -- (as the registry has it), then the admissions in flight.
    SELECT pg_catalog.count(*)::pg_catalog.int4,
           COALESCE(pg_catalog.array_agg(o.database_name), '{{}}'),
           COALESCE(pg_catalog.array_agg(o.application_name), '{{}}'),
           COALESCE(pg_catalog.array_agg(o.client_addr), '{{}}')
      INTO v_live, v_databases, v_applications, v_addrs
      FROM (SELECT COALESCE(s.datname::pg_catalog.text, '') AS database_name,
                   COALESCE(s.application_name, '') AS application_name,
                   COALESCE(g.client_addr, s.client_addr) AS client_addr
              FROM pg_catalog.pg_stat_activity s
              LEFT JOIN {REGISTRY_TABLE} g
                ON g.pid OPERATOR(pg_catalog.=) s.pid
               AND g.backend_start OPERATOR(pg_catalog.=) s.backend_start
             WHERE s.usesysid OPERATOR(pg_catalog.=) v_oid
               AND s.backend_type OPERATOR(pg_catalog.=) 'client backend'
            UNION ALL
            SELECT a.database_name, a.application_name, a.client_addr
              FROM {GATEWAY_ADMISSIONS_TABLE} a
             WHERE a.role_oid OPERATOR(pg_catalog.=) v_oid) o;
    -- The gateway's own uuid: a claim it reuses fails here (unique) rather than merge.
    INSERT INTO {GATEWAY_ADMISSIONS_TABLE}
        (claim, role_oid, gateway_role, claimed_at, database_name, application_name, client_addr)
    VALUES (p_claim, v_oid, SESSION_USER, pg_catalog.clock_timestamp(), p_database,
            p_application, p_client_addr);
    RETURN QUERY SELECT p_claim, v_live, v_databases, v_applications, v_addrs;
END $claim$;
ALTER FUNCTION {GATEWAY_CLAIM_FUNCTION} OWNER TO {owner};
REVOKE ALL ON FUNCTION {GATEWAY_CLAIM_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {GATEWAY_CLAIM_FUNCTION} TO {gateway};
COMMENT ON FUNCTION {GATEWAY_CLAIM_FUNCTION} IS 'curfew gateway: counts a role''s sessions and admissions in flight for a login, and claims its place; callable by its role only';

CREATE OR REPLACE FUNCTION curfew.release_gateway_admission(p_claim pg_catalog.uuid)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $release$
DELETE FROM {GATEWAY_ADMISSIONS_TABLE} a
 WHERE a.claim OPERATOR(pg_catalog.=) p_claim
   AND a.gateway_role OPERATOR(pg_catalog.=) SESSION_USER::pg_catalog.text
$release$;
ALTER FUNCTION {GATEWAY_RELEASE_FUNCTION} OWNER TO {owner};
REVOKE ALL ON FUNCTION {GATEWAY_RELEASE_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {GATEWAY_RELEASE_FUNCTION} TO {gateway};
COMMENT ON FUNCTION {GATEWAY_RELEASE_FUNCTION} IS 'curfew gateway: releases a claim of its own once the login is done; callable by its role only';
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_are_fixed_revoked_from_public_and_granted_to_the_gateway_alone() {
        let sql = admission_sql("curfew_gateway_registry", "gate way");
        assert_eq!(
            sql.matches("SECURITY DEFINER SET search_path = pg_catalog, pg_temp")
                .count(),
            2
        );
        assert!(sql.contains(&format!(
            "REVOKE ALL ON FUNCTION {GATEWAY_CLAIM_FUNCTION} FROM PUBLIC;"
        )));
        assert!(sql.contains(&format!(
            "GRANT EXECUTE ON FUNCTION {GATEWAY_RELEASE_FUNCTION} TO \"gate way\";"
        )));
        assert!(sql.contains("pg_stat_clear_snapshot()"));
        // An install made before the claim took the login's details is upgraded in place.
        assert!(sql.contains(&format!(
            "DROP FUNCTION IF EXISTS {GATEWAY_CLAIM_FUNCTION_V1};
DROP FUNCTION IF EXISTS {GATEWAY_CLAIM_FUNCTION_V2};"
        )));
        assert!(sql.contains("ADD COLUMN IF NOT EXISTS database_name"));
        assert!(!sql.contains("advisory"));
    }
}
