//! Canaries for `curfew verify`: a temporary role created for a control test, its session, and
//! its removal.
//!
//! The canary's password is random, lives only in this process, and reaches the server as a
//! SCRAM verifier: the `CREATE ROLE` statement (which `log_statement = ddl` logs) never holds it.
//! The role also expires by itself (`VALID UNTIL`) in case it is not dropped.

use std::io::Read as _;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::connect::{Connection, open_as};
use crate::error::PgError;
use crate::secret::Password;
use crate::sql::canary::{
    CLOCK, END_SESSIONS, OWN_SESSION, SESSION_EXISTS, SLEEP, WHAT_SESSION, create_canary_sql,
    decode_own_session, drop_canary_sql,
};
use crate::sql::scalar;
use crate::target::TargetSpec;

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Password {
    /// A fresh random password (for a canary role).
    pub fn random() -> std::io::Result<Password> {
        random_hex(24).map(Password)
    }
}

impl Connection {
    /// Create a canary role that can log in until `valid_until`, with a SCRAM verifier of
    /// `password`, and grant it `groups`; all or nothing. Safe to call from concurrent tasks.
    pub async fn create_canary(
        &self,
        role: &str,
        password: &Password,
        groups: &[String],
        valid_until: Timestamp,
    ) -> Result<(), PgError> {
        let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
        let sql = create_canary_sql(role, &verifier, groups, valid_until);
        // One simple query: PostgreSQL runs its statements as one implicit transaction, and
        // no other statement on this shared connection can land in between (an explicit
        // BEGIN would let concurrent tests' queries run inside it, or in its failure).
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| PgError::query(&self.target, "creating a canary role", e))
    }

    /// End whatever sessions `role` still has and drop it.
    pub async fn drop_canary(&self, role: &str) -> Result<(), PgError> {
        self.client
            .execute(END_SESSIONS, &[&role])
            .await
            .map_err(|e| PgError::query(&self.target, "ending a canary's sessions", e))?;
        self.client
            .batch_execute(&drop_canary_sql(role))
            .await
            .map_err(|e| PgError::query(&self.target, "dropping a canary role", e))
    }

    /// Whether the session `(pid, backend_start)` still exists.
    pub async fn session_exists(
        &self,
        pid: i32,
        backend_start: Timestamp,
    ) -> Result<bool, PgError> {
        self.client
            .query_opt(SESSION_EXISTS, &[&pid, &backend_start])
            .await
            .map(|row| row.is_some())
            .map_err(|e| PgError::query(&self.target, "looking for a canary session", e))
    }

    /// The server's clock.
    pub async fn server_now(&self) -> Result<Timestamp, PgError> {
        self.client
            .query_one(CLOCK, &[])
            .await
            .map_err(|e| PgError::query(&self.target, "reading the server clock", e))
            .and_then(|row| scalar(&row, &self.target, "reading the server clock"))
    }
}

/// A session logged in as a canary role.
pub struct CanarySession {
    client: Arc<Client>,
    driver: JoinHandle<()>,
    /// Its backend's process id.
    pub pid: i32,
    /// When its backend started (with `pid`, its identity).
    pub backend_start: Timestamp,
    /// Its client address as the server sees it (None: a Unix socket).
    pub client_addr: Option<std::net::IpAddr>,
}

impl Drop for CanarySession {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl std::fmt::Debug for CanarySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanarySession")
            .field("pid", &self.pid)
            .finish()
    }
}

impl CanarySession {
    /// Log in to `spec`'s server as `role` with `password`, to `database` (None: the target's),
    /// setting `application`.
    pub async fn open(
        spec: &TargetSpec,
        role: &str,
        password: &Password,
        database: Option<&str>,
        application: &str,
    ) -> Result<CanarySession, PgError> {
        let mut spec = spec.clone();
        spec.url.user = role.to_owned();
        if let Some(db) = database {
            spec.url.dbname = db.to_owned();
        }
        let (client, driver) = open_as(&spec, Some(password), application).await?;
        let row = client
            .query_one(OWN_SESSION, &[])
            .await
            .map_err(|e| PgError::query(&spec.name, WHAT_SESSION, e))?;
        let own = decode_own_session(&row, &spec.name)?;
        Ok(CanarySession {
            client: Arc::new(client),
            driver,
            pid: own.pid,
            backend_start: own.backend_start,
            client_addr: own.client_addr,
        })
    }

    /// Run statements as the canary; the error text (as the client saw it) on failure.
    pub async fn run(&self, sql: &str) -> Result<(), String> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| describe(&e))
    }

    /// Start `SELECT pg_sleep(seconds)` and return without waiting; the task ends with the
    /// statement's outcome.
    pub fn sleep(&self, seconds: f64) -> JoinHandle<Result<(), String>> {
        let client = self.client.clone();
        tokio::spawn(async move {
            client
                .execute(SLEEP, &[&seconds])
                .await
                .map(drop)
                .map_err(|e| describe(&e))
        })
    }
}

/// An error as a client sees it: the server's severity and message, or what the driver said.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}
