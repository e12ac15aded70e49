//! The real [`VerifierSource`]: `curfew.gateway_secret($1)`, the auth function `curfew init`
//! installs, called over one connection as the gateway's own role (the `auth_url`'s user),
//! opened on first use and again after it is lost.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use curfew_postgres::{
    GATEWAY_REGISTER_QUERY, GATEWAY_SECRET_QUERY, TargetSpec, open_as, read_password_file,
};

use crate::registry::{GatewayBackend, RegistrationError, RegistrationFuture, SessionRegistry};

use crate::verifiers::{
    MockSalt, RoleLookup, RoleSecret, StoredSecret, VerifierFuture, VerifierSource,
    VerifierSourceError,
};

/// The application name of the lookup connection, as `pg_stat_activity` shows it.
const APPLICATION_NAME: &str = "curfew gateway (auth)";

/// Fetches verifiers through `curfew.gateway_secret`.
pub struct AuthFunctionSource {
    spec: TargetSpec,
    connection: Mutex<Option<Live>>,
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
        }
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
    fn register<'a>(&'a self, backend: &'a GatewayBackend) -> RegistrationFuture<'a> {
        Box::pin(async move {
            let client = self
                .client()
                .await
                .map_err(|e| RegistrationError::Failed(e.reason))?;
            let upstream_port = i32::from(backend.upstream.port());
            let client_port = i32::from(backend.client.port());
            client
                .query_one(
                    GATEWAY_REGISTER_QUERY,
                    &[
                        &backend.pid,
                        &backend.role,
                        &backend.upstream.ip(),
                        &upstream_port,
                        &backend.client.ip(),
                        &client_port,
                        &backend.gateway_id,
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

impl VerifierSource for AuthFunctionSource {
    fn registry(&self) -> Option<&dyn SessionRegistry> {
        Some(self)
    }

    fn fetch<'a>(&'a self, role: &'a str) -> VerifierFuture<'a> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(GATEWAY_SECRET_QUERY, &[&role])
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
            })
        })
    }
}
