//! The gateway's own configuration: where it listens, where it forwards, its TLS files and its
//! limits. Kept apart from the policy file's `[gateway]` section so the gateway can run (and be
//! tested) on its own; the policy maps onto it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use curfew_postgres::ConnectionUrl;

/// Everything [`crate::run`] needs to know besides its listeners and its verifier source.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The addresses to listen on (the binary binds them; [`crate::run`] takes the listeners).
    pub listen: Vec<SocketAddr>,
    /// The PostgreSQL server every client is relayed to.
    pub upstream: UpstreamConfig,
    /// The certificate and key clients see; without them TLS is refused ('N').
    pub tls: Option<TlsFiles>,
    /// Refuse clients that do not use TLS (as `hostssl` in `pg_hba.conf`).
    pub require_tls: bool,
    /// The most clients served at once; one more is told FATAL 53300 and closed.
    pub max_clients: usize,
    /// How long a client has from connecting until it is authenticated.
    pub login_timeout: Duration,
    /// TCP keepalive on the clients' sockets (`None`: off).
    pub keepalive: Option<Keepalive>,
    /// How long a draining gateway lets sessions finish (used by the drain, not yet by
    /// [`crate::run`]).
    pub shutdown_timeout: Duration,
}

impl GatewayConfig {
    /// A configuration with the defaults: no TLS, 100 clients, a 10 s login timeout.
    pub fn new(listen: Vec<SocketAddr>, upstream: UpstreamConfig) -> GatewayConfig {
        GatewayConfig {
            listen,
            upstream,
            tls: None,
            require_tls: false,
            max_clients: 100,
            login_timeout: Duration::from_secs(10),
            keepalive: Some(Keepalive::default()),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// The certificate chain and private key files (PEM) of the client leg's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate, optionally followed by intermediates.
    pub cert: PathBuf,
    /// The private key (the file's path only: its content is never kept in the config).
    pub key: PathBuf,
}

/// The server the gateway forwards to: the target's URL (`[[target]]`'s), of which the
/// gateway uses the hosts and ports (tried in order, TCP only), `sslmode`, `sslrootcert`,
/// `sslcert`/`sslkey` and `connect_timeout`. Its user and database are not used: each session
/// logs in as its client's role, to its client's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The target's URL.
    pub url: ConnectionUrl,
}

impl UpstreamConfig {
    /// How long connecting and the server's startup may take (`connect_timeout`, 10 s).
    pub fn connect_timeout(&self) -> Duration {
        self.url.connect_timeout.unwrap_or(Duration::from_secs(10))
    }
}

/// TCP keepalive on accepted sockets: a dead client's session is noticed (the analogue of
/// Oracle's `SQLNET.EXPIRE_TIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub retries: u32,
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            retries: 6,
        }
    }
}
