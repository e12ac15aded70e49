//! The real [`VerifierSource`]: `curfew.gateway_secret($1)`, the auth function `curfew init`
//! installs, called over one connection as the gateway's own role (the `auth_url`'s user),
//! opened on first use and again after it is lost.
//!
//! Every call is sent as one message (`query_typed`: parse, bind and execute with the
//! parameters' types given, no separate prepare): one round trip, and a call whose answer the
//! gateway stops waiting for is still whole on the wire, so a release queued behind a slow
//! claim does run.

use std::net::IpAddr;
use std::sync::Arc;

use curfew_policy::RoleSession;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use curfew_postgres::{
    GATEWAY_CLAIM_QUERY, GATEWAY_REGISTER_QUERY, GATEWAY_RELEASE_QUERY, GATEWAY_SECRET_QUERY,
    GATEWAY_VIOLATION_QUERY, TargetSpec, open_as, read_password_file,
};

use crate::registry::{
    AdmissionClaim, ClaimFuture, CountFuture, GatewayBackend, PlaceWanted, REGISTRY_CALL_TIMEOUT,
    RegistrationError, RegistrationFuture, SessionRegistry, SharedViolation,
};

use crate::verifiers::{
    LedgerLock, LockKind, MockSalt, RoleLookup, RoleSecret, StoredSecret, VerifierFuture,
    VerifierSource, VerifierSourceError,
};

/// The application name of the lookup connection, as `pg_stat_activity` shows it.
const APPLICATION_NAME: &str = "curfew gateway (auth)";

/// Fetches verifiers through `curfew.gateway_secret`.
pub struct AuthFunctionSource {
    spec: TargetSpec,
    connection: Mutex<Option<Live>>,
    /// How long a registry call is waited for ([`SessionRegistry::call_timeout`]).
    call_timeout: std::time::Duration,
}

struct Live {
    client: Arc<Client>,
    driver: JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl std::fmt::Debug for AuthFunctionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFunctionSource")
            .field("url", &self.spec.url.to_string())
            .finish_non_exhaustive()
    }
}

impl AuthFunctionSource {
    /// A source connecting with `spec` (the `auth_url` and its password file); nothing is
    /// opened until the first lookup.
    pub fn new(spec: TargetSpec) -> AuthFunctionSource {
        AuthFunctionSource {
            spec,
            connection: Mutex::new(None),
            call_timeout: REGISTRY_CALL_TIMEOUT,
        }
    }

    /// The same source, waiting `within` for each registry call instead of
    /// [`REGISTRY_CALL_TIMEOUT`] (tests on a loaded machine, where a slow answer is not what
    /// they test).
    #[must_use]
    pub fn with_call_timeout(mut self, within: std::time::Duration) -> AuthFunctionSource {
        self.call_timeout = within;
        self
    }

    /// The open connection, or a new one. Lookups share it (tokio-postgres pipelines them);
    /// the lock is held only to pick or replace it.
    async fn client(&self) -> Result<Arc<Client>, VerifierSourceError> {
        let mut held = self.connection.lock().await;
        if let Some(live) = held.as_ref().filter(|l| !l.client.is_closed()) {
            return Ok(live.client.clone());
        }
        let password = match &self.spec.password_file {
            Some(path) => {
                let (password, loose) =
                    read_password_file(path).map_err(|e| unavailable(None, e.to_string()))?;
                // Said at each (re)connection, as the agent does: rare, and loud enough.
                if let Some(loose) = loose {
                    tracing::warn!("{loose}");
                }
                Some(password)
            }
            None => None,
        };
        let (client, driver) = open_as(&self.spec, password.as_ref(), APPLICATION_NAME)
            .await
            .map_err(|e| unavailable(None, e.to_string()))?;
        let client = Arc::new(client);
        *held = Some(Live {
            client: client.clone(),
            driver,
        });
        Ok(client)
    }
}

fn unavailable(code: Option<String>, reason: String) -> VerifierSourceError {
    VerifierSourceError { code, reason }
}

impl SessionRegistry for AuthFunctionSource {
    fn call_timeout(&self) -> std::time::Duration {
        self.call_timeout
    }

