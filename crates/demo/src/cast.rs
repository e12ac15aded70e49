//! The demo's cast: roles of the three-role pattern plus humans, the built-in policy, and the
//! sessions a realistic server would have, each with what the policy should do to it and the
//! way it connects (the humans through the gateway, the application and the backup directly).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::DemoError;
use crate::gateway::GatewayFiles;
use crate::secrets::Passwords;

/// Roles, schema and grants, created as the superuser.
pub(super) const SETUP_SQL: &str = "
CREATE ROLE curfew_agent LOGIN;
GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
CREATE ROLE curfew_gateway LOGIN;
CREATE ROLE appowner NOLOGIN;
CREATE SCHEMA app AUTHORIZATION appowner;
CREATE TABLE app.orders (id int PRIMARY KEY, status text NOT NULL);
INSERT INTO app.orders SELECT g, 'open' FROM generate_series(1, 1000) g;
ALTER TABLE app.orders OWNER TO appowner;
CREATE ROLE appuser LOGIN;
GRANT USAGE ON SCHEMA app TO appuser;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.orders TO appuser;
CREATE ROLE backupuser LOGIN;
GRANT USAGE ON SCHEMA app TO backupuser;
GRANT SELECT ON app.orders TO backupuser;
CREATE ROLE humans NOLOGIN;
GRANT USAGE ON SCHEMA app TO humans;
GRANT SELECT, UPDATE ON app.orders TO humans;
CREATE ROLE analyst_kim LOGIN IN ROLE humans;
CREATE ROLE analyst_lee LOGIN IN ROLE humans;
CREATE ROLE ops_ann LOGIN IN ROLE humans;
";

/// The login roles, each given a password for this run.
pub(super) const LOGIN_ROLES: &[&str] = &[
    "curfew_agent",
    "curfew_gateway",
    "appuser",
    "backupuser",
    "analyst_kim",
    "analyst_lee",
    "ops_ann",
];

/// Where the policy's connections go and the files they use.
pub(super) struct PolicySettings<'a> {
    /// The cluster's port (TCP on 127.0.0.1).
    pub(super) port: u16,
    /// The agent's password file.
    pub(super) agent_password_file: &'a std::path::Path,
    /// Where the gateway listens.
    pub(super) gateway: SocketAddr,
    /// The gateway's certificate and key.
    pub(super) files: &'a GatewayFiles,
}

/// The demo's policy: the example policy's rules with fuses short enough to watch, and a
/// gateway for the humans (TLS required, serving the members of `humans` only, fetching
/// verifiers as its own role `curfew_gateway`).
pub(super) fn policy(settings: &PolicySettings<'_>) -> String {
    let PolicySettings { port, gateway, .. } = *settings;
    let password_file = toml_string(&settings.agent_password_file.to_string_lossy());
    let tls_cert = toml_string(&settings.files.cert.to_string_lossy());
    let tls_key = toml_string(&settings.files.key.to_string_lossy());
    format!(
        r#"# curfew demo policy: short limits so everything happens within a few seconds.
[agent]
interval = "1s"

[[target]]
name = "demo"
url = "postgresql://curfew_agent@127.0.0.1:{port}/postgres?sslmode=disable"
password_file = {password_file}

[gateway]
listen = "{gateway}"
target = "demo"
tls_cert = {tls_cert}
tls_key = {tls_key}
require_tls = true
serve_members_of = "humans"
auth_url = "postgresql://curfew_gateway@127.0.0.1:{port}/postgres?sslmode=disable"

[[exempt]]
roles = ["postgres"]

[[exempt]]
roles = ["backupuser"]
applications = ["pg_dump"]

[[rule]]
name = "inactivity"
description = "Interactive sessions idle for 6 seconds are ended."
idle = "6s"
warn = "2s"
member_of = ["humans"]

[[rule]]
name = "abandoned-transaction"
description = "A transaction left open and idle for 3 seconds is ended."
idle_in_transaction = "3s"
member_of = ["humans"]

[[rule]]
name = "session-lifetime"
description = "No human session lasts longer than 10 seconds."
lifetime = "10s"
member_of = ["humans"]

[[rule]]
name = "one-session-each"
description = "An analyst holds at most one session; the newest beyond that are ended."
max_sessions = 1
roles = ["analyst_*"]

[[rule]]
name = "app-stuck-transaction"
description = "The application never needs a transaction idle for 30 seconds."
idle_in_transaction = "30s"
roles = ["appuser"]
"#
    )
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// How a session reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// To the server's port (SCRAM over loopback, no TLS).
    Direct,
    /// Through the gateway (TLS verified as `sslmode=verify-full`, SCRAM with
    /// `channel_binding=require`).
    Gateway,
}

