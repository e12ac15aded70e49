//! Session caps at the gateway's login (issue 17), as statement text: the gateway claims a
//! place for a login before judging it, through a function only its role may call, owned by
//! the registry's owner (a member of `pg_read_all_stats`, so it sees every backend).
//!
//! The claim serializes the admissions of one role across every gateway instance on a row
//! lock in `curfew.gateway_admission_gate` (a curfew-owned table nobody else may touch, unlike
//! an advisory lock's key, which any role can take), then counts the role's live client
//! backends (`pg_stat_activity`, its per-transaction snapshot cleared first) plus the
//! admissions still in flight (`curfew.gateway_admissions`), records its own, and returns the
//! count. The gateway releases its claim once the new backend is logged in (and visible) or
//! the login refused; a claim a lost gateway never released stops counting after
//! [`CLAIM_LIFETIME_SECONDS`]. Two gateways can therefore not both admit "the last" session.

use crate::names::quote_identifier;

/// The admissions in flight.
pub(crate) const GATEWAY_ADMISSIONS_TABLE: &str = "curfew.gateway_admissions";

/// One row per role, locked to serialize that role's admissions.
pub(crate) const GATEWAY_ADMISSION_GATE_TABLE: &str = "curfew.gateway_admission_gate";

/// The claiming function's signature, as `GRANT`, `ALTER` and `DROP` name it.
pub(crate) const GATEWAY_CLAIM_FUNCTION: &str = "curfew.claim_gateway_admission(pg_catalog.text)";

/// The releasing function's signature.
pub(crate) const GATEWAY_RELEASE_FUNCTION: &str =
    "curfew.release_gateway_admission(pg_catalog.uuid)";

/// What the gateway runs after a client proved its password, when its policy caps sessions:
/// `$1` the role. Returns the claim (NULL for an unknown role) and the role's live sessions
/// and other admissions in flight, before this one.
pub const GATEWAY_CLAIM_QUERY: &str =
    "SELECT claim::pg_catalog.text, live FROM curfew.claim_gateway_admission($1::text)";

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
ALTER TABLE {GATEWAY_ADMISSIONS_TABLE} OWNER TO {owner};
REVOKE ALL ON {GATEWAY_ADMISSIONS_TABLE} FROM PUBLIC;
COMMENT ON TABLE {GATEWAY_ADMISSIONS_TABLE} IS 'curfew gateway: logins admitted and not logged in yet, counted against session caps';

CREATE OR REPLACE FUNCTION curfew.claim_gateway_admission(p_role pg_catalog.text)
RETURNS TABLE (claim pg_catalog.uuid, live pg_catalog.int4)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $claim$
DECLARE
    v_oid pg_catalog.oid;
    v_live pg_catalog.int4;
    v_claim pg_catalog.uuid;
BEGIN
    SELECT r.oid INTO v_oid FROM pg_catalog.pg_roles r
     WHERE r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) p_role;
    IF v_oid IS NULL THEN
        RETURN QUERY SELECT NULL::pg_catalog.uuid, 0;
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
    SELECT pg_catalog.count(*)::pg_catalog.int4 INTO v_live FROM pg_catalog.pg_stat_activity s
     WHERE s.usesysid OPERATOR(pg_catalog.=) v_oid
       AND s.backend_type OPERATOR(pg_catalog.=) 'client backend';
    v_live := v_live OPERATOR(pg_catalog.+) (
        SELECT pg_catalog.count(*)::pg_catalog.int4 FROM {GATEWAY_ADMISSIONS_TABLE} a
         WHERE a.role_oid OPERATOR(pg_catalog.=) v_oid);
    v_claim := pg_catalog.gen_random_uuid();
    INSERT INTO {GATEWAY_ADMISSIONS_TABLE} (claim, role_oid, gateway_role, claimed_at)
    VALUES (v_claim, v_oid, SESSION_USER, pg_catalog.clock_timestamp());
    RETURN QUERY SELECT v_claim, v_live;
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
        assert!(!sql.contains("advisory"));
    }
}