    fn claim<'a>(&'a self, login: &'a PlaceWanted<'a>) -> ClaimFuture<'a> {
        Box::pin(self.claim_place(login))
    }

    fn release<'a>(&'a self, claim: &'a str) -> RegistrationFuture<'a> {
        Box::pin(async move {
            let client = self
                .client()
                .await
                .map_err(|e| RegistrationError::NotSent(e.reason))?;
            client
                .query_typed_one(GATEWAY_RELEASE_QUERY, &[(&claim, Type::TEXT)])
                .await
                .map(drop)
                .map_err(refused_or_failed)
        })
    }

    fn count_violation<'a>(&'a self, violation: &'a SharedViolation) -> CountFuture<'a> {
        Box::pin(async move {
            let client = self
                .client()
                .await
                .map_err(|e| RegistrationError::NotSent(e.reason))?;
            let row = client
                .query_typed_one(
                    GATEWAY_VIOLATION_QUERY,
                    &[
                        (&violation.role, Type::TEXT),
                        (&violation.rule, Type::TEXT),
                        (&violation.sqlstate, Type::TEXT),
                        (&violation.within_seconds, Type::INT4),
                        (&violation.gateway_id, Type::TEXT),
                    ],
                )
                .await
                .map_err(refused_or_failed)?;
            let codes: Vec<String> = row
                .try_get(0)
                .map_err(|e| RegistrationError::Failed(e.to_string()))?;
            Ok(Some(codes))
        })
    }

    fn register<'a>(&'a self, backend: &'a GatewayBackend) -> RegistrationFuture<'a> {
        Box::pin(async move {
            let client = self
                .client()
                .await
                .map_err(|e| RegistrationError::NotSent(e.reason))?;
            let upstream_port = i32::from(backend.upstream.port());
            let client_port = i32::from(backend.client.port());
            let (upstream_ip, client_ip) = (backend.upstream.ip(), backend.client.ip());
            client
                .query_typed_one(
                    GATEWAY_REGISTER_QUERY,
                    &[
                        (&backend.pid, Type::INT4),
                        (&backend.role, Type::TEXT),
                        (&upstream_ip, Type::INET),
                        (&upstream_port, Type::INT4),
                        (&client_ip, Type::INET),
                        (&client_port, Type::INT4),
                        (&backend.gateway_id, Type::TEXT),
                    ],
                )
                .await
                .map(drop)
                .map_err(|e| match e.as_db_error() {
                    Some(db) => RegistrationError::Refused {
                        code: db.code().code().to_owned(),
                        reason: db.message().to_owned(),
                    },
                    None => RegistrationError::Failed(e.to_string()),
                })
        })
    }
}

impl AuthFunctionSource {
    async fn claim_place(
        &self,
        login: &PlaceWanted<'_>,
    ) -> Result<Option<AdmissionClaim>, RegistrationError> {
        let client = self
            .client()
            .await
            .map_err(|e| RegistrationError::NotSent(e.reason))?;
        let row = client
            .query_typed_one(
                GATEWAY_CLAIM_QUERY,
                &[
                    (&login.role, Type::TEXT),
                    (&login.database, Type::TEXT),
                    (&login.application, Type::TEXT),
                    (&login.client_addr, Type::INET),
                    (&login.claim, Type::TEXT),
                ],
            )
            .await
            .map_err(|e| match e.code() {
                // The function this gateway calls is not installed: a curfew upgraded
                // without `curfew init`, or none at all.
                Some(&SqlState::UNDEFINED_FUNCTION) => RegistrationError::Refused {
                    code: SqlState::UNDEFINED_FUNCTION.code().to_owned(),
                    reason: "the server has no curfew.claim_gateway_admission taking the login's database, application, address and claim id (installed by an earlier curfew, or not at all): run curfew init again for the gateway's target".to_owned(),
                },
                _ => refused_or_failed(e),
            })?;
        let failed = |e: tokio_postgres::Error| RegistrationError::Failed(e.to_string());
        let claim: Option<String> = row.try_get(0).map_err(failed)?;
        let live: i32 = row.try_get(1).map_err(failed)?;
        let databases: Vec<String> = row.try_get(2).map_err(failed)?;
        let applications: Vec<String> = row.try_get(3).map_err(failed)?;
        let addresses: Vec<Option<IpAddr>> = row.try_get(4).map_err(failed)?;
        let listed = databases.len();
        if usize::try_from(live).ok() != Some(listed)
            || applications.len() != listed
            || addresses.len() != listed
        {
            return Err(RegistrationError::Failed(format!(
                "curfew.claim_gateway_admission counted {live} sessions and listed {listed}, {} and {}: not the function curfew init installs",
                applications.len(),
                addresses.len()
            )));
        }
        let others = databases
            .into_iter()
            .zip(applications)
            .zip(addresses)
            .map(|((database, application), addr)| RoleSession {
                database,
                application,
                client_addr: addr.into(),
            })
            .collect();
        Ok(Some(AdmissionClaim { claim, others }))
    }
}