impl Route {
    /// As the narration names it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Gateway => "gateway",
        }
    }
}

/// Where sessions connect and how they log in.
pub(super) struct Doors {
    /// The server's host and port.
    pub(super) server: (String, u16),
    /// The gateway's address.
    pub(super) gateway: SocketAddr,
    /// TLS towards the gateway, trusting the demo's CA.
    pub(super) gateway_tls: MakeRustlsConnect,
    /// Every login role's password.
    pub(super) passwords: Passwords,
}

/// A part in the cast: who, with what application, what the policy should do to it, and what
/// it runs first.
pub(super) struct Part {
    /// What it is, for people: "idle in psql".
    pub(super) label: &'static str,
    pub(super) role: &'static str,
    pub(super) application: &'static str,
    /// The rule expected to end it, or None if it must survive.
    pub(super) expected: Option<&'static str>,
    /// Statements run once connected.
    pub(super) setup: &'static str,
}

/// One demo session and what should become of it.
pub(super) struct Actor {
    /// What it is, for people: "analyst_kim, idle in psql".
    pub(super) label: &'static str,
    pub(super) role: &'static str,
    /// The rule expected to end it, or None if it must survive.
    pub(super) expected: Option<&'static str>,
    /// How it reaches the server.
    pub(super) route: Route,
    /// The client's address as the gateway registered it in `curfew.sessions` at login (a
    /// record no client can write); `None` for a session the registry does not list as the
    /// gateway's. Filled in by [`read_paths`].
    pub(super) client_addr: Option<String>,
    pub(super) pid: i32,
    pub(super) client: Arc<tokio_postgres::Client>,
    /// Resolves with what the client saw when its connection ended.
    ended: Option<oneshot::Receiver<(Instant, String)>>,
    /// The statement it is running in the background, if any.
    pub(super) running: Option<JoinHandle<Result<(), tokio_postgres::Error>>>,
    /// When and how the client saw its connection end.
    pub(super) saw: Option<(Instant, String)>,
    /// The notices (warnings) the client received before, as its library reported them.
    pub(super) notices: Arc<Mutex<Vec<String>>>,
}

impl Actor {
    /// Whether the client has seen its connection end (and what it saw).
    pub(super) fn check_ended(&mut self) -> bool {
        if self.saw.is_some() {
            return true;
        }
        if let Some(rx) = &mut self.ended
            && let Ok(saw) = rx.try_recv()
        {
            self.saw = Some(saw);
            self.ended = None;
        }
        self.saw.is_some()
    }

    /// Whether it reached the server the way it was meant to: the registry lists a session
    /// through the gateway, with its client's address, and no direct one.
    pub(super) fn came_as_meant(&self) -> bool {
        self.client_addr.is_some() == (self.route == Route::Gateway)
    }
}

/// What a client library received from the server (or the gateway): severity, SQLSTATE,
/// message and any hint.
pub(super) fn told(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => described(db),
        None => error.to_string(),
    }
}

/// An error or notice as a client library reports it.
fn described(db: &tokio_postgres::error::DbError) -> String {
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(hint) = db.hint() {
        text.push_str(&format!(" (HINT: {hint})"));
    }
    text
}

