//! Shared test harness: a sandbox cluster with curfew's role and some users, client sessions
//! whose end the test can observe, and an agent running in the test process.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // a shared test helper module

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_agent::{AgentEvent, AgentOptions};
use curfew_audit::AuditLog;
use curfew_policy::LoadedPolicy;
use curfew_sandbox::{Cluster, Options};
use curfew_testkit::TempDir;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

/// A cluster with `curfew_agent` (least privilege) and login roles `kim`, `lee` (members of
/// `humans`) and `appuser`.
pub fn cluster() -> Cluster {
    cluster_with(Options::default())
}

pub fn cluster_with(options: Options) -> Cluster {
    let cluster = Cluster::start(options).unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "CREATE ROLE curfew_agent LOGIN;
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE humans NOLOGIN;
             CREATE ROLE kim LOGIN IN ROLE humans;
             CREATE ROLE lee LOGIN IN ROLE humans;
             CREATE ROLE appuser LOGIN;",
        )
        .unwrap();
    cluster
}

/// A fresh directory for one test's files, removed when dropped.
pub fn scratch(name: &str) -> TempDir {
    TempDir::new("agent-test", name)
}

/// A client session; `ended` resolves when the server ends the connection.
pub struct Client {
    pub client: Arc<tokio_postgres::Client>,
    pub pid: i32,
    ended: Option<oneshot::Receiver<Instant>>,
}

impl Client {
    /// Run `pg_sleep(seconds)` on this session in the background (it is active meanwhile).
    pub fn sleep_in_background(
        &self,
        seconds: f64,
    ) -> JoinHandle<Result<(), tokio_postgres::Error>> {
        let client = self.client.clone();
        tokio::spawn(async move {
            client
                .batch_execute(&format!("SELECT pg_sleep({seconds})"))
                .await
        })
    }

    /// Whether the server has ended the connection.
    pub fn is_ended(&mut self) -> bool {
        match &mut self.ended {
            Some(rx) => match rx.try_recv() {
                Ok(_) | Err(oneshot::error::TryRecvError::Closed) => {
                    self.ended = None;
                    true
                }
                Err(oneshot::error::TryRecvError::Empty) => false,
            },
            None => true,
        }
    }

    /// Wait up to `limit` for the connection to end; the instant it ended.
    pub async fn ended_within(&mut self, limit: Duration) -> Option<Instant> {
        let rx = self.ended.as_mut()?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(at)) => {
                self.ended = None;
                Some(at)
            }
            Ok(Err(_)) => None,
            Err(_) => None,
        }
    }
}

/// A conninfo value, quoted (role names may hold spaces and quotes).
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Open a session as `user` over TCP with this application name.
pub async fn connect(cluster: &Cluster, user: &str, application: &str) -> Client {
    let url = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres application_name={}",
        cluster.port(),
        quoted(user),
        quoted(application)
    );
    open(&url).await
}

/// Open a session as `user` over the Unix socket.
pub async fn connect_socket(cluster: &Cluster, user: &str) -> Client {
    let url = format!(
        "host={} port={} user={} dbname=postgres application_name=psql",
        cluster.socket_dir().display(),
        cluster.port(),
        quoted(user)
    );
    open(&url).await
}

async fn open(conninfo: &str) -> Client {
    open_or_ended(conninfo)
        .await
        .expect("the session was ended before its pid was read")
}

/// Like [`connect`], but `None` when the session was ended before its pid could be read: an
/// agent already enforcing (a deny window) may end it that soon on a loaded machine.
pub async fn connect_or_ended(cluster: &Cluster, user: &str, application: &str) -> Option<Client> {
    let url = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres application_name={}",
        cluster.port(),
        quoted(user),
        quoted(application)
    );
    open_or_ended(&url).await
}

