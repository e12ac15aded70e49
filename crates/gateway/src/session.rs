//! One client's life: the opening, the TLS rule, the login within `login_timeout` (SCRAM with
//! the client, then with the server as the same role), the greeting with the client's own
//! cancel key, then the relay.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, info, warn};

use curfew_wire::{
    ProtocolVersion, encode_authentication_ok, encode_authentication_sasl_final,
    encode_backend_key_data, encode_negotiate_protocol_version,
};

use crate::activity::{Clock, Watched};
use crate::admission::{self, Applicant, RoleState};
use crate::audit_trail::{SessionEnd, SessionFacts};
use crate::auth::{authenticate, channel_binding};
use crate::cancel::{KEY_LEN_V3_0, KEY_LEN_V3_2, Registration};
use crate::config::GatewayConfig;
use crate::enforce::{Enforcer, SessionIdentity, Warned, WarnedOf};
use crate::error::{Fatal, SessionError, sqlstate};
use crate::frames::{FrameReader, send_client};
use crate::gateway::Shared;
use crate::login_names::{database_and_application, role_name};
use crate::metrics::{Refusal, failure_cause};
use crate::registry::{PlaceWanted, RegistrationError};
use crate::relay::{RelayEnd, relay};
use crate::startup::{ClientStartup, Opening, open};
use crate::stream::{ClientStream, ServerStream};
use crate::upstream::{self, LoginFailure};
use crate::verifiers::VerifierSource;

/// The newest protocol minor version the gateway serves (3.2, PostgreSQL 18's).
const NEWEST_MINOR: u16 = 2;

/// The startup parameter carrying the client's address to the server.
pub const CLIENT_ADDR_PARAMETER: &str = "curfew.client_addr";

/// The message a plaintext client gets when TLS is required.
pub const TLS_REQUIRED_MESSAGE: &str = "curfew gateway requires TLS (sslmode=require)";

/// Serves one accepted connection to its end.
pub(crate) async fn serve(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _client = shared.metrics.client_connected();
    let config = shared.config();
    let deadline = Instant::now() + config.login_timeout;
    let opening = match timeout_at(deadline, open(tcp, &shared.tls)).await {
        Err(_) => {
            debug!(%peer, "closed: no startup within the login timeout");
            shared.metrics.refused(Refusal::LoginTimeout);
            return;
        }
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "closed during the opening");
            return;
        }
        Ok(Ok(opening)) => opening,
    };
    match opening {
        Opening::Cancel { process_id, key } => forward_cancel(&shared, process_id, &key).await,
        Opening::Startup(startup) => run_session(startup, peer, deadline, &config, &shared).await,
    }
}

/// Refuses a connection over `max_clients` with PostgreSQL's FATAL 53300, after its opening
/// (so the client is past its SSLRequest and reads the error); a cancel is still forwarded.
pub(crate) async fn refuse_too_many(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let config = shared.config();
    let deadline = Instant::now() + config.login_timeout;
    match timeout_at(deadline, open(tcp, &shared.tls)).await {
        Ok(Ok(Opening::Startup(mut startup))) => {
            info!(%peer, max_clients = config.max_clients, "refused: too many clients");
            shared.metrics.refused(Refusal::MaxClients);
            let fatal = Fatal::new(
                sqlstate::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            );
            let _ = timeout_at(deadline, send_client(&mut startup.stream, &fatal.encode())).await;
        }
        Ok(Ok(Opening::Cancel { process_id, key })) => {
            forward_cancel(&shared, process_id, &key).await;
        }
        _ => {}
    }
}

async fn forward_cancel(shared: &Shared, process_id: i32, key: &[u8]) {
    // Unknown keys are dropped without a word, as the server does.
    let Some(server) = shared.cancels.lookup(process_id, key) else {
        debug!(process_id, "cancel request with an unknown key dropped");
        return;
    };
    let config = shared.config();
    let limit = config.upstream.connect_timeout();
    let sent = timeout(
        limit,
        upstream::send_cancel(&config.upstream, shared.upstream_tls.as_ref(), &server),
    )
    .await;
    match sent {
        Ok(Ok(())) => debug!(process_id, "cancel request forwarded"),
        Ok(Err(e)) => info!(process_id, error = %e, "cancel request not forwarded"),
        Err(_) => info!(
            process_id,
            "cancel request not forwarded: the server did not answer"
        ),
    }
}

