//! SCRAM-SHA-256 with the client: the role's verifier (a mock one for a role the gateway does
//! not serve, failing exactly like a wrong password), SCRAM-SHA-256-PLUS offered only over
//! TLS with the gateway certificate's `tls-server-end-point`, the ClientKey recovered from the
//! proof for the upstream login.

use curfew_scram::{
    AuthFailure, ClientKey, OsNonce, ServerChannelBinding, ServerExchange, Verifier,
    tls_server_end_point,
};
use curfew_wire::{AuthResponse, encode_authentication_sasl, encode_authentication_sasl_continue};
use tracing::{info, warn};

use crate::client_tls::LoadedTls;
use crate::error::{Fatal, SessionError, sqlstate};
use crate::frames::{FrameReader, send_client};
use crate::stream::ClientStream;
use crate::verifiers::{LedgerLock, RoleSecret, VerifierSource};

/// A client that proved it knows the role's password.
pub(crate) struct ClientAuthenticated {
    /// The client's ClientKey, for the upstream login; dropped with the session's login.
    pub(crate) client_key: ClientKey,
    /// The server-final message, sent once the server accepted the login too.
    pub(crate) server_final: String,
    /// The role's verifier, which the server must hold too (checked in the upstream login).
    pub(crate) verifier: Verifier,
    /// The login locks in force on the role, fetched with the verifier: known to the session
    /// only now that the client proved its password.
    pub(crate) locks: Vec<LedgerLock>,
    /// The role's memberships, fetched with the verifier.
    pub(crate) member_of: Vec<String>,
}

/// The channel binding the client leg offers: `-PLUS` only on TLS.
pub(crate) fn channel_binding(tls: Option<&LoadedTls>) -> ServerChannelBinding {
    let Some(loaded) = tls else {
        return ServerChannelBinding::None;
    };
    match tls_server_end_point(&loaded.leaf_der) {
        Ok(hash) => ServerChannelBinding::TlsServerEndPoint(hash),
        Err(e) => {
            // A certificate whose signature algorithm has no defined hash: no -PLUS.
            warn!(error = %e, "the gateway certificate allows no channel binding");
            ServerChannelBinding::None
        }
    }
}

/// Runs SCRAM with the client for `role`. Every failure (wrong password, unknown role, no
/// SCRAM secret, a malformed message) sends the same FATAL 28P01 the server would.
pub(crate) async fn authenticate(
    client: &mut ClientStream,
    reader: &mut FrameReader,
    role: &str,
    binding: ServerChannelBinding,
    source: &dyn VerifierSource,
) -> Result<ClientAuthenticated, SessionError> {
    let lookup = match source.fetch(role).await {
        Ok(lookup) => lookup,
        Err(e) => {
            warn!(role, error = %e, "no verifier: the login is refused");
            let fatal = Fatal::new(
                sqlstate::CONNECTION_FAILURE,
                "curfew gateway cannot check passwords right now",
            );
            send_client(client, &fatal.encode()).await?;
            return Err(SessionError::Refused(fatal));
        }
    };
    let (locks, member_of) = (lookup.locks, lookup.member_of);
    let verifier = match lookup.secret {
        RoleSecret::Stored(secret) => match Verifier::parse(secret.expose()) {
            Ok(verifier) => Some(verifier),
            Err(e) => {
                warn!(role, reason = %e, "the role cannot log in through the gateway");
                None
            }
        },
        RoleSecret::NotScram { kind } => {
            warn!(
                role,
                secret = %kind,
                "the role cannot log in through the gateway: its password is not stored as SCRAM-SHA-256; set password_encryption = scram-sha-256 and set its password again"
            );
            None
        }
        RoleSecret::NotServed => None,
    };
    let verifier = match verifier {
        Some(verifier) => verifier,
        // The salt and count the server computed: stable across restarts and gateways, and
        // the count a real verifier made now has.
        None => match Verifier::mock_with_salt(&lookup.mock.salt_base64, lookup.mock.iterations) {
            Ok(mock) => mock,
            Err(e) => {
                warn!(error = %e, "the auth function's mock salt is unusable: the login is refused");
                let fatal = Fatal::new(
                    sqlstate::CONNECTION_FAILURE,
                    "curfew gateway cannot check passwords right now",
                );
                send_client(client, &fatal.encode()).await?;
                return Err(SessionError::Refused(fatal));
            }
        },
    };
    let failed = |failure: AuthFailure| {
        info!(role, reason = %failure, "authentication failed");
        Fatal::new(AuthFailure::SQLSTATE, failure.client_message(role))
    };
    let kept = verifier.clone();
    let exchange = ServerExchange::new(verifier, binding, &mut OsNonce).map_err(|e| {
        SessionError::Refused(Fatal::new(sqlstate::CONNECTION_FAILURE, e.to_string()))
    })?;
    let names: Vec<&[u8]> = exchange
        .mechanisms()
        .iter()
        .map(|m| m.name().as_bytes())
        .collect();
    let mut out = Vec::new();
    encode_authentication_sasl(&names, &mut out).map_err(SessionError::ClientProtocol)?;
    send_client(client, &out).await?;

    // From here every malformed message (SASL data of length -1, a mechanism name that is
    // not UTF-8, a body that does not parse) and every encoder error ends as the same 28P01
    // as a wrong password: nothing in the failure tells a role apart.
    let malformed = |what: &dyn std::fmt::Display| {
        info!(role, reason = %what, "authentication failed: malformed SASL message");
        Fatal::new(
            AuthFailure::SQLSTATE,
            AuthFailure::MockRole.client_message(role),
        )
    };
    let first = reader.next(client).await?;
    let initial = match first
        .frame()
        .and_then(AuthResponse::from_frame)
        .and_then(|r| r.sasl_initial())
    {
        Ok(initial) => initial,
        Err(e) => return refuse(client, malformed(&e)).await,
    };
    let (Ok(mechanism), Some(data)) = (std::str::from_utf8(initial.mechanism), initial.data) else {
        return refuse(client, malformed(&"no mechanism name or no data")).await;
    };
    let (server_first, awaiting) = match exchange.client_first(mechanism, data) {
        Ok(step) => step,
        Err(failure) => return refuse(client, failed(failure)).await,
    };
    out.clear();
    if let Err(e) = encode_authentication_sasl_continue(server_first.as_bytes(), &mut out) {
        return refuse(client, malformed(&e)).await;
    }
    send_client(client, &out).await?;

    let last = reader.next(client).await?;
    let response = match last.frame().and_then(AuthResponse::from_frame) {
        Ok(response) => response,
        Err(e) => return refuse(client, malformed(&e)).await,
    };
    match awaiting.client_final(response.sasl_response().data) {
        Ok(done) => Ok(ClientAuthenticated {
            client_key: done.client_key,
            server_final: done.server_final,
            verifier: kept,
            locks,
            member_of,
        }),
        Err(failure) => refuse(client, failed(failure)).await,
    }
}

async fn refuse<T>(client: &mut ClientStream, fatal: Fatal) -> Result<T, SessionError> {
    send_client(client, &fatal.encode()).await?;
    Err(SessionError::Refused(fatal))
}