async fn open_or_ended(conninfo: &str) -> Option<Client> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = connection.await;
        let _ = tx.send(Instant::now());
    });
    let pid: i32 = match client.query_one("select pg_backend_pid()", &[]).await {
        Ok(row) => row.get(0),
        Err(e) if e.is_closed() || e.code().is_some_and(|c| c.code() == "57P01") => return None,
        Err(e) => panic!("reading the pid: {e}"),
    };
    Some(Client {
        client: Arc::new(client),
        pid,
        ended: Some(rx),
    })
}

/// Parse a policy whose text may say `{url}` for the cluster's URL as curfew_agent.
pub fn policy(cluster: &Cluster, text: &str) -> LoadedPolicy {
    let url = cluster.url("curfew_agent", "postgres");
    let text = format!(
        "[agent]\ninterval = \"1s\"\n\n[[target]]\nname = \"test\"\nurl = \"{url}\"\n\n{text}"
    );
    LoadedPolicy::from_bytes_with(
        "test.toml",
        text.into_bytes(),
        Some(&[&curfew_postgres::POSTGRES_URLS]),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An agent running in this process.
pub struct Agent {
    pub events: broadcast::Receiver<AgentEvent>,
    pub policy: watch::Sender<Arc<LoadedPolicy>>,
    pub audit_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), curfew_agent::AgentError>>>,
}

impl Agent {
    pub async fn start(policy: LoadedPolicy, dir: &TempDir) -> Agent {
        Self::start_with(policy, dir, AgentOptions::default()).await
    }

    pub async fn start_with(
        policy: LoadedPolicy,
        dir: &TempDir,
        mut options: AgentOptions,
    ) -> Agent {
        let audit_path = dir.join("audit.jsonl");
        let audit = AuditLog::open(&audit_path).unwrap();
        let (events_tx, events) = broadcast::channel(1024);
        options.events = Some(events_tx);
        options.retry_max = Duration::from_secs(2);
        let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(curfew_agent::run(
            audit,
            options,
            curfew_postgres::PolicyTarget::from_policy,
            policy_rx,
            async move {
                let _ = stop_rx.await;
            },
        ));
        Agent {
            events,
            policy: policy_tx,
            audit_path,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Wait for an event matching `pick`, up to `limit`.
    pub async fn next<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&AgentEvent) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()?;
            match event {
                Ok(e) => {
                    if let Some(found) = pick(&e) {
                        return Some(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Wait until the agent has connected and evaluated at least once.
    pub async fn ready(&mut self) {
        self.next(Duration::from_secs(20), |e| {
            matches!(e, AgentEvent::Evaluated { .. }).then_some(())
        })
        .await
        .expect("the agent never evaluated a snapshot");
    }

    /// Stop the agent and wait for it; its audit log must verify.
    pub async fn stop(mut self) -> curfew_audit::Verification {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let verification = curfew_audit::verify(&self.audit_path).unwrap();
        assert!(
            verification.is_intact(),
            "audit log does not verify: {:#?}",
            verification.problems
        );
        verification
    }
}

/// The events the agent reported as terminations, by pid.
pub fn terminated_pid(e: &AgentEvent) -> Option<(i32, String, Duration)> {
    match e {
        AgentEvent::Terminated {
            session,
            rule,
            lateness,
            ..
        } => Some((
            i32::try_from(session.pid).unwrap(),
            rule.clone(),
            Duration::try_from(*lateness).unwrap_or_default(),
        )),
        _ => None,
    }
}

/// A connection to the ledger as curfew_agent (as `curfew lock` opens one), and a role's entry.
pub async fn ledger_and_role(
    cluster: &Cluster,
    role: &str,
) -> (curfew_postgres::Connection, curfew_postgres::RoleInfo) {
    let spec = curfew_postgres::TargetSpec {
        name: "test".into(),
        url: curfew_postgres::ConnectionUrl::parse(&cluster.url("curfew_agent", "postgres"))
            .unwrap(),
        password_file: None,
    };
    let ledger = curfew_postgres::connect(&spec).await.unwrap().connection;
    let info = ledger
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == role)
        .unwrap();
    (ledger, info)
}
