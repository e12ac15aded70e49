//! What the enforcement suites share: policies parsed from text, a deny window open now, an
//! incident lock as the agent applies it, a session whose notices are collected, and waits on
//! the audit log and the server's sessions.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_policy::{Policy, parse_policy};
use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::Harness;

/// The policy in `text` (a policy file's contents).
///
/// # Panics
/// When the text is not a valid policy.
pub fn policy(text: &str) -> Arc<Policy> {
    Arc::new(
        parse_policy("test.toml", text, jiff::tz::db())
            .expect("the policy")
            .policy,
    )
}

/// A rule `name` with a deny window from this UTC hour to two hours later (open now), scoped
/// by `scope` (a line such as `roles = ["bob"]`; empty for every role).
pub fn deny_now(name: &str, scope: &str) -> Arc<Policy> {
    let hour = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .hour();
    let window = format!("{:02}:00-{:02}:00", hour, (hour + 2) % 24);
    policy(&format!(
        "[[rule]]\nname = \"{name}\"\ntimezone = \"UTC\"\n{scope}\ndeny = [\"{window}\"]\n"
    ))
}

/// What the agent does for an incident lock until 2099: the ledger's row, its record that
/// curfew disabled the login, and the NOLOGIN itself (as the superuser: the ledger's functions
/// need a leading agent's fence). Needs the ledger (`Setup::auth_function`).
pub fn lock_incident(harness: &Harness, role: &str, reason: &str) {
    harness
        .cluster
        .psql(&format!(
            "INSERT INTO curfew.lock (role_oid, role_name, kind, reason, created_by, expires_at)
               SELECT oid, rolname, 'incident', '{reason}', 'test', '2099-01-01 12:00+00'
               FROM pg_roles WHERE rolname = '{role}';
             INSERT INTO curfew.disabled_login (role_oid, role_name)
               SELECT oid, rolname FROM pg_roles WHERE rolname = '{role}';
             ALTER ROLE {role} NOLOGIN;"
        ))
        .expect("the incident lock");
}

/// The audit log at `path` once it holds a `session_terminated` record: its whole text and
/// that record's line.
///
/// # Panics
/// When no such record comes within the wait of [`audit_text_when`].
pub async fn terminated_record(path: &Path) -> (String, String) {
    let text = audit_text_when(path, |text| text.contains("\"session_terminated\"")).await;
    let line = text
        .lines()
        .find(|line| line.contains("\"session_terminated\""))
        .unwrap_or_else(|| panic!("no session_terminated in {text}"))
        .to_owned();
    (text, line)
}

/// The audit log at `path` once `done` holds for its text, or after 20 s (the records are
/// written a moment after the event: after the relay's linger and the writer's fsync).
pub async fn audit_text_when(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).expect("the audit log");
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `count` (a query answering one number) answers `expected` on the harness's
/// server: a side effect the gateway makes after the client has its answer. 10 s at most.
pub async fn until_count_is(harness: &Harness, count: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = harness.cluster.psql(count).expect(count);
        if answer.trim() == expected.to_string() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count}: {answer}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until the server has no session of `role` (a closed client's backend exits a moment
/// later), at most `within`; how long it took.
pub async fn wait_for_no_sessions(harness: &Harness, role: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'");
    loop {
        let out = harness.cluster.psql(&sql).expect("count");
        if out.trim() == "0" {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{role}'s sessions stay after {within:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plaintext session through the gateway whose notices are collected as they come.
pub struct Watched {
    /// The client.
    pub client: Client,
    /// Each notice and when it came.
    pub notices: mpsc::UnboundedReceiver<(DbError, Instant)>,
    /// The connection: how it ended (`None` for a clean close).
    pub connection: JoinHandle<Option<tokio_postgres::Error>>,
}

impl Harness {
    /// Logs `user` in through the gateway without TLS and collects the session's notices.
    pub async fn watched(&self, user: &str, password: &str) -> Watched {
        let mut config = self.config(user, password);
        config.ssl_mode(SslMode::Disable);
        watched_with(&config).await
    }
}

/// Logs in with `config` (without TLS) and collects the session's notices.
///
/// # Panics
/// When the login fails.
pub async fn watched_with(config: &tokio_postgres::Config) -> Watched {
    let (client, mut connection) = config.connect(NoTls).await.expect("login");
    let (tx, notices) = mpsc::unbounded_channel();
    let connection = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    let _ = tx.send((notice, Instant::now()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(e),
                None => return None,
            }
        }
    });
    Watched {
        client,
        notices,
        connection,
    }
}

/// The SQLSTATE `sql` failed with.
///
/// # Panics
/// When `sql` succeeds, or fails without a server error.
pub async fn fails(client: &Client, sql: &str) -> String {
    let error = client
        .simple_query(sql)
        .await
        .expect_err("the statement fails");
    db(&error).code().code().to_owned()
}

/// The next notice within a few seconds: its severity, SQLSTATE and message.
pub async fn next_notice(session: &mut Watched) -> Option<String> {
    let (notice, _) = tokio::time::timeout(Duration::from_secs(10), session.notices.recv())
        .await
        .ok()
        .flatten()?;
    Some(format!(
        "{} {} {}",
        notice.severity(),
        notice.code().code(),
        notice.message()
    ))
}

impl Harness {}

/// The error `connection` ended with, within `within`.
///
/// # Panics
/// When it ended cleanly or not in time.
pub async fn ended_with(
    connection: JoinHandle<Option<tokio_postgres::Error>>,
    within: Duration,
) -> tokio_postgres::Error {
    match tokio::time::timeout(within, connection).await {
        Ok(Ok(Some(e))) => e,
        Ok(Ok(None)) => panic!("the connection closed without an error"),
        Ok(Err(e)) => panic!("the connection task: {e}"),
        Err(_) => panic!("the session was not ended within {within:?}"),
    }
}

/// The server error in `error`, as the client received it.
///
/// # Panics
/// When it is not one.
pub fn db(error: &tokio_postgres::Error) -> &DbError {
    error.as_db_error().unwrap_or_else(|| panic!("{error:?}"))
}

impl Watched {
    /// Asserts that the session still answers and its connection has not ended.
    pub async fn lives(&self) {
        self.client
            .simple_query("SELECT 1")
            .await
            .expect("the session lives");
        assert!(!self.connection.is_finished());
    }
}

/// A login of `user` refused alike in plaintext and over TLS: the SQLSTATE and message.
///
/// # Panics
/// When either login succeeds or the two refusals differ.
pub async fn refused_alike(harness: &Harness, user: &str, password: &str) -> (String, String) {
    let plain = super::login_error(harness.plain(user, password).await);
    let tls = super::login_error(
        harness
            .tls(
                user,
                password,
                tokio_postgres::config::ChannelBinding::Prefer,
            )
            .await,
    );
    assert_eq!(plain, tls, "{user}: plaintext and TLS refusals differ");
    plain
}
