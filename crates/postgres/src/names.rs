//! Names in SQL: how a role name is quoted, and the role that owns curfew's ledger.

/// The role that owns the ledger and its functions. It cannot log in.
pub const OWNER_ROLE: &str = "curfew_owner";

/// The role that owns the gateway's auth function, `curfew.gateway_secret`: a superuser (only
/// one can read `pg_authid`), which cannot log in and has no members.
pub const GATEWAY_AUTH_OWNER: &str = "curfew_gateway_auth";

/// The role that owns the gateway session registry (`curfew.gateway_sessions` and the
/// function that writes it): `NOLOGIN`, no attribute, no members, a member of
/// `pg_read_all_stats` only (its function checks other roles' rows of `pg_stat_activity`).
pub const GATEWAY_REGISTRY_OWNER: &str = "curfew_gateway_registry";

/// Quote a name as an SQL identifier: `we"ird role` becomes `"we""ird role"`. Role names may hold
/// quotes, spaces and any Unicode, so they are always quoted, never pasted.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::quote_identifier("analyst"), "\"analyst\"");
        assert_eq!(
            super::quote_identifier("we\"ird role"),
            "\"we\"\"ird role\""
        );
        assert_eq!(super::quote_identifier("Ünïcode"), "\"Ünïcode\"");
    }
}
