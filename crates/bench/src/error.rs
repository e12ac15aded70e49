//! Why a benchmark run stopped.

use std::process::ExitStatus;
use std::time::Duration;

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The sandbox cluster could not be started or set up.
    #[error("{0}")]
    Sandbox(#[from] curfew_sandbox::SandboxError),
    /// A query of the load or of the monitor failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// A session of the load could not be opened.
    #[error("opening a session as {role}")]
    Open {
        /// The role it logs in as.
        role: String,
        /// Why.
        source: tokio_postgres::Error,
    },
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file or process operation failed, doing `what`.
    #[error("{what}")]
    IoDoing {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A task opening sessions died.
    #[error("opening sessions")]
    Task(#[from] tokio::task::JoinError),
    /// The agent under test exited before it led its target.
    #[error("curfew agent exited with {0} before connecting")]
    AgentExited(ExitStatus),
    /// The agent under test did not lead its target in time.
    #[error("curfew agent did not connect within {0:?}")]
    AgentSilent(Duration),
    /// The agent under test did not stop cleanly.
    #[error("curfew agent stopped with {0}")]
    AgentFailed(ExitStatus),
    /// The agent's log could not be read.
    #[error("reading the agent's log")]
    AgentLog,
    /// The agent's working connection was not found on the server.
    #[error("finding the agent's server process")]
    AgentBackend,
    /// A time computation failed.
    #[error(transparent)]
    Time(#[from] jiff::Error),
    /// The synthetic policy did not parse (a bug).
    #[error("{0}")]
    Policy(curfew_policy::PolicyErrors),
    /// pgbench failed or printed no tps.
    #[error("{what} failed:\n{output}")]
    Pgbench {
        /// The command.
        what: String,
        /// What it printed.
        output: String,
    },
    /// A proxy under test (curfew gateway or PgBouncer) failed.
    #[error("{name} {why}; the end of its log:\n{log}")]
    Proxy {
        /// Which proxy.
        name: &'static str,
        /// What went wrong.
        why: String,
        /// The last lines of its log.
        log: String,
    },
    /// PgBouncer is not installed and could not be installed.
    #[error("{0}")]
    PgbouncerMissing(String),
    /// The client TLS configuration could not be built.
    #[error("client TLS: {0}")]
    Tls(String),
    /// The gateway run's setup failed.
    #[error("setting up: {0}")]
    Setup(String),
    /// A MariaDB client of the run failed.
    #[error("MariaDB: {0}")]
    Mysql(#[from] mysql_async::Error),
    /// An administrator's operation through curfew's PostgreSQL adapter failed.
    #[error(transparent)]
    Adapter(#[from] curfew_postgres::PgError),
}