async fn run_session(
    startup: ClientStartup,
    peer: SocketAddr,
    deadline: Instant,
    config: &GatewayConfig,
    shared: &Shared,
) {
    let role = role_name(startup.user());
    let mut client = Client {
        stream: startup.stream,
        tls: startup.tls,
        version: startup.version,
        params: startup.params,
    };
    if config.require_tls && !client.stream.is_tls() {
        info!(%peer, role, "refused: a plaintext client and require_tls is set");
        shared.metrics.refused(Refusal::RequireTls);
        let fatal = Fatal::new(sqlstate::INVALID_AUTHORIZATION, TLS_REQUIRED_MESSAGE);
        let _ = timeout_at(deadline, send_client(&mut client.stream, &fatal.encode())).await;
        return;
    }
    let started = match timeout_at(deadline, login(&mut client, &role, peer, config, shared)).await
    {
        Err(_) => {
            info!(%peer, role, "closed: authentication did not finish within the login timeout");
            shared.metrics.refused(Refusal::LoginTimeout);
            login_failed(shared, "login_timeout");
            let fatal = Fatal::new(
                sqlstate::QUERY_CANCELED,
                "canceling authentication due to timeout",
            );
            let grace = Instant::now() + std::time::Duration::from_secs(1);
            let _ = timeout_at(grace, send_client(&mut client.stream, &fatal.encode())).await;
            return;
        }
        Ok(Err(e)) => {
            info!(%peer, role, error = %e, "login failed");
            login_failed(shared, failure_cause(&e));
            return;
        }
        Ok(Ok(started)) => started,
    };
    let process_id = started.registration_pid;
    let tls = client.stream.is_tls();
    info!(%peer, role, process_id, tls, "session started");
    let (database, application) = database_and_application(&client.params, &role);
    let clock = Clock::start();
    let facts = SessionFacts {
        peer,
        role: &role,
        database: &database,
        application: &application,
        pid: process_id,
        tls,
        started: clock.now(),
    };
    let mut enforcer = Enforcer::new(
        Watched::new(clock),
        SessionIdentity {
            pid: process_id,
            started: facts.started,
            role: Arc::from(role.as_str()),
            member_of: started.member_of.clone(),
            database: Arc::from(database.as_str()),
            application: Arc::from(application.as_str()),
            client_addr: Some(peer.ip().to_canonical()),
        },
        shared.policy.subscribe(),
        shared.violations.clone(),
        shared.metrics.clone(),
        Box::new(|warned: &Warned| {
            if let Some(audit) = shared.audit() {
                // The hooks the warning is queued for, as the agent's record lists them.
                let hooks: Vec<&str> = shared
                    .policy
                    .borrow()
                    .as_ref()
                    .map(|p| curfew_notify::hooks(&p.notify))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| h.as_str())
                    .collect();
                audit.session_warned(&facts, warned, &hooks);
            }
            notify_warned(shared, &facts, warned);
        }),
    )
    .with_shared_counts(shared.verifiers.clone());
    shared.metrics.session_started();
    if let Some(audit) = shared.audit() {
        audit.session_started(&facts).await;
    }
    let _registration = started.registration;
    let outcome = relay(
        client.stream,
        started.client_rest,
        started.server,
        started.server_rest,
        shared.drain.ended(),
        &shared.traffic,
        &mut enforcer,
    )
    .await;
    let totals = outcome.totals;
    let (client_to_server, server_to_client) = (totals.client_to_server, totals.server_to_client);
    let (how, error) = match &outcome.end {
        RelayEnd::ClientLeft => ("client_left", None),
        RelayEnd::ServerLeft => ("server_left", None),
        RelayEnd::Stopped { .. } if enforcer.ended().is_some() => ("ended_by_policy", None),
        RelayEnd::Stopped { delivered, .. } => (
            if *delivered {
                "ended_by_gateway"
            } else {
                "ended_by_gateway_undelivered"
            },
            None,
        ),
        RelayEnd::Failed(e) => ("error", Some(e.to_string())),
    };
    match &outcome.end {
        RelayEnd::Failed(e) => info!(%peer, role, process_id, error = %e, "session ended"),
        end => info!(
            %peer, role, process_id, client_to_server, server_to_client, end = ?end,
            "session ended"
        ),
    }
    shared.metrics.session_ended(how);
    if let Some(audit) = shared.audit() {
        if let (Some(ended), RelayEnd::Stopped { delivered, .. }) = (enforcer.ended(), &outcome.end)
        {
            audit.session_terminated(&facts, ended, *delivered).await;
        }
        let end = SessionEnd {
            how,
            client_to_server,
            server_to_client,
            error,
        };
        audit.session_ended(&facts, &end).await;
    }
}