/// Open a session for `part` by `route`, and run its setup.
pub(super) async fn open(doors: &Doors, route: Route, part: Part) -> Result<Actor, DemoError> {
    let Part {
        label,
        role,
        application,
        expected,
        setup,
    } = part;
    let failed = |what: String| move |source| DemoError::Session { what, source };
    let mut config = tokio_postgres::Config::new();
    config
        .user(role)
        .dbname("postgres")
        .application_name(application)
        .connect_timeout(Duration::from_secs(10));
    if let Some(password) = doors.passwords.of(role) {
        config.password(password);
    }
    let notices = Arc::new(Mutex::new(Vec::new()));
    let ended = match route {
        Route::Direct => {
            config
                .host(&doors.server.0)
                .port(doors.server.1)
                .ssl_mode(SslMode::Disable);
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed(format!("connecting as {role}")))?;
            (client, watch_end(connection, notices.clone()))
        }
        Route::Gateway => {
            config
                .host(doors.gateway.ip().to_string())
                .port(doors.gateway.port())
                .ssl_mode(SslMode::Require)
                .channel_binding(ChannelBinding::Require);
            let (client, connection) = config
                .connect(doors.gateway_tls.clone())
                .await
                .map_err(failed(format!("connecting as {role} through the gateway")))?;
            (client, watch_end(connection, notices.clone()))
        }
    };
    let (client, ended) = ended;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .try_get(0)?;
    if !setup.is_empty() {
        client
            .batch_execute(setup)
            .await
            .map_err(failed(format!("preparing the {label} session")))?;
    }
    Ok(Actor {
        label,
        role,
        expected,
        route,
        client_addr: None,
        pid,
        client: Arc::new(client),
        ended: Some(ended),
        running: None,
        saw: None,
        notices,
    })
}

/// Drives a connection, keeping the notices it receives in `notices` (as a client library
/// hands them to the application: at once, whatever the user is doing); the receiver
/// resolves with when it ended and what the client saw.
fn watch_end<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notices: Arc<Mutex<Vec<String>>>,
) -> oneshot::Receiver<(Instant, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let what = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notice(notice))) => notices
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(described(&notice)),
                Some(Ok(_)) => {}
                Some(Err(e)) => break told(&e),
                None => break "connection closed".to_owned(),
            }
        };
        let _ = tx.send((Instant::now(), what));
    });
    rx
}

/// Start a long statement on the actor's session in the background.
pub(super) fn run_in_background(actor: &mut Actor, sql: &'static str) {
    let client = actor.client.clone();
    actor.running = Some(tokio::spawn(async move { client.batch_execute(sql).await }));
}

/// Fill in each actor's path from the session registry (`curfew.sessions`, read as the
/// superuser): the gateway registers the sessions it logged in, with the client behind them. A
/// client-settable value (`application_name`, a session setting) would prove nothing.
pub(super) fn read_paths(
    cluster: &curfew_sandbox::Cluster,
    actors: &mut [Actor],
) -> Result<(), DemoError> {
    let listed = cluster.psql(
        "SELECT pid::text || ' ' || host(client_addr) FROM curfew.sessions WHERE via_gateway",
    )?;
    let registered: std::collections::HashMap<i32, String> = listed
        .lines()
        .filter_map(|line| {
            let (pid, addr) = line.split_once(' ')?;
            Some((pid.parse().ok()?, addr.to_owned()))
        })
        .collect();
    for actor in actors {
        actor.client_addr = registered.get(&actor.pid).cloned();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string("/tmp/a b"), "\"/tmp/a b\"");
        assert_eq!(toml_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000Ad\"");
    }

    #[test]
    fn the_demo_policy_loads_with_its_gateway() {
        let files = GatewayFiles {
            ca: "/d/ca.pem".into(),
            cert: "/d/gw \"1\".crt".into(),
            key: "/d/gw.key".into(),
        };
        let text = policy(&PolicySettings {
            port: 5433,
            agent_password_file: std::path::Path::new("/d/agent.pw"),
            gateway: "127.0.0.1:6543".parse().unwrap(),
            files: &files,
        });
        let loaded = curfew_policy::LoadedPolicy::from_bytes_with(
            "demo.toml",
            text.into_bytes(),
            Some(&[&curfew_postgres::POSTGRES_URLS]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let gateway = loaded.policy.gateway.as_ref().unwrap();
        assert_eq!(gateway.own_role(), Some("curfew_gateway"));
        assert_eq!(gateway.serve_members_of.as_deref(), Some("humans"));
        assert!(gateway.require_tls);
        assert_eq!(gateway.tls.as_ref().unwrap().cert, "/d/gw \"1\".crt");
        assert_eq!(
            loaded.policy.targets[0].password_file.as_deref(),
            Some("/d/agent.pw")
        );
    }
}
