//! The agent as a whole: one worker per target, started, restarted and stopped as reloaded
//! policies change the targets, and a clean stop on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use curfew_audit::details::{AgentStart, PolicyLoad};
use curfew_audit::{AuditLog, Event};
use curfew_backend::Connector;
use curfew_policy::Target;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::records::write;
use crate::shared::{AgentOptions, Shared};
use crate::worker::Worker;
use curfew_policy::LoadedPolicy;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The audit log cannot be written: the agent does nothing it cannot record.
    #[error("{0}")]
    Audit(String),
}

struct Running<C> {
    spec: C,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Run the agent until `shutdown` completes. The policy comes through `policy`: the caller
/// validates a reloaded file and sends it whole (an invalid file never reaches the agent).
/// `connector` gives, for each `[[target]]`, how to connect to it (the database adapter).
pub async fn run<C: Connector>(
    audit: AuditLog,
    options: AgentOptions,
    connector: impl Fn(&Target) -> C + Send + Sync,
    mut policy: watch::Receiver<Arc<LoadedPolicy>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let shared = Arc::new(Shared::new(audit, options));
    let mut started = crate::records::about(Event::AgentStarted, "*");
    started.target = None;
    let started = started.with_details(&AgentStart {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        dry_run: shared.options.dry_run,
        pid: std::process::id(),
    });
    write(&shared, started).await.map_err(AgentError::Audit)?;
    if shared.options.close_interrupted {
        close_interrupted(&shared).await;
    }
    // The audit log fails closed; this recovers it (see records.rs).
    let (keeper_stop, keeper_stopped) = watch::channel(false);
    let keeper = tokio::spawn(crate::records::keep(shared.clone(), keeper_stopped.clone()));
    let signer = tokio::spawn(crate::anchor::checkpoints(
        shared.clone(),
        policy.clone(),
        keeper_stopped,
    ));
    // The notify hooks, off the enforcement path (see notify/mod.rs).
    let (notify_stop, notify_stopped) = watch::channel(false);
    let notifier = tokio::spawn(crate::notify::run(
        shared.clone(),
        policy.clone(),
        notify_stopped,
    ));

    let mut workers: HashMap<String, Running<C>> = HashMap::new();
    let mut recorded_sha = String::new();
    tokio::pin!(shutdown);
    loop {
        let loaded = policy.borrow_and_update().clone();
        if loaded.sha256 != recorded_sha {
            let mut record = crate::records::about(Event::PolicyLoaded, "*");
            record.target = None;
            let record = record.with_details(&PolicyLoad {
                source: Some(loaded.source.clone()),
                sha256: Some(loaded.sha256.clone()),
                policy_sha256: None,
                rules: u64::try_from(loaded.policy.rules.len()).ok(),
                targets: loaded
                    .policy
                    .targets
                    .iter()
                    .map(|t| t.name.clone())
                    .collect(),
            });
            // A reload is applied even if recording it failed (the failure is logged); the
            // policy in force must not depend on the disk.
            let _ = write(&shared, record).await;
            shared.emit(crate::events::AgentEvent::PolicyApplied {
                source: loaded.source.clone(),
                sha256: loaded.sha256.clone(),
                reload: !recorded_sha.is_empty(),
            });
            recorded_sha = loaded.sha256.clone();
            tracing::info!(target: "curfew::agent", "policy {} (sha256 {}) in force: {} rules, {} targets",
                loaded.source, &loaded.sha256[..12], loaded.policy.rules.len(), loaded.policy.targets.len());
        }
        reconcile(&shared, &policy, &loaded, &mut workers, &connector).await;
        tokio::select! {
            changed = policy.changed() => if changed.is_err() { break },
            () = &mut shutdown => break,
        }
    }
    tracing::info!(target: "curfew::agent", "stopping");
    let every = policy.borrow().policy.agent.heartbeat.to_std();
    for (name, running) in workers.drain() {
        stop(running).await;
        stopped(&shared, &name, "the agent stopped", every).await;
    }
    let _ = keeper_stop.send(true);
    let _ = keeper.await;
    let _ = signer.await;
    let _ = notify_stop.send(true);
    let _ = notifier.await;
    let mut stopped = crate::records::about(Event::AgentStopped, "*");
    stopped.target = None;
    let _ = write(&shared, stopped).await;
    // The last checkpoint covers the whole run.
    let signing_key = policy.borrow().policy.audit.signing_key.clone();
    if let Some(path) = signing_key
        && let Some(key) = crate::anchor::load_key(&path)
    {
        crate::anchor::checkpoint(&shared, &key).await;
    }
    Ok(())
}

/// A previous run may have stopped (crash, SIGKILL) between an intent and its outcome. Say so in
/// the log, once per such intent: the outcome is unknown, and the state is checked again now
/// (the first round re-reads every session and role, so nothing is left half done).
async fn close_interrupted(shared: &Arc<Shared>) {
    let path = shared.audit.path().to_owned();
    let verification = tokio::task::spawn_blocking(move || curfew_audit::verify(&path)).await;
    let problems = match verification {
        Ok(Ok(v)) => v.problems,
        Ok(Err(e)) => {
            tracing::warn!(target: "curfew::agent", "could not check the audit log for interrupted actions: {e}");
            return;
        }
        Err(_) => return,
    };
    for problem in problems {
        if problem.kind != curfew_audit::ProblemKind::IntentWithoutOutcome {
            continue;
        }
        let Some(seq) = problem.seq else { continue };
        let mut record = crate::records::about(Event::ActionInterrupted, "*");
        record.target = None;
        record.intent = Some(seq);
        record.result = Some("unknown".to_owned());
        record.reason = Some(format!(
            "{} The previous run stopped before recording the outcome; the actual state is checked again now.",
            problem.message
        ));
        tracing::warn!(target: "curfew::agent", "{}", record.reason.as_deref().unwrap_or_default());
        let _ = write(shared, record).await;
    }
}

/// Start workers for new targets, restart changed ones, stop removed ones.
async fn reconcile<C: Connector>(
    shared: &Arc<Shared>,
    policy: &watch::Receiver<Arc<LoadedPolicy>>,
    loaded: &LoadedPolicy,
    workers: &mut HashMap<String, Running<C>>,
    connector: &(impl Fn(&Target) -> C + Send + Sync),
) {
    let wanted: HashMap<String, C> = loaded
        .policy
        .targets
        .iter()
        .map(|t| (t.name.clone(), connector(t)))
        .collect();
    if wanted.is_empty() {
        tracing::warn!(target: "curfew::agent", "the policy names no [[target]]: nothing to watch");
    }
    let stale: Vec<String> = workers
        .iter()
        .filter(|(name, running)| wanted.get(*name).is_none_or(|spec| *spec != running.spec))
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        if let Some(running) = workers.remove(&name) {
            tracing::info!(target: "curfew::agent", "target \"{name}\": removed or changed; stopping its worker");
            stop(running).await;
            let every = loaded.policy.agent.heartbeat.to_std();
            let why = "the target was removed from the policy or its connection changed";
            stopped(shared, &name, why, every).await;
        }
    }
    for (name, spec) in wanted {
        if workers.contains_key(&name) {
            continue;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(
            name.clone(),
            spec.clone(),
            shared.clone(),
            policy.clone(),
            stop_rx,
        ));
        workers.insert(
            name,
            Running {
                spec,
                stop: stop_tx,
                task,
            },
        );
    }
}

