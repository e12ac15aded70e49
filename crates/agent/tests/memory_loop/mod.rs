//! The agent run against the in-memory server on tokio's paused clock: the server's clock and
//! the agent's timers move together, so every deadline is met (or not) deterministically.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // a shared test helper module

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use curfew_agent::{AgentError, AgentOptions};
use curfew_audit::{AuditLog, Entry};
use curfew_backend::memory::{CallName, MemoryServer, Request};
use curfew_backend::{Outcome, SessionKey, Signal};
use curfew_policy::LoadedPolicy;
use curfew_testkit::TempDir;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The server's clock when a test starts.
pub fn start_time() -> Timestamp {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

/// `seconds` after [`start_time`] (fractions allowed).
pub fn at(seconds: f64) -> Timestamp {
    start_time() + SignedDuration::from_secs_f64(seconds)
}

/// A policy for the target `db1` with these rules, read every `interval`.
pub fn policy(interval: &str, rules: &str) -> LoadedPolicy {
    let text = format!(
        "[agent]\ninterval = \"{interval}\"\n\n[[target]]\nname = \"db1\"\nurl = \"postgresql://curfew_agent@127.0.0.1:5432/postgres\"\n\n{rules}"
    );
    LoadedPolicy::from_bytes("loop.toml", text.into_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// An agent running in this test's runtime against `server`.
pub struct Agent {
    pub audit_path: PathBuf,
    /// Kept while the agent runs: a dropped sender stops it.
    _policy: watch::Sender<Arc<LoadedPolicy>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
    /// Holds the audit log; removed when the agent is dropped.
    _dir: TempDir,
}

impl Agent {
    /// Start the agent (its first snapshot is taken at once, at the server's clock now).
    pub async fn start(server: &MemoryServer, policy: LoadedPolicy, name: &str) -> Agent {
        let dir = TempDir::new("loop-test", name);
        let audit_path = dir.path().join("audit.jsonl");
        let audit = AuditLog::open(&audit_path).unwrap();
        let options = AgentOptions {
            retry_max: Duration::from_secs(2),
            ..AgentOptions::default()
        };
        let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let connector = server.connector();
        let task = tokio::spawn(curfew_agent::run(
            audit,
            options,
            move |_: &curfew_policy::Target| connector.clone(),
            policy_rx,
            async move {
                let _ = stop_rx.await;
            },
        ));
        Agent {
            audit_path,
            _policy: policy_tx,
            stop: Some(stop_tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stop the agent and wait for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stop the agent; its audit log must verify. Returns its records.
    pub async fn stop_verified(mut self) -> Vec<Entry> {
        self.stop().await;
        let verification = curfew_audit::verify(&self.audit_path).unwrap();
        assert!(
            verification.is_intact(),
            "audit log does not verify: {:#?}",
            verification.problems
        );
        records(&self.audit_path)
    }
}

/// Let the agent run until `seconds` after [`start_time`] on the (paused) clock.
pub async fn run_until(server: &MemoryServer, seconds: f64) {
    let until = at(seconds);
    let left = until.duration_since(server.now());
    assert!(
        left >= SignedDuration::ZERO,
        "the clock is already past {until}"
    );
    tokio::time::sleep(Duration::try_from(left).unwrap()).await;
}

/// The records of an audit log, in order.
pub fn records(path: &Path) -> Vec<Entry> {
    curfew_audit::read(path)
        .unwrap()
        .into_iter()
        .map(|entry| entry.unwrap())
        .collect()
}

/// The records of `event` about the session `key`.
pub fn about<'a>(records: &'a [Entry], event: &str, key: SessionKey) -> Vec<&'a Entry> {
    records
        .iter()
        .filter(|r| r.event == event)
        .filter(|r| {
            r.session
                .as_ref()
                .is_some_and(|s| s.pid == key.pid && s.backend_start == key.backend_start)
        })
        .collect()
}

/// The records of `event`, in order.
pub fn events<'a>(records: &'a [Entry], event: &str) -> Vec<&'a Entry> {
    records.iter().filter(|r| r.event == event).collect()
}

/// The heartbeat states recorded, in order.
pub fn heartbeat_states(records: &[Entry]) -> Vec<String> {
    events(records, "heartbeat")
        .iter()
        .filter_map(|r| r.detail.as_ref()?.get("state")?.as_str().map(str::to_owned))
        .collect()
}

/// Each end request the server received for `key`: when (server clock), and its answer
/// (`None`: the call failed).
pub fn ends_of(server: &MemoryServer, key: SessionKey) -> Vec<(Timestamp, Option<Signal>)> {
    server
        .calls_of(CallName::SignalAll)
        .into_iter()
        .filter_map(|call| match call.request {
            Request::SignalAll { requests, answers } => {
                let i = requests.iter().position(|r| r.session == key)?;
                Some((call.at, answers.get(i).cloned()))
            }
            _ => None,
        })
        .collect()
}

/// Whether an answer is "not yet due".
pub fn not_yet_due(signal: &Option<Signal>) -> bool {
    matches!(signal, Some(Signal::Settled(Outcome::NotYetDue { .. })))
}

/// The intent for `key` and its outcome record: the intent comes first, the outcome names it.
pub fn intent_and_outcome<'a>(
    records: &'a [Entry],
    key: SessionKey,
    outcome: &str,
) -> (&'a Entry, &'a Entry) {
    let outcomes = about(records, outcome, key);
    assert_eq!(outcomes.len(), 1, "one {outcome} record for {key:?}");
    let outcome = outcomes[0];
    let intent = records
        .iter()
        .find(|r| Some(r.seq) == outcome.intent)
        .expect("the outcome names its intent");
    assert_eq!(intent.event, "termination_intent");
    assert!(intent.seq < outcome.seq, "the intent is written first");
    assert_eq!(intent.session, outcome.session);
    (intent, outcome)
}
