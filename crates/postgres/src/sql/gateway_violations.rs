//! `violations` rules with `per = "role"` counted across gateway instances (issue 17), as
//! statement text: every gateway records each counted error of a role through one function
//! only its role may call, owned by the registry's owner, and gets back the role's errors for
//! the rule within the rule's window (their SQLSTATEs, oldest first), its own included.
//!
//! The count serializes on a row per (role, rule) in `curfew.gateway_violation_gate` (a
//! curfew-owned table, not an advisory lock any role could take), so two gateways recording at
//! once both see each other's error. Nothing the client controls goes in: the role is the one
//! the gateway logged in, the rule and SQLSTATE are the policy's. Each call counts within its
//! own rule's window but deletes only rows older than [`MAX_VIOLATION_WINDOW_SECONDS`] (so a
//! gateway with a shorter window, during a rolling reload, never erases what another
//! counts): a few of everyone's at a time, never waiting on another count's lock, and the gate
//! rows of roles since dropped, so both tables stay bounded.

use crate::names::quote_identifier;

/// The recent violations.
pub(crate) const GATEWAY_VIOLATIONS_TABLE: &str = "curfew.gateway_violations";

/// One row per (role, rule), locked while a violation of that role is counted.
pub(crate) const GATEWAY_VIOLATION_GATE_TABLE: &str = "curfew.gateway_violation_gate";

/// The recording function's signature, as `GRANT`, `ALTER` and `DROP` name it.
pub(crate) const GATEWAY_VIOLATION_FUNCTION: &str = "curfew.count_gateway_violation(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text)";

/// What the gateway runs for an error a `per = "role"` rule counts: `$1` the role, `$2` the
/// rule's id, `$3` the SQLSTATE, `$4` the rule's window in seconds, `$5` the gateway's id.
/// Returns the SQLSTATEs the role's count for the rule holds within the window, oldest first,
/// this error's included (empty for a role that does not exist).
pub const GATEWAY_VIOLATION_QUERY: &str =
    "SELECT curfew.count_gateway_violation($1::text, $2::text, $3::text, $4::int4, $5::text)";

/// The longest window the function accepts (a week); rows older than it are always pruned.
pub const MAX_VIOLATION_WINDOW_SECONDS: u32 = 7 * 24 * 60 * 60;

/// The longest rule id the function accepts, in characters.
pub const MAX_VIOLATION_RULE_CHARS: usize = 200;

