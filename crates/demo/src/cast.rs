//! The demo's cast: roles of the three-role pattern plus humans, the built-in policy, and the
//! sessions a realistic server would have, each with what the policy should do to it.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::DemoError;

/// Roles, schema and grants, created as the superuser.
pub(super) const SETUP_SQL: &str = "
CREATE ROLE curfew_agent LOGIN;
GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
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

/// The demo's policy: the example policy's rules with fuses short enough to watch.
pub(super) fn policy(url: &str) -> String {
    format!(
        r#"# curfew demo policy: short limits so everything happens within a few seconds.
[agent]
interval = "1s"

[[target]]
name = "demo"
url = "{url}"

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

/// One demo session and what should become of it.
pub(super) struct Actor {
    /// What it is, for people: "analyst_kim, idle in psql".
    pub(super) label: &'static str,
    pub(super) role: &'static str,
    /// The rule expected to end it, or None if it must survive.
    pub(super) expected: Option<&'static str>,
    pub(super) pid: i32,
    pub(super) client: Arc<tokio_postgres::Client>,
    /// Resolves with what the client saw when its connection ended.
    ended: Option<oneshot::Receiver<(Instant, String)>>,
    /// The statement it is running in the background, if any.
    pub(super) running: Option<JoinHandle<Result<(), tokio_postgres::Error>>>,
    /// When and how the client saw its connection end.
    pub(super) saw: Option<(Instant, String)>,
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
}

/// Open a session as `role` with `application`, and run `setup` on it.
pub(super) async fn open(
    host: &str,
    port: u16,
    label: &'static str,
    role: &'static str,
    application: &str,
    expected: Option<&'static str>,
    setup: &str,
) -> Result<Actor, DemoError> {
    let conninfo = format!(
        "host={host} port={port} user={role} dbname=postgres application_name={application}"
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .map_err(|source| DemoError::Session {
            what: format!("connecting as {role}"),
            source,
        })?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let what = match connection.await {
            Ok(()) => "connection closed".to_owned(),
            Err(e) => match e.as_db_error() {
                Some(db) => format!("{}: {}", db.severity(), db.message()),
                None => e.to_string(),
            },
        };
        let _ = tx.send((Instant::now(), what));
    });
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    if !setup.is_empty() {
        client
            .batch_execute(setup)
            .await
            .map_err(|source| DemoError::Session {
                what: format!("preparing the {label} session"),
                source,
            })?;
    }
    Ok(Actor {
        label,
        role,
        expected,
        pid,
        client: Arc::new(client),
        ended: Some(rx),
        running: None,
        saw: None,
    })
}

/// Start a long statement on the actor's session in the background.
pub(super) fn run_in_background(actor: &mut Actor, sql: &'static str) {
    let client = actor.client.clone();
    actor.running = Some(tokio::spawn(async move { client.batch_execute(sql).await }));
}
