//! curfew's PostgreSQL wire-protocol gateway: accepts clients (TLS after an SSLRequest or
//! directly, as PostgreSQL 17), authenticates them with SCRAM-SHA-256 against the role's own
//! verifier, logs in to the server as the same role with the ClientKey recovered from the
//! client's proof (the password never crosses the gateway), and relays each client to its own
//! server connection. Cancel requests reach the right server session through per-client keys.
//!
//! The shutdown is injected: [`run`] stops accepting when its `shutdown` future completes.

mod auth;
mod auth_function;
mod buffers;
mod cancel;
mod client_tls;
mod config;
mod drain;
mod error;
mod frames;
mod gateway;
mod listener;
mod policy_map;
mod pump;
mod registry;
mod relay;
mod session;
mod startup;
mod stream;
mod traffic;
mod upstream;
mod verifiers;
mod workers;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use auth_function::AuthFunctionSource;
pub use cancel::{KEY_LEN_V3_0, KEY_LEN_V3_2};
pub use client_tls::{ALPN_POSTGRESQL, LoadedTls, TlsHandle, TlsLoadError};
pub use config::{GatewayConfig, Keepalive, TlsFiles, UpstreamConfig};
pub use error::{Fatal, SessionError, sqlstate};
pub use gateway::{Gateway, GatewayError};
pub use policy_map::{PolicyGateway, PolicyGatewayError};
pub use registry::{
    GatewayBackend, RegistrationError, RegistrationFuture, SessionRegistry, registration_failures,
};
pub use relay::{RelayEnd, RelayOutcome};
pub use session::{CLIENT_ADDR_PARAMETER, TLS_REQUIRED_MESSAGE};
pub use traffic::{RelayTotals, Traffic};
pub use verifiers::{
    MockSalt, RoleLookup, RoleSecret, StoredSecret, VerifierFuture, VerifierSource,
    VerifierSourceError,
};
pub use workers::Workers;

/// Serves clients on `listeners` until `shutdown` completes; then accepts no more and returns
/// when the sessions have ended.
pub async fn run(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) {
    listener::run(listeners, gateway.shared, shutdown, None).await;
}

/// [`run`] with each session on one of `workers` (its whole life on that thread): the
/// accept loops stay on the calling runtime.
pub async fn run_on(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
    workers: Arc<Workers>,
) {
    listener::run(listeners, gateway.shared, shutdown, Some(workers)).await;
}
