//! Why the demo stopped.

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The throwaway cluster could not be started or set up.
    #[error("{0}")]
    Sandbox(#[from] curfew_sandbox::SandboxError),
    /// A task of the demo died.
    #[error("{what}")]
    Task {
        /// Which task.
        what: &'static str,
        /// Why.
        source: tokio::task::JoinError,
    },
    /// A file could not be written, copied or made.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The audit log could not be opened or verified.
    #[error("{what}")]
    Audit {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: curfew_audit::AuditError,
    },
    /// The built-in policy did not load (a bug).
    #[error("the built-in policy: {0}")]
    Policy(curfew_policy::LoadError),
    /// A session of the cast could not be opened or prepared.
    #[error("{what}")]
    Session {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: tokio_postgres::Error,
    },
    /// A query of the cast failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] curfew_agent::AgentError),
    /// The agent did not start (its reason, as it reported it).
    #[error("the agent could not start: {0}")]
    AgentNotStarted(String),
    /// The agent did not start in time.
    #[error("the agent did not start within 20s")]
    AgentSlow,
    /// The gateway's auth function was not installed (what the installer said).
    #[error("the gateway's auth function was not installed: {0}")]
    NoGatewayAuth(String),
    /// The gateway's session registry was not installed (what the installer said).
    #[error("the gateway's session registry was not installed: {0}")]
    NoGatewayRegistry(String),
    /// Installing the ledger and the gateway's auth function failed.
    #[error("installing curfew's ledger and the gateway's auth function")]
    Install(#[from] curfew_postgres::PgError),
    /// A connection URL the demo made was refused (a bug).
    #[error("a connection URL of the demo")]
    Url(#[from] curfew_postgres::UrlError),
    /// The humans' TLS towards the gateway could not be set up.
    #[error("TLS towards the gateway")]
    Tls(#[from] curfew_postgres::TlsError),
    /// The demo policy's `[gateway]` gives no gateway configuration (a bug).
    #[error("the demo policy's [gateway]")]
    PolicyGateway(#[from] curfew_gateway::PolicyGatewayError),
    /// The gateway could not be set up.
    #[error("setting up the gateway")]
    Gateway(#[from] curfew_gateway::GatewayError),
    /// A session was not treated as the policy says (the narration shows which).
    #[error("the demo did not go as the policy says (see above)")]
    NotAsThePolicySays,
}
