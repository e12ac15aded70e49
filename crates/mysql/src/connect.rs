//! Connecting to a target: TLS per the URL's mode, the password from its file, a bounded
//! start-up, then the server's facts (version, curfew's own connection id and account, the
//! server's boot instant on its own clock) and the privilege check.

use std::time::Duration;

use jiff::Timestamp;
use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, OptsBuilder, SslOpts};

use crate::error::MysqlError;
use crate::grants::{Flavor, account_name, global_privileges, missing_grants, split_account};
use crate::ledger_conn::LedgerConn;
use crate::row::{column, micros};
use crate::secret::read_password_file;
use crate::seen::SeenSessions;
use crate::target::MysqlTarget;
use crate::url::{Endpoint, TlsMode};

/// How long a connection attempt may take when the URL does not say.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection attribute curfew sets on its own connections, so they are recognisable in
/// `performance_schema.session_connect_attrs` (and never taken for a client's).
pub const PROGRAM_NAME: &str = "curfew";

/// Where program names (the policy's applications) come from on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramNames {
    /// `performance_schema.session_connect_attrs`' `program_name`, read with each snapshot.
    Attributes,
    /// Not available: why, for the operator (sessions then have an empty application).
    Unavailable(String),
}

/// What curfew learned about the server when it connected.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `VERSION()`.
    pub version: String,
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// curfew's own connection id (never in a snapshot).
    pub connection_id: u64,
    /// The account curfew is logged in as: user and host, as `CURRENT_USER()` gives them.
    pub user: String,
    /// See [`ServerInfo::user`].
    pub host: String,
    /// When the server started, on its own clock (its clock minus `Uptime`, to the second).
    /// Connection ids start again after a restart: a session is the same only on the same boot.
    pub booted_at: Timestamp,
    /// Where program names come from.
    pub program_names: ProgramNames,
}

/// An open connection to a MariaDB/MySQL target. Its `Debug` leaves the driver's connection
/// out: that prints its options, the password among them.
pub struct Connection {
    pub(crate) conn: Conn,
    pub(crate) target: String,
    pub(crate) info: ServerInfo,
    pub(crate) seen: SeenSessions,
    /// The login-lock ledger's own connection, opened at its first use.
    pub(crate) ledger: LedgerConn,
    /// The leader lock this connection holds, and the leadership its kills are fenced on.
    pub(crate) leader: crate::leader_lock::LeaderState,
}

