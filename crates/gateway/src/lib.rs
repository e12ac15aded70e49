//! curfew's PostgreSQL wire-protocol gateway: accepts clients (TLS after an SSLRequest or
//! directly, as PostgreSQL 17), authenticates them with SCRAM-SHA-256 against the role's own
//! verifier, logs in to the server as the same role with the ClientKey recovered from the
//! client's proof (the password never crosses the gateway), and relays each client to its own
//! server connection. Cancel requests reach the right server session through per-client keys.
//!
//! The shutdown is injected: [`run`] stops accepting when its `shutdown` future completes.

mod activity;
mod admission;
mod audit_trail;
mod auth;
mod auth_function;
mod buffers;
mod cancel;
mod client_tls;
mod config;
mod drain;
mod enforce;
mod error;
mod frames;
mod gateway;
mod listener;
mod login_names;
mod metrics;
mod policy_map;
mod pump;
mod registry;
mod relay;
mod reload;
mod session;
mod shutdown;
mod slots;
mod startup;
mod statements;
mod stream;
mod traffic;
mod upstream;
mod verifiers;
mod violations;
mod workers;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use audit_trail::FAILED_LOGINS_PERIOD;
pub use auth_function::AuthFunctionSource;
pub use cancel::{KEY_LEN_V3_0, KEY_LEN_V3_2};
pub use client_tls::{ALPN_POSTGRESQL, LoadedTls, TlsHandle, TlsLoadError};
pub use config::{GatewayConfig, Keepalive, TlsFiles, UpstreamConfig};
pub use error::{Fatal, SessionError, sqlstate};
pub use gateway::{Gateway, GatewayError, HealthCheck};
pub use policy_map::{PolicyGateway, PolicyGatewayError};
pub use registry::{
    AdmissionClaim, ClaimFuture, CountFuture, GatewayBackend, PlaceWanted, REGISTRY_CALL_TIMEOUT,
    RegistrationError, RegistrationFuture, SessionRegistry, SharedViolation, registration_failures,
};
pub use relay::{RelayEnd, RelayOutcome};
pub use reload::{ReloadError, Reloaded};
pub use session::{CLIENT_ADDR_PARAMETER, TLS_REQUIRED_MESSAGE};
pub use shutdown::{Drained, SHUTDOWN_REASON, Shutdown};
pub use traffic::{RelayTotals, Traffic};
pub use verifiers::{
    LedgerLock, LockKind, MockSalt, RoleLookup, RoleSecret, StoredSecret, VerifierFuture,
    VerifierSource, VerifierSourceError,
};
pub use workers::Workers;

/// Serves clients on `listeners` until `shutdown` completes; then accepts no more, lets the
/// sessions finish within `shutdown_timeout`, ends the rest with FATAL 57P01 and returns.
pub async fn run(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) {
    let control = Shutdown::new();
    let asked = async {
        shutdown.await;
        control.drain();
    };
    let _ = tokio::join!(serve_until(listeners, gateway, &control, None), asked);
}

/// [`run`] with each session on one of `workers` (its whole life on that thread): the
/// accept loops stay on the calling runtime.
pub async fn run_on(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
    workers: Arc<Workers>,
) {
    let control = Shutdown::new();
    let asked = async {
        shutdown.await;
        control.drain();
    };
    let _ = tokio::join!(
        serve_until(listeners, gateway, &control, Some(workers)),
        asked
    );
}

/// Serves clients on `listeners` until `shutdown` asks to stop, then drains (see [`Shutdown`]);
/// writes `gateway_started` and `gateway_stopped` (and the failed logins counted, every
/// [`FAILED_LOGINS_PERIOD`]) to the gateway's audit log when it has one.
pub async fn run_until(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: &Shutdown,
) -> Drained {
    serve_until(listeners, gateway, shutdown, None).await
}

/// [`run_until`] with each session on one of `workers`, as [`run_on`].
pub async fn run_until_on(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: &Shutdown,
    workers: Arc<Workers>,
) -> Drained {
    serve_until(listeners, gateway, shutdown, Some(workers)).await
}

async fn serve_until(
    listeners: Vec<TcpListener>,
    gateway: Gateway,
    shutdown: &Shutdown,
    workers: Option<Arc<Workers>>,
) -> Drained {
    let shared = gateway.shared;
    let config = shared.config();
    if let Some(audit) = shared.audit() {
        let listen: Vec<String> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        audit
            .gateway_started(serde_json::json!({
                "listen": listen,
                "upstream": config.upstream.url.to_string(),
                "tls": config.tls.is_some(),
                "require_tls": config.require_tls,
                "max_clients": config.max_clients,
                "version": env!("CARGO_PKG_VERSION"),
            }))
            .await;
    }
    let tally = {
        let shared = shared.clone();
        async move {
            let mut every = tokio::time::interval(FAILED_LOGINS_PERIOD);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                if let Some(audit) = shared.audit() {
                    audit.write_failed_logins(jiff::Timestamp::now()).await;
                }
            }
        }
    };
    let drained = tokio::select! {
        drained = listener::run(listeners, shared.clone(), shutdown, workers) => drained,
        () = tally => unreachable!("the tally loops forever"),
    };
    if let Some(audit) = shared.audit() {
        let reason = if drained.ended == 0 {
            "every session finished within the shutdown timeout"
        } else {
            "the sessions still running were ended (FATAL 57P01)"
        };
        audit
            .gateway_stopped(
                reason,
                serde_json::json!({
                    "sessions_at_stop": drained.at_start,
                    "sessions_ended": drained.ended,
                }),
            )
            .await;
    }
    drained
}
