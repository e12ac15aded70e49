//! `curfew agent`: enforce the policy on every target until stopped. SIGHUP reopens the audit
//! log (after logrotate moved or truncated it: the chain goes on in the file at its path,
//! created if need be) and reloads the policy (all or nothing); SIGTERM and Ctrl-C stop
//! cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use curfew_agent::{AgentOptions, AuditTally};
use curfew_audit::AuditLog;
use curfew_observe::Observer;
use curfew_policy::LoadedPolicy;
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
    let reload = curfew_agent::Reload {
        config,
        policy: policy_tx,
        audit: audit.clone(),
        events: events.clone(),
        tally: tally.clone(),
        listen_from_flag,
        url_validators: policy_file::URL_VALIDATORS,
    };
    let reloads = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            reload.on_hangup().await;
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
        crate::databases::AnyTarget::from_policy,
        policy_rx,
        shutdown,
    )
    .await;
    reloads.abort();
    let _ = http_stop.send(());
    result.map_err(|e| Failure::Runtime(e.into()))
}