/// The tables and the function, owned by `owner`, the function executable by `gateway`.
pub(crate) fn violations_sql(owner: &str, gateway: &str) -> String {
    let owner = quote_identifier(owner);
    let gateway = quote_identifier(gateway);
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {GATEWAY_VIOLATION_GATE_TABLE} (
    role_oid pg_catalog.oid NOT NULL,
    rule pg_catalog.text NOT NULL,
    PRIMARY KEY (role_oid, rule)
);
ALTER TABLE {GATEWAY_VIOLATION_GATE_TABLE} OWNER TO {owner};
REVOKE ALL ON {GATEWAY_VIOLATION_GATE_TABLE} FROM PUBLIC;
COMMENT ON TABLE {GATEWAY_VIOLATION_GATE_TABLE} IS 'curfew gateway: a row per role and violations rule, locked while one of its errors is counted; written by curfew.count_gateway_violation alone';
CREATE TABLE IF NOT EXISTS {GATEWAY_VIOLATIONS_TABLE} (
    role_oid pg_catalog.oid NOT NULL,
    rule pg_catalog.text NOT NULL,
    sqlstate pg_catalog.text NOT NULL,
    at pg_catalog.timestamptz NOT NULL,
    gateway_id pg_catalog.text NOT NULL,
    gateway_role pg_catalog.text NOT NULL
);
CREATE INDEX IF NOT EXISTS gateway_violations_role_rule_at
    ON {GATEWAY_VIOLATIONS_TABLE} (role_oid, rule, at);
CREATE INDEX IF NOT EXISTS gateway_violations_at ON {GATEWAY_VIOLATIONS_TABLE} (at);
ALTER TABLE {GATEWAY_VIOLATIONS_TABLE} OWNER TO {owner};
REVOKE ALL ON {GATEWAY_VIOLATIONS_TABLE} FROM PUBLIC;
COMMENT ON TABLE {GATEWAY_VIOLATIONS_TABLE} IS 'curfew gateway: recent errors counted by violations rules with per = role, across gateways; written by curfew.count_gateway_violation alone';

CREATE OR REPLACE FUNCTION curfew.count_gateway_violation(p_role pg_catalog.text,
    p_rule pg_catalog.text, p_sqlstate pg_catalog.text, p_within_seconds pg_catalog.int4,
    p_gateway_id pg_catalog.text)
RETURNS pg_catalog.text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $count$
DECLARE
    v_oid pg_catalog.oid;
    v_now pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    v_codes pg_catalog.text[];
BEGIN
    IF p_rule IS NULL OR pg_catalog.length(p_rule) OPERATOR(pg_catalog.<) 1
       OR pg_catalog.length(p_rule) OPERATOR(pg_catalog.>) {MAX_VIOLATION_RULE_CHARS}
       OR p_sqlstate IS NULL OR p_sqlstate OPERATOR(pg_catalog.!~) '^[0-9A-Z]{{5}}$'
       OR p_within_seconds IS NULL OR p_within_seconds OPERATOR(pg_catalog.<) 1
       OR p_within_seconds OPERATOR(pg_catalog.>) {MAX_VIOLATION_WINDOW_SECONDS}
       OR p_gateway_id IS NULL OR pg_catalog.length(p_gateway_id) OPERATOR(pg_catalog.>) 200 THEN
        RAISE EXCEPTION 'a rule of 1 to {MAX_VIOLATION_RULE_CHARS} characters, a SQLSTATE, a window of 1 to {MAX_VIOLATION_WINDOW_SECONDS} seconds and a gateway id of at most 200 characters are required'
            USING ERRCODE = '22023';
    END IF;
    SELECT r.oid INTO v_oid FROM pg_catalog.pg_roles r
     WHERE r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) p_role;
    IF v_oid IS NULL THEN
        RETURN '{{}}'::pg_catalog.text[];
    END IF;
    -- One count of this role and rule at a time, across gateways: held until this commits.
    INSERT INTO {GATEWAY_VIOLATION_GATE_TABLE} (role_oid, rule) VALUES (v_oid, p_rule)
        ON CONFLICT DO NOTHING;
    PERFORM 1 FROM {GATEWAY_VIOLATION_GATE_TABLE} g
     WHERE g.role_oid OPERATOR(pg_catalog.=) v_oid AND g.rule OPERATOR(pg_catalog.=) p_rule
       FOR UPDATE;
    -- Bounded: rows beyond the longest window (anyone's, a few at a time, skipping rows
    -- another count holds), and the gate rows of roles dropped since.
    DELETE FROM {GATEWAY_VIOLATIONS_TABLE} v
     WHERE v.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT o.ctid FROM {GATEWAY_VIOLATIONS_TABLE} o
         WHERE o.at OPERATOR(pg_catalog.<) (v_now OPERATOR(pg_catalog.-)
                pg_catalog.make_interval(secs => {MAX_VIOLATION_WINDOW_SECONDS}))
         LIMIT 100 FOR UPDATE SKIP LOCKED));
    DELETE FROM {GATEWAY_VIOLATION_GATE_TABLE} g
     WHERE g.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT o.ctid FROM {GATEWAY_VIOLATION_GATE_TABLE} o
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                            WHERE r.oid OPERATOR(pg_catalog.=) o.role_oid)
         LIMIT 100 FOR UPDATE SKIP LOCKED));
    INSERT INTO {GATEWAY_VIOLATIONS_TABLE} (role_oid, rule, sqlstate, at, gateway_id, gateway_role)
    VALUES (v_oid, p_rule, p_sqlstate, v_now, p_gateway_id, SESSION_USER);
    -- Within this caller's window (this error's included).
    SELECT pg_catalog.array_agg(v.sqlstate ORDER BY v.at) INTO v_codes
      FROM {GATEWAY_VIOLATIONS_TABLE} v
     WHERE v.role_oid OPERATOR(pg_catalog.=) v_oid AND v.rule OPERATOR(pg_catalog.=) p_rule
       AND v.at OPERATOR(pg_catalog.>) (v_now OPERATOR(pg_catalog.-)
                pg_catalog.make_interval(secs => p_within_seconds));
    RETURN v_codes;
END $count$;
ALTER FUNCTION {GATEWAY_VIOLATION_FUNCTION} OWNER TO {owner};
REVOKE ALL ON FUNCTION {GATEWAY_VIOLATION_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {GATEWAY_VIOLATION_FUNCTION} TO {gateway};
COMMENT ON FUNCTION {GATEWAY_VIOLATION_FUNCTION} IS 'curfew gateway: records an error a per-role violations rule counts and returns the role''s errors within the window; callable by its role only';
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_is_fixed_revoked_from_public_and_granted_to_the_gateway_alone() {
        let sql = violations_sql("curfew_gateway_registry", "gate way");
        assert_eq!(
            sql.matches("SECURITY DEFINER SET search_path = pg_catalog, pg_temp")
                .count(),
            1
        );
        assert!(sql.contains(&format!(
            "REVOKE ALL ON FUNCTION {GATEWAY_VIOLATION_FUNCTION} FROM PUBLIC;"
        )));
        assert!(sql.contains(&format!(
            "GRANT EXECUTE ON FUNCTION {GATEWAY_VIOLATION_FUNCTION} TO \"gate way\";"
        )));
        assert!(sql.contains("'^[0-9A-Z]{5}$'"));
        assert!(!sql.contains("advisory"));
    }
}
