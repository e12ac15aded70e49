//! What `curfew check` reads from a server: settings, the effective `pg_hba.conf` rules, the
//! roles, whether a curfew agent leads it, and the login-lock ledger's privileges. Reading only; judging is done elsewhere
//! (`curfew-check`), without I/O.

use std::collections::BTreeMap;

use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;
use crate::leader::LeaderInfo;

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

/// Everything `curfew check` reads from one server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `SELECT version()`.
    pub version: String,
    /// `server_version_num`.
    pub version_num: i32,
    /// The role curfew connected as, and whether it is a superuser.
    pub connected_as: String,
    /// Whether that role is a superuser.
    pub connected_as_superuser: bool,
    /// Whether that role has CREATEROLE (curfew needs it for nothing but `curfew verify`'s
    /// canaries; on PostgreSQL 14/15 it is a way to a shell on the server).
    pub connected_as_createrole: bool,
    /// Whether curfew reached the server over a Unix socket (TCP settings such as
    /// `tcp_keepalives_idle` then read 0, whatever the configuration says).
    pub unix_socket: bool,
    /// The settings of [`CHECKED_SETTINGS`] (a name missing here is unknown to this server).
    pub settings: BTreeMap<String, Setting>,
    /// The `pg_hba.conf` rules, or why they could not be read.
    pub hba: Result<Vec<HbaRule>, String>,
    /// Every role.
    pub roles: Vec<RoleFacts>,
    /// The session holding curfew's leader lock, if any: a curfew agent leads this server.
    pub leader: Option<LeaderInfo>,
    /// The login-lock ledger's ownership and privileges.
    pub ledger: crate::ledger::LedgerFacts,
    /// This host's clock against the server's.
    pub clock: ClockReading,
}

/// The offset between this host's clock and the server's, measured NTP-style: the server's
/// `clock_timestamp()` against the midpoint of the query's round trip on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockReading {
    /// The server's clock minus this host's (positive: this host is behind).
    pub offset: jiff::SignedDuration,
    /// The round trip of the reading used; the offset is exact to within half of it.
    pub round_trip: std::time::Duration,
}

impl ClockReading {
    /// From samples of (this host before, the server, this host after), the one with the
    /// shortest round trip, which bounds the error best. `None` without a usable sample.
    pub fn from_samples(
        samples: &[(jiff::Timestamp, jiff::Timestamp, jiff::Timestamp)],
    ) -> Option<Self> {
        samples
            .iter()
            .filter(|(before, _, after)| after >= before)
            .map(|(before, server, after)| {
                let trip = after.duration_since(*before);
                let midpoint = before.checked_add(trip / 2).unwrap_or(*before);
                ClockReading {
                    offset: server.duration_since(midpoint),
                    round_trip: trip.unsigned_abs(),
                }
            })
            .min_by_key(|r| r.round_trip)
    }
}

impl Connection {
    /// Read the facts `curfew check` judges. `pg_hba_file_rules` is readable only by
    /// superusers unless granted; not being able to read it is reported in
    /// [`ServerFacts::hba`], not as an error.
    pub async fn facts(&self) -> Result<ServerFacts, PgError> {
        let client = &self.client;
        let failed = |what| move |e| PgError::query(&self.target, what, e);
        let names: Vec<String> = CHECKED_SETTINGS.iter().map(|s| (*s).to_owned()).collect();
        let rows = client
            .query(
                "SELECT name, setting, unit, source FROM pg_settings WHERE name = ANY($1)",
                &[&names],
            )
            .await
            .map_err(failed("reading settings"))?;
        let what = "reading settings";
        let settings = rows
            .iter()
            .map(|r| {
                Ok((
                    col::<String>(r, 0, &self.target, what)?,
                    Setting {
                        value: col::<Option<String>>(r, 1, &self.target, what)?.unwrap_or_default(),
                        unit: col(r, 2, &self.target, what)?,
                        source: col::<Option<String>>(r, 3, &self.target, what)?
                            .unwrap_or_default(),
                    },
                ))
            })
            .collect::<Result<_, PgError>>()?;
        // Read as JSON: the view gained columns over the versions (file_name in 15).
        let hba = match client
            .query(
                "SELECT to_jsonb(h)::text FROM pg_hba_file_rules h ORDER BY h.line_number",
                &[],
            )
            .await
        {
            Ok(rows) => Ok(rows
                .iter()
                .map(|r| {
                    col::<String>(r, 0, &self.target, "reading pg_hba.conf rules")
                        .map(|json| hba_rule(&json))
                })
                .collect::<Result<_, PgError>>()?),
            Err(e) => match e.as_db_error() {
                Some(db) => Err(db.message().to_owned()),
                None => return Err(PgError::query(&self.target, "reading pg_hba.conf rules", e)),
            },
        };
        let roles = client
            .query(
                "SELECT rolname::text, rolsuper, rolcanlogin, oid = 10 FROM pg_roles
                 WHERE rolname !~ '^pg_' ORDER BY rolname",
                &[],
            )
            .await
            .map_err(failed("reading roles"))?
            .iter()
            .map(|r| {
                Ok(RoleFacts {
                    name: col(r, 0, &self.target, "reading roles")?,
                    superuser: col(r, 1, &self.target, "reading roles")?,
                    can_login: col(r, 2, &self.target, "reading roles")?,
                    bootstrap: col(r, 3, &self.target, "reading roles")?,
                })
            })
            .collect::<Result<_, PgError>>()?;
        let unix_socket: bool = client
            .query_one("SELECT inet_client_addr() IS NULL", &[])
            .await
            .map_err(failed("reading the connection's address"))
            .and_then(|r| col(&r, 0, &self.target, "reading the connection's address"))?;
        let leader = self.leader().await?;
        let ledger = self.ledger_facts().await?;
        let what = "reading the server's clock";
        let mut samples = Vec::new();
        for _ in 0..3 {
            let before = jiff::Timestamp::now();
            let row = client
                .query_one("SELECT clock_timestamp()", &[])
                .await
                .map_err(failed(what))?;
            let after = jiff::Timestamp::now();
            samples.push((before, col(&row, 0, &self.target, what)?, after));
        }
        let clock = ClockReading::from_samples(&samples).unwrap_or_default();
        Ok(ServerFacts {
            version: self.info.version.clone(),
            version_num: self.info.version_num,
            connected_as: self.info.role.clone(),
            connected_as_superuser: self.info.superuser,
            connected_as_createrole: self.info.createrole,
            unix_socket,
            settings,
            hba,
            roles,
            leader,
            ledger,
            clock,
        })
    }
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
    fn the_clock_offset_is_taken_from_the_shortest_round_trip() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let reading = super::ClockReading::from_samples(&[
            // A slow trip: the server's answer could be anywhere in 2s.
            (
                t("2026-01-01T00:00:00Z"),
                t("2026-01-01T00:00:09Z"),
                t("2026-01-01T00:00:02Z"),
            ),
            // A fast one: the server is 3s ahead of the midpoint 00:00:10.010.
            (
                t("2026-01-01T00:00:10Z"),
                t("2026-01-01T00:00:13.010Z"),
                t("2026-01-01T00:00:10.020Z"),
            ),
        ])
        .unwrap();
        assert_eq!(reading.offset, jiff::SignedDuration::from_secs(3));
        assert_eq!(reading.round_trip, std::time::Duration::from_millis(20));
        assert_eq!(super::ClockReading::from_samples(&[]), None);
    }

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
