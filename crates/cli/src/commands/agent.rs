//! `curfew agent`: enforce the policy on every target until stopped. SIGHUP reopens the audit
//! log (after logrotate moved or truncated it: the chain goes on in the file at its path,
//! created if need be) and reloads the policy (all or nothing); SIGTERM and Ctrl-C stop
//! cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use curfew_agent::{AgentEvent, AgentOptions, AuditTally, LoadError, LoadedPolicy, RecordedEvent};
use curfew_audit::{AuditLog, Event, Record};
use curfew_observe::Observer;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::exit::Failure;
use crate::logging::{self, LogFormat};
use crate::policy_file;

/// Options of `curfew agent`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record what would be done; end no session.
    #[arg(long)]
    dry_run: bool,
    /// The audit log to append to (overrides `audit_log` in `[agent]`).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Serve /metrics, /healthz, /status and the status page on this address (overrides
    /// `listen` in `[agent]`), e.g. 127.0.0.1:9187.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Agent events the HTTP endpoint may fall behind by before it misses some (it counts them).
const EVENT_BACKLOG: usize = 8192;

/// Run the agent.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    logging::init(args.log_format);
    let loaded = policy_file::load(config)?;
    let audit_path = args
        .audit_log
        .clone()
        .or_else(|| loaded.policy.agent.audit_log.as_ref().map(PathBuf::from))
        .ok_or_else(|| {
            Failure::Usage(
                "no audit log: set audit_log in [agent] of the policy, or pass --audit-log FILE"
                    .to_owned(),
            )
        })?;
    if loaded.policy.targets.is_empty() {
        return Err(Failure::Usage(format!(
            "{} names no [[target]]: there is nothing to watch",
            loaded.source
        )));
    }
    let audit = AuditLog::open_for_agent(&audit_path)
        .with_context(|| format!("opening the audit log {}", audit_path.display()))?;
    for warning in audit.warnings() {
        tracing::warn!("{warning}");
    }
    let listen = args.listen.or(loaded.policy.agent.listen);
    if let Some(address) = args.listen
        && !address.ip().is_loopback()
    {
        tracing::warn!(
            "--listen {address} is not loopback: anyone who can reach it sees role names, client addresses and what is about to be ended; prefer 127.0.0.1 behind a proxy that authenticates"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let from_flag = args.listen.is_some();
    runtime.block_on(serve(
        config.to_owned(),
        loaded,
        audit,
        args.dry_run,
        listen,
        from_flag,
    ))
}

async fn serve(
    config: PathBuf,
    loaded: LoadedPolicy,
    audit: AuditLog,
    dry_run: bool,
    listen: Option<SocketAddr>,
    listen_from_flag: bool,
) -> Result<(), Failure> {
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (policy_tx, policy_rx) = watch::channel(Arc::new(loaded));
    // The endpoint is bound before the agent starts (a busy port is an error now, not a log
    // line later) and stops after it, so the last events are still counted.
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let tally = Arc::new(AuditTally::new());
    let events = match listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| {
                    format!("listening on {address} (`listen` in [agent], or --listen)")
                })?;
            let address = listener.local_addr().unwrap_or(address);
            let (events, receiver) = tokio::sync::broadcast::channel(EVENT_BACKLOG);
            let observer = Observer::new(policy_rx.clone(), audit.clone(), tally.clone(), dry_run);
            tokio::spawn(observer.clone().follow(receiver));
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = http_stopped.await;
                };
                if let Err(e) = curfew_observe::serve(listener, observer, stopped).await {
                    tracing::error!("the HTTP endpoint stopped: {e}");
                }
            });
            tracing::info!("status page on http://{address}/ (also /status, /metrics, /healthz)");
            Some(events)
        }
        None => None,
    };
    let reload_audit = audit.clone();
    let reload_events = events.clone();
    let reload_tally = tally.clone();
    let reloads = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // First the log, so that what the reload records goes to the new file.
            tracing::info!(
                "SIGHUP: reopening the audit log {}",
                reload_audit.path().display()
            );
            let _ = curfew_agent::recover_audit(
                &reload_audit,
                true,
                reload_events.as_ref(),
                Some(&reload_tally),
            )
            .await;
            reload(
                &config,
                &policy_tx,
                &reload_audit,
                reload_events.as_ref(),
                &reload_tally,
                listen_from_flag,
            )
            .await;
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("interrupted"),
        }
    };
    let options = AgentOptions {
        dry_run,
        events,
        tally: Some(tally.clone()),
        ..AgentOptions::default()
    };
    if dry_run {
        tracing::info!("dry run: sessions that would be ended are recorded, none is ended");
    }
    let result = curfew_agent::run(
        audit,
        options,
        curfew_postgres::PolicyTarget::from_policy,
        policy_rx,
        shutdown,
    )
    .await;
    reloads.abort();
    let _ = http_stop.send(());
    result.map_err(|e| Failure::Runtime(e.into()))
}

