//! Connecting to a target: the URL, TLS, the password file, and the checks that make a
//! connection fit for curfew (version, privileges).

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::sql::server::{MINIMUM_VERSION_NUM, ServerInfo};

use crate::error::PgError;
use crate::secret::{Password, read_password_file};
use crate::sql::server::{
    AGENT_SESSION_OPTIONS, CHECK_SERVER, NO_IDLE_TIMEOUTS, WHAT_CHECK, decode_server,
    missing_privileges,
};
use crate::target::TargetSpec;
use crate::tls::client_config;
use crate::url::{Host, SslMode};

/// An open connection to a target.
pub struct Connection {
    /// The target's name, for messages.
    pub(crate) target: String,
    pub(crate) client: Client,
    driver: JoinHandle<()>,
    /// What was learned at connect.
    pub info: ServerInfo,
    pub(crate) statements: crate::queries::Statements,
    pub(crate) names: curfew_policy::Names,
    pub(crate) groups: crate::groups::GroupCache,
    /// The leader whose lock fences this connection's actions (see `crate::fence`).
    pub(crate) fence: Option<crate::fence::Leadership>,
    /// The leader lock this connection took, if it did.
    pub(crate) leads: Option<crate::fence::Leadership>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .finish()
    }
}

impl Connection {
    /// Whether the connection has been lost.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The underlying client, for queries this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// How long one connection attempt may take when the URL sets no `connect_timeout` (the
/// startup and curfew's own checks may take twice this).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection and the warnings found while making it.
#[derive(Debug)]
pub struct Connected {
    /// The connection.
    pub connection: Connection,
    /// Things an operator should know (superuser, weak TLS, open password file).
    pub warnings: Vec<String>,
}

/// Connect to a target, check the server version and curfew's privileges, and prepare the
/// statements curfew runs. Errors never contain the password.
pub async fn connect(spec: &TargetSpec) -> Result<Connected, PgError> {
    connect_as(spec, Session::Agent).await
}

/// Connect as [`connect`] does, but leave the session's settings as the server gives them:
/// no statement or lock timeout of curfew's own, no idle timeouts switched off. For reading
/// the server's configuration (`curfew check`), which would otherwise see curfew's values.
pub async fn connect_to_inspect(spec: &TargetSpec) -> Result<Connected, PgError> {
    connect_as(spec, Session::Inspect).await
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// The agent's and the commands' work: curfew's own timeouts set.
    Agent,
    /// Reading the configuration: the server's settings untouched.
    Inspect,
}

async fn connect_as(spec: &TargetSpec, session: Session) -> Result<Connected, PgError> {
    let mut warnings = Vec::new();
    let password = match &spec.password_file {
        Some(path) => {
            let (password, warning) =
                read_password_file(path).map_err(|e| PgError::PasswordFile {
                    target: spec.name.clone(),
                    source: e,
                })?;
            warnings.extend(warning);
            Some(password)
        }
        None => None,
    };
    // The socket's connect timeout does not cover the startup: a server (or a proxy in front of
    // it) that accepts the connection and never answers would hang the worker without a word.
    let limit = spec.url.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let opened = tokio::time::timeout(limit * 2, async {
        let (client, driver) = open(spec, password.as_ref(), session, "curfew").await?;
        let info = check_server(spec, &client, session).await?;
        Ok::<_, PgError>((client, driver, info))
    })
    .await
    .map_err(|_| PgError::Connect {
        target: spec.name.clone(),
        url: spec.url.to_string(),
        reason: format!(
            "no answer within {}s (the server accepted the connection but did not complete the startup; set connect_timeout in the URL to change the limit)",
            (limit * 2).as_secs()
        ),
    })?;
    let (client, driver, info) = opened?;
    if info.superuser {
        warnings.push(format!(
            "target \"{}\": curfew is connected as superuser \"{}\"; a role with only pg_read_all_stats and pg_signal_backend is enough (see the README)",
            spec.name, info.role
        ));
    }
    let statements = crate::queries::Statements::prepare(&client)
        .await
        .map_err(|e| PgError::query(&spec.name, "preparing curfew's statements", e))?;
    Ok(Connected {
        connection: Connection {
            target: spec.name.clone(),
            client,
            driver,
            info,
            statements,
            names: curfew_policy::Names::new(),
            groups: crate::groups::GroupCache::default(),
            fence: None,
            leads: None,
        },
        warnings,
    })
}

/// Open a plain connection as someone other than curfew's agent (a `curfew verify` canary, the
/// gateway's verifier lookups): the target's host, port and TLS, with this password and
/// application name, nothing set and nothing checked.
pub async fn open_as(
    spec: &TargetSpec,
    password: Option<&Password>,
    application: &str,
) -> Result<(Client, JoinHandle<()>), PgError> {
    open(spec, password, Session::Inspect, application).await
}

async fn open(
    spec: &TargetSpec,
    password: Option<&Password>,
    session: Session,
    application: &str,
) -> Result<(Client, JoinHandle<()>), PgError> {
    let url = &spec.url;
    let mut config = tokio_postgres::Config::new();
    config
        .user(&url.user)
        .dbname(&url.dbname)
        .application_name(application)
        .connect_timeout(url.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    if session == Session::Agent {
        // curfew's own statements must not hang, and a dead leader is noticed in about a
        // minute (see `AGENT_SESSION_OPTIONS`).
        config.options(AGENT_SESSION_OPTIONS);
    }
    for (host, port) in &url.hosts {
        match host {
            Host::Tcp(name) => config.host(name),
            Host::Socket(dir) => config.host_path(dir),
        };
        config.port(*port);
    }
    if let Some(password) = password {
        config.password(password.expose());
    }
    config.ssl_mode(match url.sslmode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let failed = |e: tokio_postgres::Error| PgError::connect(spec, e);
    let tls = client_config(url).map_err(|e| PgError::Tls {
        target: spec.name.clone(),
        source: e,
    })?;
    Ok(match tls {
        Some(tls) => {
            let (client, connection) = config
                .connect(MakeRustlsConnect::new(tls))
                .await
                .map_err(failed)?;
            (client, tokio::spawn(drive(connection)))
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            (client, tokio::spawn(drive(connection)))
        }
    })
}

/// Runs the connection until it closes; errors surface on the client's next call.
async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!("connection closed: {e}");
    }
}

async fn check_server(
    spec: &TargetSpec,
    client: &Client,
    session: Session,
) -> Result<ServerInfo, PgError> {
    let row = client
        .query_one(CHECK_SERVER, &[])
        .await
        .map_err(|e| PgError::query(&spec.name, WHAT_CHECK, e))?;
    let (info, read_stats, signal) = decode_server(&row, &spec.name)?;
    if info.version_num < MINIMUM_VERSION_NUM {
        return Err(PgError::Unsupported {
            target: spec.name.clone(),
            version: info.version.clone(),
        });
    }
    let missing = missing_privileges(info.superuser, read_stats, signal);
    if !missing.is_empty() {
        return Err(PgError::MissingPrivileges {
            target: spec.name.clone(),
            role: info.role.clone(),
            missing,
        });
    }
    if session == Session::Inspect {
        return Ok(info);
    }
    // Our own session must not be ended by the server's idle timeouts either.
    client
        .batch_execute(NO_IDLE_TIMEOUTS)
        .await
        .map_err(|e| PgError::query(&spec.name, "configuring curfew's session", e))?;
    Ok(info)
}
