//! A `curfew verify` canary's session through the curfew gateway: a client like any other,
//! logged in over the gateway's listen address with the canary's SCRAM password, every notice
//! and the error that ended the connection kept as the client received them (the evidence of
//! what the gateway sent).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::secret::Password;

/// A server message (an ErrorResponse or a NoticeResponse) as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its severity (`FATAL`, `ERROR`, `WARNING`).
    pub severity: String,
    /// Its SQLSTATE.
    pub code: String,
    /// Its message.
    pub message: String,
    /// Its DETAIL, if any.
    pub detail: Option<String>,
    /// Its HINT, if any.
    pub hint: Option<String>,
}

impl Received {
    fn from_db(e: &DbError) -> Received {
        Received {
            severity: e.severity().to_owned(),
            code: e.code().code().to_owned(),
            message: e.message().to_owned(),
            detail: e.detail().map(str::to_owned),
            hint: e.hint().map(str::to_owned),
        }
    }
}

/// How a session's connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// With a server error (the gateway's FATAL, or the server's own).
    Error(Received),
    /// Without one: closed, or broken; what the client said.
    Closed(String),
}

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The server (or the gateway) answered with an error.
    Server(Received),
    /// The connection failed.
    Connection(String),
}

/// A canary's session through the gateway (plaintext TCP; see `curfew verify`'s docs).
pub struct GatewaySession {
    client: Client,
    notices: mpsc::UnboundedReceiver<(Received, Instant)>,
    connection: JoinHandle<Ended>,
    ended: Option<Ended>,
}

impl std::fmt::Debug for GatewaySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySession").finish_non_exhaustive()
    }
}

impl Drop for GatewaySession {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl GatewaySession {
    /// Log in through the gateway at `address` as `role` with `password` to `database`,
    /// setting `application`; the error as the client saw it (never with the password).
    pub async fn open(
        address: SocketAddr,
        role: &str,
        password: &Password,
        database: &str,
        application: &str,
    ) -> Result<GatewaySession, RunError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(address.ip().to_string())
            .port(address.port())
            .user(role)
            .password(password.expose())
            .dbname(database)
            .application_name(application)
            .connect_timeout(Duration::from_secs(10))
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, mut connection) = config.connect(NoTls).await.map_err(run_error)?;
        let (tx, notices) = mpsc::unbounded_channel();
        let connection = tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        let _ = tx.send((Received::from_db(&notice), Instant::now()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        return match e.as_db_error() {
                            Some(db) => Ended::Error(Received::from_db(db)),
                            None => Ended::Closed(e.to_string()),
                        };
                    }
                    None => return Ended::Closed("the connection was closed".to_owned()),
                }
            }
        });
        Ok(GatewaySession {
            client,
            notices,
            connection,
            ended: None,
        })
    }

    /// Run `sql` (simple query protocol).
    pub async fn run(&self, sql: &str) -> Result<(), RunError> {
        self.client.batch_execute(sql).await.map_err(run_error)
    }

    /// The notices received so far and not yet taken, each with when it came.
    pub fn take_notices(&mut self) -> Vec<(Received, Instant)> {
        let mut out = Vec::new();
        while let Ok(n) = self.notices.try_recv() {
            out.push(n);
        }
        out
    }

    /// How the connection ended, waiting up to `within`; `None` if it is still open then.
    pub async fn ended(&mut self, within: Duration) -> Option<Ended> {
        if self.ended.is_none() {
            match tokio::time::timeout(within, &mut self.connection).await {
                Ok(Ok(ended)) => self.ended = Some(ended),
                Ok(Err(e)) => self.ended = Some(Ended::Closed(e.to_string())),
                Err(_) => return None,
            }
        }
        self.ended.clone()
    }
}

fn run_error(e: tokio_postgres::Error) -> RunError {
    match e.as_db_error() {
        Some(db) => RunError::Server(Received::from_db(db)),
        None => RunError::Connection(e.to_string()),
    }
}
