//! `curfew bench mariadb`: how late curfew ends idle MariaDB sessions next to the server's
//! `wait_timeout`, in one run. The run is `curfew-bench`'s; here the options and the table.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use curfew_bench::mariadb::{MariaDbPlan, MariaDbReport, Side};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Bar, pct};
use crate::exit::{Failure, out};

/// Options of `curfew bench mariadb`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A short run (under a minute): 100 sessions per side, a 2 s limit.
    #[arg(long)]
    quick: bool,
    /// Idle sessions per side (default 500; 100 with --quick).
    #[arg(long, value_name = "N")]
    sessions: Option<usize>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Run the MariaDB benchmark.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    if let Some(bad) = args.sessions.filter(|n| !(2..=5_000).contains(n)) {
        return Err(Failure::Usage(format!(
            "--sessions {bad}: must be between 2 and 5000"
        )));
    }
    let exe = std::env::current_exe().context("finding the curfew binary")?;
    let plan = MariaDbPlan::new(args.quick, args.sessions, exe);
    let files = plan.sessions as u64 * 2 + 1024;
    if let Some(limit) = curfew_bench::open_file_limit(files)
        && limit < files
    {
        return Err(Failure::Usage(format!(
            "{} sessions need about {files} open files, but this process may open only {limit} \
             (the hard limit); raise it (`ulimit -Hn {files}` as root) or measure fewer sessions",
            plan.sessions
        )));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let bar = Bar(ProgressBar::new(plan.sessions as u64 * 2).with_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} sessions  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    ));
    let report = runtime
        .block_on(curfew_bench::mariadb::bench_mariadb(&plan, &bar))
        .map_err(|e| Failure::Runtime(e.into()))?;
    bar.0.finish_and_clear();
    out(&table(&report))?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("writing JSON")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        out(&format!("\nThe same figures as JSON: {}\n", path.display()))?;
    }
    Ok(())
}

fn row(out: &mut String, name: &str, side: &Side) {
    let _ = writeln!(
        out,
        "{name:<14} {:<36} {:>9} {:>6} {:>12}",
        pct(&side.lateness_ms),
        side.not_ended,
        side.early,
        side.earliest_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"))
    );
}

/// The table people read.
fn table(report: &MariaDbReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "curfew bench mariadb: {}; {} idle sessions per side, limit {}s, process list polled every {} ms{}\n",
        report.server,
        report.sessions,
        report.limit_s,
        report.poll_ms,
        if report.quick { "; --quick" } else { "" }
    );
    let _ = writeln!(
        out,
        "{:<14} {:<36} {:>9} {:>6} {:>12}",
        "ended by", "lateness ms p50 / p95 / p99 / max", "not ended", "early", "earliest ms"
    );
    row(&mut out, "curfew", &report.curfew);
    row(&mut out, "wait_timeout", &report.wait_timeout);
    let _ = writeln!(
        out,
        "\nLateness: from the end of a session's last statement plus the limit to the first poll \
         that no longer lists it (both sides measured alike)."
    );
    out
}
