//! What `curfew check` reads from a server: settings, the effective `pg_hba.conf` rules, the
//! roles, and whether a curfew agent leads it. Reading only; judging is done elsewhere
//! (`curfew-check`), without I/O.

use std::collections::BTreeMap;

use crate::connect::Connection;
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
    /// The settings of [`CHECKED_SETTINGS`] (a name missing here is unknown to this server).
    pub settings: BTreeMap<String, Setting>,
    /// The `pg_hba.conf` rules, or why they could not be read.
    pub hba: Result<Vec<HbaRule>, String>,
    /// Every role.
    pub roles: Vec<RoleFacts>,
    /// The session holding curfew's leader lock, if any: a curfew agent leads this server.
    pub leader: Option<LeaderInfo>,
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
        let settings = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    Setting {
                        value: r.get::<_, Option<String>>(1).unwrap_or_default(),
                        unit: r.get(2),
                        source: r.get::<_, Option<String>>(3).unwrap_or_default(),
                    },
                )
            })
            .collect();
        let hba = match client
            .query(
                "SELECT line_number, type, database, user_name, address, netmask, auth_method, error
                 FROM pg_hba_file_rules ORDER BY line_number",
                &[],
            )
            .await
        {
            Ok(rows) => Ok(rows
                .iter()
                .map(|r| HbaRule {
                    line: r.get::<_, Option<i32>>(0).unwrap_or_default(),
                    kind: r.get(1),
                    databases: r.get::<_, Option<Vec<String>>>(2).unwrap_or_default(),
                    users: r.get::<_, Option<Vec<String>>>(3).unwrap_or_default(),
                    address: r.get(4),
                    netmask: r.get(5),
                    method: r.get(6),
                    error: r.get(7),
                })
                .collect()),
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
            .map(|r| RoleFacts {
                name: r.get(0),
                superuser: r.get(1),
                can_login: r.get(2),
                bootstrap: r.get(3),
            })
            .collect();
        let leader = self.leader().await?;
        Ok(ServerFacts {
            version: self.info.version.clone(),
            version_num: self.info.version_num,
            connected_as: self.info.role.clone(),
            connected_as_superuser: self.info.superuser,
            settings,
            hba,
            roles,
            leader,
        })
    }
}