/// A new connection, and warnings for the operator (password file permissions, no program
/// names, unverified TLS).
#[derive(Debug)]
pub struct Connected {
    /// The connection.
    pub connection: Connection,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// What curfew learned about the server.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The driver's connection, for read-only inspection by `curfew check` (server variables,
    /// accounts, `SHOW GRANTS`); the agent's own statements stay in this crate.
    pub fn inspection(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// Connect to `target`, read the server's facts and check the account's privileges: a
/// missing one is [`MysqlError::MissingPrivileges`], naming the exact `GRANT`.
pub async fn connect(target: &MysqlTarget) -> Result<Connected, MysqlError> {
    let mut warnings = Vec::new();
    let password = match &target.password_file {
        Some(path) => {
            let (password, warning) =
                read_password_file(path).map_err(|source| MysqlError::PasswordFile {
                    target: target.name.clone(),
                    source,
                })?;
            warnings.extend(warning);
            Some(password)
        }
        None => None,
    };
    let url = &target.url;
    let mut opts = OptsBuilder::default()
        .user(Some(url.user.clone()))
        .pass(password.as_ref().map(|p| p.expose().to_owned()))
        .db_name(url.database.clone())
        // The server's clock in UTC: every instant curfew reads or compares is unambiguous.
        // and a fixed sql_mode: the server's may pad CHAR columns (`mysql.global_priv.User`
        // read back with trailing spaces matches no role) or read '' as NULL, silently.
        .init(vec![
            "SET time_zone = '+00:00'",
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        ])
        .connect_attribute("program_name", PROGRAM_NAME)
        .stmt_cache_size(16);
    opts = match &url.endpoint {
        Endpoint::Tcp { host, port } => opts
            .ip_or_hostname(host.clone())
            .tcp_port(*port)
            .prefer_socket(false),
        Endpoint::Socket(path) => opts
            .socket(Some(path.display().to_string()))
            .prefer_socket(true),
    };
    let tls = tls_options(target)?;
    // The options that worked are kept for the ledger's own connection (`crate::ledger`).
    let (conn, used) = match tls {
        Some(ssl) if url.tls == TlsMode::Prefer => {
            let with_tls = opts.clone().ssl_opts(ssl);
            match open(target, with_tls.clone()).await {
                Err(MysqlError::Connect {
                    source:
                        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer),
                    ..
                }) => {
                    warnings.push(format!(
                        "target \"{}\": the server offers no TLS; connected without it (sslmode=prefer)",
                        target.name
                    ));
                    (open(target, opts.clone()).await?, opts)
                }
                other => (other?, with_tls),
            }
        }
        Some(ssl) => {
            let with_tls = opts.ssl_opts(ssl);
            (open(target, with_tls.clone()).await?, with_tls)
        }
        None => (open(target, opts.clone()).await?, opts),
    };
    let mut connection = Connection {
        conn,
        target: target.name.clone(),
        info: ServerInfo {
            version: String::new(),
            flavor: Flavor::MySql,
            connection_id: 0,
            user: String::new(),
            host: String::new(),
            booted_at: Timestamp::UNIX_EPOCH,
            program_names: ProgramNames::Unavailable(String::new()),
        },
        seen: SeenSessions::default(),
        ledger: LedgerConn::new(&target.name, used, connect_limit(target)),
        leader: crate::leader_lock::LeaderState::default(),
    };
    connection.read_facts().await?;
    connection.check_privileges().await?;
    if let ProgramNames::Unavailable(why) = &connection.info.program_names {
        warnings.push(format!("target \"{}\": {why}", target.name));
    }
    Ok(Connected {
        connection,
        warnings,
    })
}

/// How long a connection attempt to `target` may take.
fn connect_limit(target: &MysqlTarget) -> Duration {
    target
        .url
        .connect_timeout
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

pub(crate) async fn open(target: &MysqlTarget, opts: OptsBuilder) -> Result<Conn, MysqlError> {
    let limit = connect_limit(target);
    match tokio::time::timeout(limit, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(MysqlError::Connect {
            target: target.name.clone(),
            url: target.url.to_string(),
            source,
        }),
        Err(_) => Err(MysqlError::ConnectTimeout {
            target: target.name.clone(),
            url: target.url.to_string(),
            seconds: limit.as_secs(),
        }),
    }
}

/// The driver's TLS options for the URL's mode (`None`: no TLS).
pub(crate) fn tls_options(target: &MysqlTarget) -> Result<Option<SslOpts>, MysqlError> {
    let url = &target.url;
    if url.tls == TlsMode::Disable {
        return Ok(None);
    }
    let mut ssl = SslOpts::default();
    if let Some(ca) = &url.sslrootcert {
        if !ca.is_file() {
            return Err(MysqlError::Tls {
                target: target.name.clone(),
                reason: format!("sslrootcert {} is not a readable file", ca.display()),
            });
        }
        ssl = ssl
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true);
    }
    if let (Some(cert), Some(key)) = (&url.sslcert, &url.sslkey) {
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    ssl = match url.tls {
        // As libpq: without a CA, `require` encrypts without checking who answers.
        TlsMode::Prefer | TlsMode::Require if url.sslrootcert.is_none() => ssl
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
        // Asks the driver not to check the name; mysql_async 0.37 honours that only on an
        // error text rustls 0.23 no longer writes, so these check it anyway (stricter than
        // libpq, never weaker; tests/tls.rs notices when that changes).
        TlsMode::Prefer | TlsMode::Require | TlsMode::VerifyCa => {
            ssl.with_danger_skip_domain_validation(true)
        }
        TlsMode::VerifyFull | TlsMode::Disable => ssl,
    };
    Ok(Some(ssl))
}

impl Connection {
    async fn read_facts(&mut self) -> Result<(), MysqlError> {
        const WHAT: &str = "reading the server's version and clock";
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(
                "SELECT VERSION(), CONNECTION_ID(), CURRENT_USER(), @@performance_schema, \
                 CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)",
            )
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT, e))?;
        let row = row.ok_or_else(|| MysqlError::decode(&self.target, WHAT, "no row"))?;
        let t = &self.target;
        let version: String = column(&row, 0, t, WHAT)?;
        let connection_id: u64 = column(&row, 1, t, WHAT)?;
        let current_user: String = column(&row, 2, t, WHAT)?;
        let performance_schema: i64 = column(&row, 3, t, WHAT)?;
        let now = micros(column(&row, 4, t, WHAT)?, t, WHAT)?;
        let (user, host) = split_account(&current_user)
            .ok_or_else(|| MysqlError::decode(t, WHAT, "CURRENT_USER() has no '@'"))?;
        let uptime: Option<(String, String)> = self
            .conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Uptime'")
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT, e))?;
        let uptime: i64 = uptime
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| MysqlError::decode(&self.target, WHAT, "no Uptime status"))?;
        let booted_at = crate::seen::booted_at(now, uptime);
        let flavor = Flavor::from_version(&version);
        self.info = ServerInfo {
            flavor,
            version,
            connection_id,
            user: user.to_owned(),
            host: host.to_owned(),
            booted_at,
            program_names: ProgramNames::Unavailable(String::new()),
        };
        self.info.program_names = self.probe_program_names(performance_schema != 0).await;
        Ok(())
    }

    /// Whether connection attributes can be read, and if not why.
    async fn probe_program_names(&mut self, performance_schema: bool) -> ProgramNames {
        if !performance_schema {
            return ProgramNames::Unavailable(
                "performance_schema is off on this server, so clients' program names are unknown: \
                 rules naming applications match none of its sessions (set performance_schema=ON \
                 in the server's configuration; it takes a restart)"
                    .to_owned(),
            );
        }
        let probe: Result<Option<i64>, _> = self
            .conn
            .query_first(
                "SELECT COUNT(*) FROM performance_schema.session_connect_attrs WHERE 1 = 0",
            )
            .await;
        match probe {
            Ok(_) => ProgramNames::Attributes,
            Err(e) => ProgramNames::Unavailable(format!(
                "curfew's account cannot read performance_schema.session_connect_attrs ({e}), so \
                 clients' program names are unknown: an administrator may run GRANT SELECT ON \
                 performance_schema.session_connect_attrs TO {}",
                account_name(&self.info.user, &self.info.host)
            )),
        }
    }

    async fn check_privileges(&mut self) -> Result<(), MysqlError> {
        const WHAT: &str = "reading the account's privileges (SHOW GRANTS)";
        let grants: Vec<String> = self
            .conn
            .query("SHOW GRANTS")
            .await
            .map_err(|e| MysqlError::query(&self.target, WHAT, e))?;
        let privileges = global_privileges(&grants);
        let missing = missing_grants(
            self.info.flavor,
            &privileges,
            &self.info.user,
            &self.info.host,
        );
        if missing.is_empty() {
            return Ok(());
        }
        Err(MysqlError::MissingPrivileges {
            target: self.target.clone(),
            account: account_name(&self.info.user, &self.info.host),
            missing,
        })
    }
}
