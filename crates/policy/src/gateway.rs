//! `[gateway]`: how `curfew gateway` listens, where it forwards, which roles it serves, and
//! how it fetches their SCRAM verifiers. Validated by the parser; absent, there is no gateway.

use std::net::SocketAddr;

use crate::duration::Limit;
use crate::target_url::TargetUrl;

/// The address the gateway listens on when `listen` is not given: loopback only, PgBouncer's
/// port, so nothing is exposed until an administrator says so.
pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:6432";

/// `[gateway]` settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// Where clients connect: one or more IP addresses and ports, without duplicates.
    pub listen: Vec<SocketAddr>,
    /// The name of the `[[target]]` (a primary) sessions are forwarded to.
    pub target: String,
    /// The certificate and key the client leg's TLS uses, when given.
    pub tls: Option<GatewayTls>,
    /// Refuse clients that do not start TLS (`hostssl`-style); needs [`Gateway::tls`].
    pub require_tls: bool,
    /// How long a client has to finish authenticating.
    pub login_timeout: Limit,
    /// How long a draining gateway lets sessions finish before ending them.
    pub shutdown_timeout: Limit,
    /// How many clients may be connected at once.
    pub max_clients: u32,
    /// TCP keepalive idle time on client connections; `None` when disabled (`"0s"`).
    pub keepalive: Option<Limit>,
    /// Serve only the members (direct or indirect) of this role, when set.
    pub serve_members_of: Option<String>,
    /// Serve superusers too (off by default: whoever holds a verifier can attack the password
    /// offline, and a superuser's is the most valuable).
    pub serve_superusers: bool,
    /// The URL the gateway fetches SCRAM verifiers through, as its own role (its user): the
    /// `auth_url` given, or the target's `url`.
    pub auth_url: TargetUrl,
    /// The gateway's own audit log (one writer per chain: never the agent's file).
    pub audit_log: Option<String>,
    /// Where the gateway serves `/metrics` and `/healthz` over HTTP; `None`: not served.
    pub http_listen: Option<SocketAddr>,
    /// The file holding the password of `auth_url`'s role, as written (read when the gateway
    /// connects, by the same code and rules as a target's `password_file`; never logged).
    /// `None` when not given: then an `auth_url` equal to the target's `url` uses the target's
    /// `password_file`, and any other `auth_url` logs in without a password.
    pub auth_password_file: Option<String>,
}

/// The files of the gateway's client-leg TLS (paths as written; read when the gateway starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTls {
    /// The certificate chain (PEM).
    pub cert: String,
    /// The private key (PEM). Only its path is kept here.
    pub key: String,
}

impl Gateway {
    /// The role the gateway logs in as to fetch verifiers, when a validator read its URL.
    pub fn own_role(&self) -> Option<&str> {
        self.auth_url.login_role.as_deref()
    }
}
