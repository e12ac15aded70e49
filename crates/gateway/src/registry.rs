//! Registering each backend the gateway logs in with the server's gateway session registry
//! (`curfew.register_gateway_session`, which `curfew init` installs): the backend's pid, its
//! role, the gateway's own end of the upstream connection (which the function checks against
//! the backend's peer in `pg_stat_activity`), the client behind it and the gateway's id. The
//! agent and `pg_stat_activity` readers then see who is behind the gateway, through a marker no
//! client can set (a startup setting such as `curfew.client_addr` is the client's own).
//!
//! A registration that fails does not refuse the session: the client has authenticated, and an
//! unregistered session is, to the agent, a direct session from the gateway's host, which it
//! enforces as it enforces every direct session (it leaves only registered sessions to the
//! gateway). Failing open therefore loses the client's address in the agent's records, never
//! enforcement; the failure is logged as an error and counted ([`registration_failures`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use curfew_policy::RoleSession;

use crate::stream::ServerStream;

/// How long a call to the registry (a registration, a claim, its release, a shared count) may
/// take before the gateway goes on without its answer, unless the registry says otherwise
/// ([`SessionRegistry::call_timeout`]). The call itself is not withdrawn.
pub const REGISTRY_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Registrations that failed since the process started.
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many registrations failed since the process started (each session relayed anyway).
pub fn registration_failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

/// A backend the gateway just logged in, as it registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayBackend {
    /// The backend's process id (BackendKeyData's).
    pub pid: i32,
    /// The role it logged in as.
    pub role: String,
    /// The gateway's own end of the upstream connection: the backend's peer as the server
    /// sees it.
    pub upstream: SocketAddr,
    /// The client behind the gateway.
    pub client: SocketAddr,
    /// Which gateway: host and process.
    pub gateway_id: String,
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The server refused it (`CF010`: not the caller's own backend; `42883`/`42501`: the
    /// registry is not installed or not granted to the gateway's role).
    #[error("the server refused the registration ({code}): {reason}")]
    Refused {
        /// The SQLSTATE.
        code: String,
        /// The server's message.
        reason: String,
    },
    /// The connection or the call failed.
    #[error("the registration failed: {0}")]
    Failed(String),
    /// The call was never sent: no connection to the server could be had.
    #[error("no connection to call the registry: {0}")]
    NotSent(String),
}

/// The future a [`SessionRegistry`] returns.
pub type RegistrationFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), RegistrationError>> + Send + 'a>>;

/// Where backends are registered: the real one is the auth function's connection
/// ([`crate::AuthFunctionSource`]).
pub trait SessionRegistry: Send + Sync {
    /// How long the gateway waits for one of these calls before going on without its answer
    /// (the login or the session is never held longer).
    fn call_timeout(&self) -> Duration {
        REGISTRY_CALL_TIMEOUT
    }

    /// Register `backend` with the server.
    fn register<'a>(&'a self, backend: &'a GatewayBackend) -> RegistrationFuture<'a>;

    /// Claim a place for `login` against session caps, recorded under `login.claim` (the id
    /// the gateway releases later, whatever this returns): the role's live sessions on the server
    /// and admissions in flight through any gateway, each with what a cap's scope reads of it,
    /// read while that role's other admissions wait (`curfew.claim_gateway_admission`).
    /// `None`: this registry cannot count (the login is judged with no other session).
    fn claim<'a>(&'a self, login: &'a PlaceWanted<'a>) -> ClaimFuture<'a> {
        let _ = login;
        Box::pin(async { Ok(None) })
    }

    /// Release a claim once its login is done (logged in, refused or failed).
    fn release<'a>(&'a self, claim: &'a str) -> RegistrationFuture<'a> {
        let _ = claim;
        Box::pin(async { Ok(()) })
    }

    /// Record an error a `per = "role"` violations rule counts, for every gateway to see
    /// (`curfew.count_gateway_violation`), and return the SQLSTATEs the role's count holds
    /// within the rule's window, oldest first. `None`: this registry cannot count (the
    /// gateway counts in its own process only).
    fn count_violation<'a>(&'a self, violation: &'a SharedViolation) -> CountFuture<'a> {
        let _ = violation;
        Box::pin(async { Ok(None) })
    }
}

/// An error counted by a `per = "role"` rule, as every gateway records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedViolation {
    /// The role the session logged in as.
    pub role: String,
    /// The rule's stable id.
    pub rule: String,
    /// The server's SQLSTATE.
    pub sqlstate: String,
    /// The rule's window, in whole seconds (at least 1).
    pub within_seconds: i32,
    /// Which gateway: host and process.
    pub gateway_id: String,
}

/// The future [`SessionRegistry::count_violation`] returns.
pub type CountFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Vec<String>>, RegistrationError>> + Send + 'a>>;