/// Counts a failed login (metrics, and the audit's tally of failures).
fn login_failed(shared: &Shared, cause: &'static str) {
    shared.metrics.auth_failed(cause);
    if let Some(audit) = shared.audit() {
        audit.login_failed(cause);
    }
}

/// The client during its login.
struct Client {
    stream: ClientStream,
    tls: Option<Arc<crate::client_tls::LoadedTls>>,
    version: ProtocolVersion,
    params: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A logged-in session, ready to relay.
struct Started {
    server: ServerStream,
    server_rest: Vec<u8>,
    client_rest: Vec<u8>,
    registration: Registration,
    registration_pid: i32,
    /// The role's memberships as of its login, for the session's timers.
    member_of: Arc<[String]>,
}

async fn login(
    client: &mut Client,
    role: &str,
    peer: SocketAddr,
    config: &GatewayConfig,
    shared: &Shared,
) -> Result<Started, SessionError> {
    // Options the gateway does not know (`_pq_.*`) and a minor version above 3.2 are
    // answered as PostgreSQL answers them: NegotiateProtocolVersion, then go on.
    let minor = client.version.minor.min(NEWEST_MINOR);
    let unknown: Vec<&[u8]> = client
        .params
        .iter()
        .filter(|(name, _)| name.starts_with(b"_pq_."))
        .map(|(name, _)| name.as_slice())
        .collect();
    if client.version.minor > NEWEST_MINOR || !unknown.is_empty() {
        let mut out = Vec::new();
        encode_negotiate_protocol_version(u32::from(minor), &unknown, &mut out)
            .map_err(SessionError::ClientProtocol)?;
        send_client(&mut client.stream, &out).await?;
    }
    let version = ProtocolVersion { major: 3, minor };
    let key_len = if minor >= 2 {
        KEY_LEN_V3_2
    } else {
        KEY_LEN_V3_0
    };

    let mut reader = FrameReader::before_authentication();
    let binding = channel_binding(client.tls.as_deref());
    let authenticated = authenticate(
        &mut client.stream,
        &mut reader,
        role,
        binding,
        shared.verifiers.as_ref(),
    )
    .await?;
    reader.authenticated();
    let server_final = authenticated.server_final.clone();

    // The refusal, only now that the client proved its password (the locks came with its
    // verifier, unused until now); told after AuthenticationOk, as PostgreSQL tells a login
    // it refuses after authentication.
    let mut authenticated = authenticated;
    let locks = std::mem::take(&mut authenticated.locks);
    let member_of = std::mem::take(&mut authenticated.member_of);
    let policy = shared.policy.borrow().clone();
    let (database, application) = database_and_application(&client.params, role);
    let applicant = Applicant {
        role,
        member_of: &member_of,
        database: &database,
        application: &application,
        client_addr: Some(peer.ip().to_canonical()),
    };
    // Session caps: the role's sessions read from the server, across gateways and direct
    // sessions, while this role's other admissions wait; each cap counts those in its scope.
    // The claimed place is held until the new backend is logged in (then it counts itself)
    // or the login ends otherwise.
    let mut others = Vec::new();
    let mut claim_held = None;
    if let Some(registry) = shared.verifiers.registry()
        && policy.as_deref().is_some_and(admission::counts_sessions)
    {
        match crate::registry::new_claim_id() {
            Ok(id) => {
                // Held from before the call: a claim answered too late, or on a connection
                // that failed after sending it, is released behind it rather than counting
                // until it expires.
                let held = ClaimHeld::new(shared.verifiers.clone(), id.clone(), role);
                let wanted = PlaceWanted {
                    role,
                    database: &database,
                    application: &application,
                    client_addr: applicant.client_addr,
                    claim: &id,
                };
                match crate::registry::claim(registry, &wanted).await {
                    Ok(Some(claim)) => {
                        others = claim.others;
                        // None: an unknown role, nothing recorded.
                        if claim.claim.is_some() {
                            claim_held = Some(held);
                        } else {
                            held.forget();
                        }
                    }
                    Ok(None) => held.forget(),
                    // Open: the agent still ends sessions beyond a cap; said loudly.
                    Err(e) => {
                        // The server answered with an error (its transaction recorded nothing),
                        // or the call was never sent: nothing to release.
                        if matches!(
                            e,
                            RegistrationError::Refused { .. } | RegistrationError::NotSent(_)
                        ) {
                            held.forget();
                        }
                        warn!(role, claim = %id, error = %e, "cannot count the role's sessions: max_sessions is not checked at this login; if curfew was upgraded, run curfew init again for the gateway's target and restart every gateway with the new binary");
                    }
                }
            }
            Err(e) => {
                warn!(role, error = %e, "cannot choose an admission claim's id: max_sessions is not checked at this login");
            }
        }
    }
    let state = RoleState {
        locks: &locks,
        others: &others,
    };
    if let Some(refused) =
        admission::refused(policy.as_deref(), &applicant, state, jiff::Timestamp::now())
    {
        let mut out = Vec::new();
        encode_authentication_sasl_final(server_final.as_bytes(), &mut out)
            .map_err(SessionError::ClientProtocol)?;
        encode_authentication_ok(&mut out);
        out.extend_from_slice(&refused.fatal.encode());
        let sent = send_client(&mut client.stream, &out).await;
        shared.metrics.login_refused(&refused.rule);
        if let Some(audit) = shared.audit() {
            audit
                .login_refused(role, &database, &application, peer, &refused)
                .await;
        }
        sent?;
        return Err(SessionError::Refused(refused.fatal));
    }

    let address = peer.ip().to_string();
    let mut params: Vec<(&[u8], &[u8])> = client
        .params
        .iter()
        .filter(|(name, _)| !name.starts_with(b"_pq_.") && name != CLIENT_ADDR_PARAMETER.as_bytes())
        .map(|(name, value)| (name.as_slice(), value.as_slice()))
        .collect();
    params.push((CLIENT_ADDR_PARAMETER.as_bytes(), address.as_bytes()));

    let server = match upstream::connect(&config.upstream, shared.upstream_tls.as_ref()).await {
        Ok(server) => server,
        Err(e) => {
            let fatal = Fatal::new(
                sqlstate::CONNECTION_FAILURE,
                "curfew gateway cannot reach the server",
            );
            send_client(&mut client.stream, &fatal.encode()).await?;
            return Err(e);
        }
    };
    let session = match upstream::login(server, version, &params, authenticated).await {
        Ok(session) => session,
        Err(LoginFailure::Refused { raw, code, message }) => {
            send_client(&mut client.stream, &raw).await?;
            return Err(SessionError::ServerRefused { code, message });
        }
        Err(LoginFailure::Gateway(fatal, e)) => {
            send_client(&mut client.stream, &fatal.encode()).await?;
            return Err(e);
        }
    };
    // Logged in: the backend counts itself now. Released before the registration's round
    // trip, which would otherwise count the place twice for that long: a pool opening as many
    // sessions as its cap at once was refused "session 11 of 11" with 10 open. Until it is
    // registered, a cap scoped by `addresses` sees the backend at the gateway's address.
    drop(claim_held);
    crate::registry::register(
        shared.verifiers.registry(),
        &session.stream,
        session.key.process_id,
        role,
        peer,
    )
    .await;
    let (registration, client_key) = shared
        .cancels
        .register(session.key.clone(), key_len)
        .map_err(|e| {
            SessionError::Refused(Fatal::new(sqlstate::CONNECTION_FAILURE, e.to_string()))
        })?;
    let mut out = Vec::with_capacity(256 + session.greeting.len());
    encode_authentication_sasl_final(server_final.as_bytes(), &mut out)
        .map_err(SessionError::ClientProtocol)?;
    encode_authentication_ok(&mut out);
    out.extend_from_slice(&session.greeting);
    encode_backend_key_data(session.key.process_id, &client_key, &mut out)
        .map_err(SessionError::ClientProtocol)?;
    out.extend_from_slice(&session.ready);
    send_client(&mut client.stream, &out).await?;
    Ok(Started {
        server: session.stream,
        server_rest: session.rest,
        client_rest: reader.into_rest(),
        registration,
        registration_pid: session.key.process_id,
        member_of: Arc::from(member_of),
    })
}

/// A claimed place, released when dropped (in a task of its own: a login that ends on an
/// error path releases it too; one whose gateway dies stops counting after the server's
/// `CLAIM_LIFETIME_SECONDS`).
struct ClaimHeld {
    source: Arc<dyn VerifierSource>,
    claim: Option<String>,
    /// Whose login, for the log.
    role: String,
}

impl ClaimHeld {
    fn new(source: Arc<dyn VerifierSource>, claim: String, role: &str) -> ClaimHeld {
        ClaimHeld {
            source,
            claim: Some(claim),
            role: role.to_owned(),
        }
    }

