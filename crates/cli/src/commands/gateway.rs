//! `curfew gateway`: the PostgreSQL gateway of the policy's `[gateway]`, as an operator runs it
//! under systemd. SIGHUP reloads the policy and the certificate (what can change live applies
//! to new clients; a policy or certificate that fails keeps the running one); SIGTERM and
//! Ctrl-C drain (no new clients, `shutdown_timeout` for the sessions, then FATAL 57P01 for
//! the rest, exit 0); a second SIGTERM or Ctrl-C ends the sessions at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use curfew_audit::AuditLog;
use curfew_gateway::{AuthFunctionSource, Gateway, PolicyGateway, Shutdown, Workers};
use curfew_observe::{Check, Health, Scrape};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::Failure;
use crate::logging::{self, LogFormat};
use crate::policy_file;

/// Options of `curfew gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The gateway's audit log (overrides `audit_log` in `[gateway]`); never the agent's.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Serve /metrics and /healthz on this address (overrides `http_listen` in `[gateway]`),
    /// e.g. 127.0.0.1:9188.
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<SocketAddr>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Threads serving sessions, each session on one (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
}

/// Run the gateway.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    logging::init(args.log_format);
    let loaded = policy_file::load(config)?;
    let mapped = PolicyGateway::from_policy(&loaded.policy)
        .map_err(|e| Failure::Usage(format!("{}: {e}", loaded.source)))?;
    let Some(gateway_section) = loaded.policy.gateway.as_ref() else {
        return Err(Failure::Usage(format!(
            "{}: the policy has no [gateway] section",
            loaded.source
        )));
    };
    let audit_path = args
        .audit_log
        .clone()
        .or_else(|| gateway_section.audit_log.as_ref().map(PathBuf::from))
        .ok_or_else(|| {
            Failure::Usage(
                "no audit log: set audit_log in [gateway] of the policy, or pass --audit-log FILE"
                    .to_owned(),
            )
        })?;
    if let Some(agent_log) = &loaded.policy.agent.audit_log
        && Path::new(agent_log) == audit_path
    {
        return Err(Failure::Usage(format!(
            "the gateway's audit log {} is the agent's (`audit_log` in [agent]): one writer per chain; give the gateway a file of its own",
            audit_path.display()
        )));
    }
    let http_listen = args.http_listen.or(gateway_section.http_listen);
    if let Some(address) = args.http_listen
        && !address.ip().is_loopback()
    {
        tracing::warn!(
            "--http-listen {address} is not loopback: anyone who can reach it sees the gateway's metrics; prefer 127.0.0.1 behind a proxy that authenticates"
        );
    }
    // The claim keeps a second gateway (or an agent) from writing the same chain.
    let audit = AuditLog::open_for_agent(&audit_path)
        .with_context(|| format!("opening the audit log {}", audit_path.display()))?;
    for warning in audit.warnings() {
        tracing::warn!("{warning}");
    }
    let target = gateway_section.target.clone();
    // The accept loops, signals and HTTP endpoint on this thread; every session on one
    // worker thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        usize::from,
    );
    let workers = Arc::new(Workers::start(workers).context("starting the worker threads")?);
    runtime.block_on(serve(
        config.to_owned(),
        mapped,
        audit,
        target,
        http_listen,
        workers,
    ))?;
    Ok(())
}

async fn serve(
    config: PathBuf,
    mapped: PolicyGateway,
    audit: AuditLog,
    target: String,
    http_listen: Option<SocketAddr>,
    workers: Arc<Workers>,
) -> Result<(), Failure> {
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut listeners = Vec::new();
    for address in &mapped.config.listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        listeners.push(listener);
    }
    let running_auth = mapped.auth.clone();
    let source = Arc::new(AuthFunctionSource::new(mapped.auth));
    let gateway = Gateway::new(mapped.config, source).context("setting up the gateway")?;
    if let Some(policy) = mapped.policy {
        gateway.enforce(policy);
    }
    gateway.audit_to(audit, &target);
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(address) = http_listen {
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!("listening on {address} (`http_listen` in [gateway], or --http-listen)")
        })?;
        let address = listener.local_addr().unwrap_or(address);
        let scrape: Arc<dyn Scrape> = Arc::new(GatewayScrape(gateway.clone()));
        tokio::spawn(async move {
            let stopped = async move {
                let _ = http_stopped.await;
            };
            if let Err(e) = curfew_observe::serve_scrape(listener, scrape, stopped).await {
                tracing::error!("the HTTP endpoint stopped: {e}");
            }
        });
        tracing::info!("metrics on http://{address}/metrics (and /healthz)");
    }
    let config_now = gateway.config();
    for address in &config_now.listen {
        tracing::info!(%address, upstream = %config_now.upstream.url, "curfew gateway listening");
    }
    let shutdown = Shutdown::new();
    let reloads = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                reload(&config, &gateway, &running_auth).await;
            }
        })
    };
    let signals = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM: draining"),
                _ = interrupt.recv() => tracing::info!("interrupted: draining"),
            }
            shutdown.drain();
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::warn!("second stop signal: ending every session now");
            shutdown.end_now();
        })
    };
    let drained = curfew_gateway::run_until_on(listeners, gateway, &shutdown, workers).await;
    signals.abort();
    reloads.abort();
    let _ = http_stop.send(());
    tracing::info!(
        sessions_at_stop = drained.at_start,
        sessions_ended = drained.ended,
        "curfew gateway stopped"
    );
    Ok(())
}

/// SIGHUP: the policy read again and handed to the gateway; a policy that does not load keeps
/// the running configuration (logged, counted and audited by the gateway).
async fn reload(config: &Path, gateway: &Gateway, running_auth: &curfew_postgres::TargetSpec) {
    let mapped = policy_file::load(config).and_then(|loaded| {
        PolicyGateway::from_policy(&loaded.policy)
            .map_err(|e| Failure::Usage(format!("{}: {e}", loaded.source)))
    });
    match mapped {
        Ok(mapped) => {
            // The gateway logs, counts and records the failure itself.
            let _ = gateway.reload(&mapped, running_auth).await;
        }
        Err(failure) => gateway.reload_rejected(&failure_text(&failure)).await,
    }
}

fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Usage(message) | Failure::Check(message) => message.clone(),
        Failure::Runtime(error) => format!("{error:#}"),
    }
}

/// The gateway as the HTTP endpoint's source.
struct GatewayScrape(Gateway);

impl Scrape for GatewayScrape {
    fn metrics(&self) -> String {
        self.0.metrics_text()
    }

    fn health(&self) -> Health {
        let checks: Vec<Check> = self
            .0
            .health()
            .into_iter()
            .map(|c| Check {
                what: c.what,
                ok: c.ok,
                detail: c.detail,
            })
            .collect();
        Health {
            healthy: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}