fn refused_or_failed(e: tokio_postgres::Error) -> RegistrationError {
    match e.as_db_error() {
        Some(db) => RegistrationError::Refused {
            code: db.code().code().to_owned(),
            reason: db.message().to_owned(),
        },
        None => RegistrationError::Failed(e.to_string()),
    }
}

impl VerifierSource for AuthFunctionSource {
    fn registry(&self) -> Option<&dyn SessionRegistry> {
        Some(self)
    }

    fn fetch<'a>(&'a self, role: &'a str) -> VerifierFuture<'a> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query_typed(GATEWAY_SECRET_QUERY, &[(&role, Type::TEXT)])
                .await
                .map_err(|e| unavailable(e.code().map(|c| c.code().to_owned()), e.to_string()))?;
            // One row for every role; none means the function is not the one curfew
            // installs (or its mock key is gone): the same failure whoever logs in.
            let Some(row) = rows.first() else {
                return Err(unavailable(
                    None,
                    "curfew.gateway_secret returned no row: run curfew init again".to_owned(),
                ));
            };
            let column = |e: tokio_postgres::Error| unavailable(None, e.to_string());
            let kind: Option<String> = row.try_get(0).map_err(column)?;
            let verifier: Option<String> = row.try_get(1).map_err(column)?;
            let salt_base64: Option<String> = row.try_get(2).map_err(column)?;
            let iterations: Option<i32> = row.try_get(3).map_err(column)?;
            let (Some(salt_base64), Some(iterations)) =
                (salt_base64, iterations.and_then(|n| u32::try_from(n).ok()))
            else {
                return Err(unavailable(
                    None,
                    "curfew.gateway_secret returned no mock salt or iteration count".to_owned(),
                ));
            };
            let locks = decode_locks(row).map_err(|reason| unavailable(None, reason))?;
            let member_of: Option<Vec<String>> = row.try_get(8).map_err(column)?;
            let secret = match (kind.as_deref(), verifier) {
                (_, Some(stored)) => RoleSecret::Stored(StoredSecret::new(stored)),
                (Some("mock") | None, None) => RoleSecret::NotServed,
                (Some(kind), None) => RoleSecret::NotScram {
                    kind: kind.to_owned(),
                },
            };
            Ok(RoleLookup {
                secret,
                mock: MockSalt {
                    salt_base64,
                    iterations,
                },
                locks,
                member_of: member_of.unwrap_or_default(),
            })
        })
    }
}

/// The locks in columns 4 to 7 (parallel arrays: kind, rule, reason, expiry in Unix
/// milliseconds); NULL arrays (a role not served) are no locks.
fn decode_locks(row: &tokio_postgres::Row) -> Result<Vec<LedgerLock>, String> {
    let column = |e: tokio_postgres::Error| e.to_string();
    let kinds: Option<Vec<Option<String>>> = row.try_get(4).map_err(column)?;
    let rules: Option<Vec<Option<String>>> = row.try_get(5).map_err(column)?;
    let reasons: Option<Vec<Option<String>>> = row.try_get(6).map_err(column)?;
    let until: Option<Vec<Option<i64>>> = row.try_get(7).map_err(column)?;
    let kinds = kinds.unwrap_or_default();
    let (rules, reasons, until) = (
        rules.unwrap_or_default(),
        reasons.unwrap_or_default(),
        until.unwrap_or_default(),
    );
    if rules.len() != kinds.len() || reasons.len() != kinds.len() || until.len() != kinds.len() {
        return Err("curfew.gateway_secret returned lock arrays of different lengths".to_owned());
    }
    kinds
        .into_iter()
        .zip(rules)
        .zip(reasons)
        .zip(until)
        .map(|(((kind, rule), reason), until)| {
            let kind = match kind.as_deref() {
                Some("incident") => LockKind::Incident,
                Some("window") => LockKind::Window,
                other => {
                    return Err(format!(
                        "curfew.gateway_secret returned lock kind {other:?}"
                    ));
                }
            };
            let until = until
                .map(|ms| {
                    jiff::Timestamp::from_millisecond(ms)
                        .map_err(|e| format!("a lock's expiry out of range: {e}"))
                })
                .transpose()?;
            Ok(LedgerLock {
                kind,
                rule,
                reason: reason.unwrap_or_default(),
                until,
            })
        })
        .collect()
}