    /// Nothing to release: the claim was not recorded.
    fn forget(mut self) {
        self.claim = None;
    }
}

impl Drop for ClaimHeld {
    fn drop(&mut self) {
        let (Some(claim), Ok(runtime)) = (self.claim.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let source = self.source.clone();
        let role = std::mem::take(&mut self.role);
        runtime.spawn(async move {
            let Some(registry) = source.registry() else {
                return;
            };
            let within = registry.call_timeout();
            match timeout(within, registry.release(&claim)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, claim, role, "an admission claim was not released: if the server recorded it, it counts until it expires");
                }
                Err(_) => {
                    warn!(claim, role, ?within, "no answer to an admission claim's release in time: it is queued (or its connection was being opened) and runs when the server gets to it; if it never does, the claim counts until it expires");
                }
            }
        });
    }
}

/// A warning given, for the `[notify]` hooks: queued without waiting (a full queue drops it,
/// counted; its `session_warned` record keeps it).
fn notify_warned(shared: &Shared, facts: &SessionFacts<'_>, warned: &Warned) {
    let target = shared
        .policy
        .borrow()
        .as_ref()
        .and_then(|policy| policy.gateway.as_ref().map(|g| g.target.clone()))
        .unwrap_or_default();
    let warning = curfew_notify::Warning {
        by: curfew_notify::By::Gateway,
        target,
        rule: warned.rule.clone(),
        role: facts.role.to_owned(),
        database: facts.database.to_owned(),
        application: facts.application.to_owned(),
        pid: i64::from(facts.pid),
        backend_start: None,
        deadline: match &warned.about {
            WarnedOf::Deadline { deadline, .. } => Some(*deadline),
            WarnedOf::NextViolation { .. } => None,
        },
        reason: warned.reason.clone(),
        policy_sha256: None,
        seq: None,
        client: Some(facts.peer.to_string()),
    };
    shared
        .notifier
        .send(warning, || shared.metrics.notify_dropped());
}