/// Record that a target's worker stopped (a `stopped` heartbeat): the target is not enforced
/// by this agent from now on.
async fn stopped(shared: &Shared, target: &str, why: &str, every: Duration) {
    let state = crate::heartbeat::State::Stopped(why.to_owned());
    let record = crate::heartbeat::heartbeat_record(target, &state, every, None);
    let _ = write(shared, record).await;
}

/// Ask a worker to stop and wait for it (an in-flight termination completes first).
async fn stop<C>(running: Running<C>) {
    let _ = running.stop.send(true);
    let mut task = running.task;
    if tokio::time::timeout(Duration::from_secs(15), &mut task)
        .await
        .is_err()
    {
        task.abort();
    }
}

/// Run a target's worker, and start it again if it dies (a panic: a bug, or data nothing
/// expected), with capped backoff. Each death is recorded (`worker_failed`) and the target is
/// reported as not enforced until the new worker is connected.
async fn supervise<C: Connector>(
    target: String,
    spec: C,
    shared: Arc<Shared>,
    policy: watch::Receiver<Arc<LoadedPolicy>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = shared.options.retry_min;
    loop {
        let worker = Worker {
            target: target.clone(),
            connector: spec.clone(),
            shared: shared.clone(),
            policy: policy.clone(),
            stop: stop.clone(),
            beat: crate::heartbeat::Heartbeat::new(shared.clone(), &target),
        };
        let started = tokio::time::Instant::now();
        let mut task = AbortOnDrop(tokio::spawn(worker.run()));
        let died = match (&mut task.0).await {
            Ok(()) => return, // it stops only when told to
            Err(e) if e.is_cancelled() => return,
            Err(e) => panic_message(e.into_panic()),
        };
        if *stop.borrow() {
            return;
        }
        // A worker that ran a good while before dying starts again soon.
        if started.elapsed() > shared.options.retry_max * 2 {
            delay = shared.options.retry_min;
        }
        let problem = format!(
            "the worker for target \"{target}\" failed ({died}); it is restarted in {}s, and the target is not enforced meanwhile",
            delay.as_secs_f64()
        );
        tracing::error!(target: "curfew::agent", "{problem}");
        let mut record = crate::records::about(Event::WorkerFailed, &target);
        record.reason = Some(problem.clone());
        record.result = Some("restarting".to_owned());
        let _ = write(&shared, record).await;
        shared.emit(crate::events::AgentEvent::Enforcement {
            target: target.clone(),
            problem: Some(problem),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(shared.options.retry_max);
    }
}

/// A task aborted when its handle is dropped (the supervisor's own abort reaches the worker).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a panic said, if it said it in words.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_owned(),
            Err(_) => "a panic".to_owned(),
        },
    }
}
