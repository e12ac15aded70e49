//! `curfew gateway`: the PostgreSQL gateway of the policy's `[gateway]`, until Ctrl-C. (SIGHUP's
//! reload and SIGTERM's drain come with the gateway's operations.)

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use curfew_gateway::{AuthFunctionSource, Gateway, PolicyGateway, Workers};
use tokio::net::TcpListener;

use crate::exit::Failure;
use crate::logging::{self, LogFormat};
use crate::policy_file;

/// Options of `curfew gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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
    // The accept loops and signals on this thread; every session on one worker thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        usize::from,
    );
    let workers = Arc::new(Workers::start(workers).context("starting the worker threads")?);
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for address in &mapped.config.listen {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("listening on {address}"))?;
            listeners.push(listener);
        }
        let source = Arc::new(AuthFunctionSource::new(mapped.auth));
        let gateway = Gateway::new(mapped.config, source).context("setting up the gateway")?;
        for address in &gateway.config().listen {
            tracing::info!(%address, upstream = %gateway.config().upstream.url, "curfew gateway listening");
        }
        curfew_gateway::run_on(listeners, gateway, async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("stopping: no new clients; waiting for the sessions to end");
        }, workers)
        .await;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
