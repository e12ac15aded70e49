//! The real [`VerifierSource`]: `curfew.gateway_secret($1)`, the auth function `curfew init`
//! installs, called over one connection as the gateway's own role (the `auth_url`'s user),
//! opened on first use and again after it is lost.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use curfew_postgres::{GATEWAY_SECRET_QUERY, TargetSpec, open_as, read_password_file};

use crate::verifiers::{
    RoleSecret, StoredSecret, VerifierFuture, VerifierSource, VerifierSourceError,
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
            Some(path) => Some(
                read_password_file(path)
                    .map_err(|e| unavailable(None, e.to_string()))?
                    .0,
            ),
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

impl VerifierSource for AuthFunctionSource {
    fn fetch<'a>(&'a self, role: &'a str) -> VerifierFuture<'a> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(GATEWAY_SECRET_QUERY, &[&role])
                .await
                .map_err(|e| unavailable(e.code().map(|c| c.code().to_owned()), e.to_string()))?;
            let Some(row) = rows.first() else {
                return Ok(RoleSecret::NotServed);
            };
            let kind: Option<String> = row
                .try_get(0)
                .map_err(|e| unavailable(None, e.to_string()))?;
            let verifier: Option<String> = row
                .try_get(1)
                .map_err(|e| unavailable(None, e.to_string()))?;
            Ok(match verifier {
                Some(stored) => RoleSecret::Stored(StoredSecret::new(stored)),
                None => RoleSecret::NotScram {
                    kind: kind.unwrap_or_else(|| "none".to_owned()),
                },
            })
        })
    }
}
