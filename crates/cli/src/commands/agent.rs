//! `curfew agent`: enforce the policy on every target until stopped. SIGHUP reloads the policy
//! (all or nothing); SIGTERM and Ctrl-C stop cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use curfew_agent::{AgentOptions, LoadError, LoadedPolicy};
use curfew_audit::{AuditLog, Event, Record};
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
    /// Log format on standard error.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

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
    let audit = AuditLog::open(&audit_path)
        .with_context(|| format!("opening the audit log {}", audit_path.display()))?;
    for warning in audit.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(serve(config.to_owned(), loaded, audit, args.dry_run))
}

async fn serve(
    config: PathBuf,
    loaded: LoadedPolicy,
    audit: AuditLog,
    dry_run: bool,
) -> Result<(), Failure> {
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (policy_tx, policy_rx) = watch::channel(Arc::new(loaded));
    let reload_audit = audit.clone();
    let reloads = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            reload(&config, &policy_tx, &reload_audit).await;
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
        ..AgentOptions::default()
    };
    if dry_run {
        tracing::info!("dry run: sessions that would be ended are recorded, none is ended");
    }
    let result = curfew_agent::run(audit, options, policy_rx, shutdown).await;
    reloads.abort();
    result.map_err(|e| Failure::Runtime(e.into()))
}

/// SIGHUP: validate the whole file, then swap it in; an invalid file leaves the running policy
/// in force, and both outcomes are audited (the swap by the agent as `policy_loaded`).
async fn reload(config: &Path, policy: &watch::Sender<Arc<LoadedPolicy>>, audit: &AuditLog) {
    tracing::info!("SIGHUP: reloading {}", config.display());
    match LoadedPolicy::from_file(config) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
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
                tracing::error!("{problem}");
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
            if let Err(e) = curfew_agent::write_audit(audit, record).await {
                tracing::error!("{e}");
            }
        }
    }
}
