//! `curfew demo`: the scenario is `curfew-demo`'s; here its options, the signals that stop it
//! (its cluster is removed however it ends) and its lines on standard output.

use std::path::PathBuf;

use anyhow::Context;
use curfew_demo::{DemoOptions, Narrator};

use crate::exit::Failure;

/// Options of `curfew demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Keep the demo's policy and audit log in this directory (for `curfew audit show`).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Serve the status page, /status, /metrics and /healthz on this address while the demo
    /// runs (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
}

/// Run the demo.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let options = DemoOptions {
        keep: args.keep.clone(),
        listen: args.listen,
    };
    let say = |line: &str| println!("{line}");
    let table = |headers: &[&str], rows: &[Vec<String>], flags: &[&str]| {
        print!("{}", crate::table::render("  ", headers, rows, flags));
    };
    let narrator = Narrator {
        say: &say,
        table: &table,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        // Stopping the demo drops it: its cluster is stopped and its files removed, so an
        // interrupted demo leaves nothing running either.
        tokio::select! {
            result = curfew_demo::demo(&options, &narrator) => result.map_err(|e| Failure::Runtime(e.into())),
            _ = terminate.recv() => Err(Failure::Runtime(anyhow::anyhow!("stopped (SIGTERM); the cluster was removed"))),
            _ = interrupt.recv() => Err(Failure::Runtime(anyhow::anyhow!("interrupted; the cluster was removed"))),
        }
    })
}