/// SIGHUP: validate the whole file, then swap it in; an invalid file leaves the running policy
/// in force, and both outcomes are audited (the swap by the agent as `policy_loaded`).
async fn reload(
    config: &Path,
    policy: &watch::Sender<Arc<LoadedPolicy>>,
    audit: &AuditLog,
    events: Option<&tokio::sync::broadcast::Sender<AgentEvent>>,
    tally: &AuditTally,
    listen_from_flag: bool,
) {
    tracing::info!("SIGHUP: reloading {}", config.display());
    let checked = LoadedPolicy::from_file_with(config, Some(policy_file::URL_VALIDATORS))
        .and_then(|loaded| policy_file::require(loaded, policy_file::Need::Enforceable));
    match checked {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                // Diagnostics quote the policy's names: escapes shown, not obeyed.
                tracing::warn!("{}", curfew_policy::visible_lines(&warning.to_string()));
            }
            let before = policy.borrow().policy.agent.listen;
            let wanted = loaded.policy.agent.listen;
            if !listen_from_flag && wanted != before {
                let shown =
                    |a: Option<SocketAddr>| a.map_or("(none)".to_owned(), |a| a.to_string());
                tracing::warn!(
                    "`listen` in [agent] changed from {} to {}; the HTTP endpoint changes only when the agent restarts",
                    shown(before),
                    shown(wanted)
                );
            }
            if loaded.sha256 == policy.borrow().sha256 {
                tracing::info!("policy unchanged");
            } else {
                let _ = policy.send(Arc::new(loaded));
            }
        }
        Err(error) => {
            let problems: Vec<String> = match &error {
                LoadError::Invalid(errors) => errors.errors().map(ToString::to_string).collect(),
                other => vec![other.to_string()],
            };
            for problem in &problems {
                tracing::error!("{}", curfew_policy::visible_lines(problem));
            }
            tracing::error!("the new policy was rejected; the running policy stays in force");
            let record = Record::new(jiff::Timestamp::now(), Event::PolicyRejected)
                .with_reason(format!(
                    "{} was rejected ({} problem{}); the running policy stays in force",
                    config.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ))
                .with_detail(json!({"source": config.display().to_string(), "errors": problems}));
            let gist = RecordedEvent {
                seq: 0,
                event: record.event,
                target: None,
                rule: None,
                result: None,
            };
            let written = curfew_agent::write_audit(audit, record).await;
            // The agent tells observers of its own records; this one is written here.
            let told = match written {
                Ok(appended) => {
                    let records = vec![RecordedEvent {
                        seq: appended.seq,
                        ..gist
                    }];
                    tally.add(&records);
                    AgentEvent::Recorded { records }
                }
                Err(error) => {
                    tracing::error!("{error}");
                    AgentEvent::AuditFailed { error }
                }
            };
            if let Some(events) = events {
                let _ = events.send(told);
                let _ = events.send(AgentEvent::PolicyRejected {
                    source: config.display().to_string(),
                    problems: problems.len(),
                });
            }
        }
    }
}
