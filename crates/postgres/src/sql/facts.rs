//! What `curfew check` reads from a server (see `crate::facts`): the statements for settings,
//! `pg_hba.conf` rules, roles and the connection's address, and the decoding of their rows.

use tokio_postgres::Row;

use crate::error::PgError;
use crate::sql::decode::col;

/// What reading settings' errors say curfew was doing.
pub(crate) const WHAT_SETTINGS: &str = "reading settings";

/// What reading `pg_hba.conf`'s errors say curfew was doing.
pub(crate) const WHAT_HBA: &str = "reading pg_hba.conf rules";

/// What reading roles' errors say curfew was doing.
pub(crate) const WHAT_ROLES: &str = "reading roles";

/// What reading the connection's address's errors say curfew was doing.
pub(crate) const WHAT_ADDRESS: &str = "reading the connection's address";

/// What reading the server's clock's errors say curfew was doing.
pub(crate) const WHAT_CLOCK: &str = "reading the server's clock";

/// The settings `curfew check` judges.
pub const CHECKED_SETTINGS: &[&str] = &[
    "ssl",
    "ssl_min_protocol_version",
    "password_encryption",
    "log_connections",
    "log_disconnections",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "statement_timeout",
    "authentication_timeout",
    "tcp_keepalives_idle",
    "client_connection_check_interval",
];

/// One setting as `pg_settings` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value, in `unit`.
    pub value: String,
    /// The unit of `value` (`ms`, `s`, ...), if any.
    pub unit: Option<String>,
    /// Where the value comes from (`default`, `configuration file`, ...).
    pub source: String,
}

/// One line of `pg_hba.conf` as the server parsed it (`pg_hba_file_rules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    /// The file it is in (PostgreSQL 15+, where `include` directives exist), if shown.
    pub file: Option<String>,
    /// Line number in the file.
    pub line: i32,
    /// `local`, `host`, `hostssl`, `hostnossl`, `hostgssenc`, `hostnogssenc`.
    pub kind: Option<String>,
    /// Databases it matches.
    pub databases: Vec<String>,
    /// Users it matches.
    pub users: Vec<String>,
    /// Address (or `all`, `samehost`, a host name), if any.
    pub address: Option<String>,
    /// Netmask, if given separately or derived from a CIDR.
    pub netmask: Option<String>,
    /// The authentication method.
    pub method: Option<String>,
    /// Why the server could not use the line, if it could not.
    pub error: Option<String>,
}

/// One role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFacts {
    /// Its name.
    pub name: String,
    /// Whether it is a superuser.
    pub superuser: bool,
    /// Whether it can log in.
    pub can_login: bool,
    /// Whether it is the bootstrap superuser initdb created.
    pub bootstrap: bool,
}

/// The settings named in `$1` ([`CHECKED_SETTINGS`]).
pub(crate) const SETTINGS: &str =
    "SELECT name, setting, unit, source FROM pg_settings WHERE name = ANY($1)";

/// The `pg_hba.conf` rules, each as JSON: the view gained columns over the versions
/// (`file_name` in 15).
pub(crate) const HBA_RULES: &str =
    "SELECT to_jsonb(h)::text FROM pg_hba_file_rules h ORDER BY h.line_number";

/// Every role but the predefined `pg_*` ones.
pub(crate) const ROLES: &str = "SELECT rolname::text, rolsuper, rolcanlogin, oid = 10 FROM pg_roles
                 WHERE rolname !~ '^pg_' ORDER BY rolname";

/// Whether this connection came over a Unix socket.
pub(crate) const UNIX_SOCKET: &str = "SELECT inet_client_addr() IS NULL";

/// The server's clock, now.
pub(crate) const CLOCK: &str = "SELECT clock_timestamp()";

/// [`SETTINGS`]'s parameter.
pub(crate) fn settings_param() -> Vec<String> {
    CHECKED_SETTINGS.iter().map(|s| (*s).to_owned()).collect()
}

/// One row of [`SETTINGS`]: the setting's name and what it says.
pub(crate) fn decode_setting(row: &Row, target: &str) -> Result<(String, Setting), PgError> {
    let what = WHAT_SETTINGS;
    Ok((
        col::<String>(row, 0, target, what)?,
        Setting {
            value: col::<Option<String>>(row, 1, target, what)?.unwrap_or_default(),
            unit: col(row, 2, target, what)?,
            source: col::<Option<String>>(row, 3, target, what)?.unwrap_or_default(),
        },
    ))
}

/// One row of [`HBA_RULES`].
pub(crate) fn decode_hba_rule(row: &Row, target: &str) -> Result<HbaRule, PgError> {
    col::<String>(row, 0, target, WHAT_HBA).map(|json| hba_rule(&json))
}

/// One row of [`ROLES`].
pub(crate) fn decode_role(row: &Row, target: &str) -> Result<RoleFacts, PgError> {
    Ok(RoleFacts {
        name: col(row, 0, target, WHAT_ROLES)?,
        superuser: col(row, 1, target, WHAT_ROLES)?,
        can_login: col(row, 2, target, WHAT_ROLES)?,
        bootstrap: col(row, 3, target, WHAT_ROLES)?,
    })
}

/// One `pg_hba_file_rules` row from its JSON form; missing or null columns read as empty.
fn hba_rule(json: &str) -> HbaRule {
    let row: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let text = |key: &str| row.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let list = |key: &str| {
        row.get(key)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    HbaRule {
        file: text("file_name"),
        line: row
            .get("line_number")
            .and_then(serde_json::Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or_default(),
        kind: text("type"),
        databases: list("database"),
        users: list("user_name"),
        address: text("address"),
        netmask: text("netmask"),
        method: text("auth_method"),
        error: text("error"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hba_rows_read_from_json_whatever_the_version() {
        let rule = super::hba_rule(
            r#"{"line_number": 7, "type": "host", "database": ["all"], "user_name": ["all"], "address": "0.0.0.0", "netmask": "0.0.0.0", "auth_method": "md5", "options": null, "error": null}"#,
        );
        assert_eq!((rule.line, rule.file.as_deref()), (7, None));
        assert_eq!(rule.method.as_deref(), Some("md5"));
        assert_eq!(rule.databases, ["all"]);
        let rule = super::hba_rule(
            r#"{"rule_number": 1, "file_name": "/etc/pg/hba.d/a.conf", "line_number": 2, "type": "local", "database": ["all"], "user_name": ["postgres"], "address": null, "netmask": null, "auth_method": "peer", "options": null, "error": null}"#,
        );
        assert_eq!(rule.file.as_deref(), Some("/etc/pg/hba.d/a.conf"));
        assert_eq!(rule.address, None);
    }
}