/// A login that wants a place under the session caps: recorded with its claim, so that other
/// logins' caps count it in their scope while it is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceWanted<'a> {
    /// The role logging in.
    pub role: &'a str,
    /// The database asked for (the client's word, used only to match scopes).
    pub database: &'a str,
    /// `application_name` as the client set it (the same).
    pub application: &'a str,
    /// The client's address (None: a Unix socket).
    pub client_addr: Option<IpAddr>,
    /// The claim's id, a random uuid this gateway chose: it can release the claim
    /// even when it stopped waiting for the answer.
    pub claim: &'a str,
}

/// A new claim id: a random (version 4) uuid in its text form.
///
/// # Errors
/// When the system's random source fails.
pub(crate) fn new_claim_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A place claimed for a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionClaim {
    /// The claim, to release (None: the role does not exist, nothing was claimed).
    pub claim: Option<String>,
    /// The role's live client sessions and other admissions in flight, before this login:
    /// what each cap counts of them is the engine's (`curfew_policy::admit`).
    pub others: Vec<RoleSession>,
}

/// The future [`SessionRegistry::claim`] returns.
pub type ClaimFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<AdmissionClaim>, RegistrationError>> + Send + 'a>>;

/// Claims a place for `login` through `registry`, within the registration's time limit (a
/// claim that takes longer is an error: the login goes on without the count).
pub(crate) async fn claim(
    registry: &dyn SessionRegistry,
    login: &PlaceWanted<'_>,
) -> Result<Option<AdmissionClaim>, RegistrationError> {
    let within = registry.call_timeout();
    tokio::time::timeout(within, registry.claim(login))
        .await
        .unwrap_or_else(|_| {
            Err(RegistrationError::Failed(format!(
                "no answer within {within:?}"
            )))
        })
}

/// This gateway's id: the host's name and the process id.
pub(crate) fn gateway_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned());
        format!("{host}/{}", std::process::id())
            .chars()
            .take(curfew_postgres::MAX_GATEWAY_ID_CHARS)
            .collect()
    })
}

/// The gateway's own end of the upstream connection.
fn local_addr(server: &ServerStream) -> std::io::Result<SocketAddr> {
    match server {
        ServerStream::Plain(tcp) => tcp.local_addr(),
        ServerStream::Tls(tls) => tls.get_ref().0.local_addr(),
    }
}

/// Registers the backend `pid` of `role` on `server` for the client at `peer`, within a short
/// timeout; a failure is logged and counted, and the session goes on (see the module
/// documentation). Without a registry (a test's verifier source), nothing is done.
pub(crate) async fn register(
    registry: Option<&dyn SessionRegistry>,
    server: &ServerStream,
    pid: i32,
    role: &str,
    peer: SocketAddr,
) {
    let Some(registry) = registry else {
        return;
    };
    let failed = |error: &dyn std::fmt::Display| {
        FAILURES.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            event = "gateway_registration_failed",
            %peer, role, process_id = pid, %error,
            "the session is relayed unregistered: the agent sees it as a direct session from the gateway's host and enforces it as one; run curfew init for the gateway's target if the registry is missing"
        );
    };
    let upstream = match local_addr(server) {
        Ok(addr) => addr,
        Err(e) => return failed(&e),
    };
    let backend = GatewayBackend {
        pid,
        role: role.to_owned(),
        upstream,
        client: SocketAddr::new(canonical(peer.ip()), peer.port()),
        gateway_id: gateway_id().to_owned(),
    };
    let within = registry.call_timeout();
    match tokio::time::timeout(within, registry.register(&backend)).await {
        Ok(Ok(())) => tracing::debug!(%peer, role, process_id = pid, "session registered"),
        Ok(Err(e)) => failed(&e),
        Err(_) => failed(&format!("no answer within {within:?}")),
    }
}

/// An IPv4 client seen on an IPv6 listener (`::ffff:a.b.c.d`) as its IPv4 address, as the
/// server would show it.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_id_names_the_process_within_the_function_s_limit() {
        let id = gateway_id();
        assert!(id.ends_with(&format!("/{}", std::process::id())), "{id}");
        assert!(id.chars().count() <= curfew_postgres::MAX_GATEWAY_ID_CHARS);
    }

    #[test]
    fn claim_ids_are_distinct_version_4_uuids() {
        let (Ok(one), Ok(two)) = (new_claim_id(), new_claim_id()) else {
            panic!("no random source");
        };
        assert_ne!(one, two);
        for id in [&one, &two] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
            assert_eq!(id.as_bytes()[14], b'4', "{id}");
            assert!(
                matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
    }

    #[test]
    fn a_mapped_ipv4_client_is_registered_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(canonical(mapped), IpAddr::from([10, 1, 2, 3]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(canonical(v6), v6);
    }
}
