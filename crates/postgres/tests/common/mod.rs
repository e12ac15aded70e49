//! Helpers shared by the integration tests: temporary files, target specs, client sessions.
#![allow(dead_code, unused_imports, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_policy::Session;
use curfew_postgres::ConnectionUrl;
use curfew_postgres::{Connection, TargetSpec};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

pub use curfew_testkit::TempDir;

/// A target spec named "t" for `url`.
pub fn spec(url: &str, password_file: Option<PathBuf>) -> TargetSpec {
    TargetSpec {
        name: "t".to_owned(),
        url: ConnectionUrl::parse(url).unwrap(),
        password_file,
    }
}

/// Connect curfew as `user` to a trust cluster; panics with the error's text on failure.
pub async fn connect_trust(cluster: &curfew_sandbox::Cluster, user: &str) -> Connection {
    let spec = spec(&cluster.url(user, "postgres"), None);
    match curfew_postgres::connect(&spec).await {
        Ok(connected) => connected.connection,
        Err(e) => panic!("connect as {user}: {e}"),
    }
}

/// A plain client session (trust, no TLS), as an application would open it.
pub struct ClientSession {
    pub client: Arc<Client>,
    pub pid: i32,
    pub driver: JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// Open a client session as `user` with `application_name` = `app`.
pub async fn client(port: u16, user: &str, app: &str) -> ClientSession {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={port} user={user} dbname=postgres application_name='{}'",
            app.replace('\\', "\\\\").replace('\'', "\\'")
        ),
        NoTls,
    )
    .await
    .unwrap();
    let driver = tokio::spawn(connection);
    let pid: i32 = simple_value(&client, "select pg_backend_pid()")
        .await
        .parse()
        .unwrap();
    ClientSession {
        client: Arc::new(client),
        pid,
        driver,
    }
}

/// The session with `pid` in a fresh snapshot, if any.
pub async fn find(connection: &mut Connection, pid: i32) -> Option<Session> {
    let snapshot = connection.snapshot(&[], false).await.unwrap();
    snapshot
        .sessions
        .into_iter()
        .find(|s| s.pid == i64::from(pid))
}

/// Poll `check` every 20 ms until it returns true; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll snapshots until the session `pid` is in `state`; returns it. Panics after 5 s.
pub async fn wait_for_state(
    connection: &mut Connection,
    pid: i32,
    state: curfew_policy::SessionState,
) -> Session {
    let start = Instant::now();
    loop {
        if let Some(session) = find(connection, pid).await
            && session.state == state
        {
            return session;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for session {pid} to be {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first column of the first row of `sql`, run with the simple protocol (which, unlike a
/// prepared statement, leaves nothing to close afterwards: closing one is a message that moves
/// the session's state_change again at an unpredictable moment).
pub async fn simple_value(client: &Client, sql: &str) -> String {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap().to_owned()),
            _ => None,
        })
        .unwrap()
}

/// Ending sessions the way the agent does: the production statements (`signal_all`, then
/// `exited` polled until the processes are gone), with a simple poll in place of the agent's
/// schedule.
pub trait Terminate {
    /// End one session if its guard holds.
    async fn terminate(
        &self,
        guard: &curfew_postgres::Guard,
        wait: Duration,
    ) -> Result<curfew_postgres::Outcome, curfew_postgres::PgError>;

    /// End every session whose guard holds, in one statement; outcomes in the guards' order.
    async fn terminate_all(
        &self,
        guards: &[curfew_postgres::Guard],
        wait: Duration,
    ) -> Result<Vec<curfew_postgres::Outcome>, curfew_postgres::PgError>;
}

impl Terminate for Connection {
    async fn terminate(
        &self,
        guard: &curfew_postgres::Guard,
        wait: Duration,
    ) -> Result<curfew_postgres::Outcome, curfew_postgres::PgError> {
        let mut outcomes = self
            .terminate_all(std::slice::from_ref(guard), wait)
            .await?;
        Ok(outcomes.pop().unwrap())
    }

    async fn terminate_all(
        &self,
        guards: &[curfew_postgres::Guard],
        wait: Duration,
    ) -> Result<Vec<curfew_postgres::Outcome>, curfew_postgres::PgError> {
        use curfew_postgres::{Outcome, Signal};
        let signals = self.signal_all(guards).await?;
        assert_eq!(signals.len(), guards.len());
        let mut outcomes: Vec<Option<Outcome>> = vec![None; guards.len()];
        let mut pending = Vec::new();
        for (n, signal) in signals.into_iter().enumerate() {
            match signal {
                Signal::Signalled { at } => pending.push((n, at)),
                Signal::Settled(outcome) => outcomes[n] = Some(outcome),
            }
        }
        let started = Instant::now();
        while !pending.is_empty() {
            let sessions: Vec<_> = pending
                .iter()
                .map(|(n, _)| (guards[*n].pid, guards[*n].backend_start))
                .collect();
            let gone = self.exited(&sessions).await?;
            let mut still = Vec::new();
            for ((n, at), confirmed) in pending.into_iter().zip(gone) {
                match confirmed {
                    Some(confirmed_at) => {
                        outcomes[n] = Some(Outcome::Ended { at, confirmed_at });
                    }
                    None if started.elapsed() >= wait => {
                        outcomes[n] = Some(Outcome::Failed {
                            reason: format!("signalled at {at}, not gone after {wait:?}"),
                            code: None,
                        });
                    }
                    None => still.push((n, at)),
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(outcomes.into_iter().map(Option::unwrap).collect())
    }
}
