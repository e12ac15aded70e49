//! `curfew bench`: how late curfew ends sessions, what it costs, how far it scales, next to
//! PostgreSQL's own `idle_session_timeout` and a one-minute cron sweep, in one run on one
//! machine. The run is `curfew-bench`'s; here the options, the progress bar and the table.

mod gateway;
mod mariadb;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use curfew_bench::{Percentiles, Plan, Report};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::{Failure, out};

/// Options of `curfew bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    /// What else to measure (without: curfew agent's lateness, cost and scale).
    #[command(subcommand)]
    mode: Option<Mode>,
    /// A short run (under a minute): 200 sessions, shorter windows, smaller engine sizes.
    #[arg(long)]
    quick: bool,
    /// Numbers of concurrent sessions to measure, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    sessions: Option<Vec<usize>>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep the run's files in this directory: policies, audit logs, the agent's debug logs,
    /// each idle session's start and end as its client saw them.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// What `curfew bench` measures other than the agent.
#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// pgbench through curfew gateway, PgBouncer (session mode) and direct; memory per idle
    /// client.
    #[command(
        after_help = "Starts a throwaway cluster with scram-sha-256 and TLS, installs the \
                      gateway's auth function as curfew init does, creates a role and pgbench's \
                      tables, then runs pgbench -S (simple, -M extended, -C) with -c 8 -j 2 \
                      directly, through curfew gateway (this binary, as its own process) and \
                      through PgBouncer in session mode (installed with apt-get when absent and \
                      running as root), plaintext and with TLS on the client leg, in alternating \
                      short rounds; then opens idle clients through each proxy and reads its \
                      resident memory before and after.\n\n\
                      Examples:\n  \
                      curfew bench gateway --quick\n  \
                      curfew bench gateway --rounds 7 --json gateway.json"
    )]
    Gateway(gateway::Args),
    /// Lateness of curfew against MariaDB's own `wait_timeout` on idle sessions.
    #[command(
        after_help = "Starts a throwaway MariaDB server, opens N busy sessions that go idle one \
                      after another, and measures how long after its idle deadline each one is \
                      gone: first ended by curfew agent (this binary, as its own process), then \
                      by the server's wait_timeout set per session.\n\n\
                      Examples:\n  \
                      curfew bench mariadb --quick\n  \
                      curfew bench mariadb --sessions 1000 --json mariadb.json"
    )]
    Mariadb(mariadb::Args),
}

/// The progress bar on standard error.
struct Bar(ProgressBar);

impl curfew_bench::Progress for Bar {
    fn message(&self, text: String) {
        self.0.set_message(text);
    }

    fn opened(&self) {
        self.0.inc(1);
    }
}

/// Run the benchmark.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    match &args.mode {
        Some(Mode::Gateway(gateway)) => return gateway::run(gateway),
        Some(Mode::Mariadb(mariadb)) => return mariadb::run(mariadb),
        None => {}
    }
    let exe = std::env::current_exe().context("finding the curfew binary")?;
    let plan = Plan::new(args.quick, args.sessions.clone(), args.keep.clone(), exe);
    if let Some(bad) = plan.sessions.iter().find(|n| !(2..=10_000).contains(*n)) {
        return Err(Failure::Usage(format!(
            "--sessions {bad}: each number must be between 2 and 10000"
        )));
    }
    let most = plan.sessions.iter().copied().max().unwrap_or(2);
    let files = most as u64 + 1024;
    if let Some(limit) = curfew_bench::open_file_limit(files)
        && limit < most as u64 + 256
    {
        return Err(Failure::Usage(format!(
            "{most} sessions need about {files} open files, but this process may open only {limit} \
             (the hard limit); raise it (`ulimit -Hn {files}` as root) or measure fewer sessions"
        )));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let bar = Bar(ProgressBar::new(plan.total_sessions()).with_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} sessions  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    ));
    let report = runtime
        .block_on(curfew_bench::bench(&plan, &bar))
        .map_err(|e| Failure::Runtime(e.into()))?;
    bar.0.finish_and_clear();
    if let Some(dir) = &plan.keep {
        eprintln!(
            "curfew bench: the run's files are kept in {}",
            dir.display()
        );
    }
    out(&table(&report))?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("writing JSON")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        out(&format!("\nThe same figures as JSON: {}\n", path.display()))?;
    }
    Ok(())
}

pub(super) fn pct(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("{:.1} / {:.1} / {:.1} / {:.1}", p.p50, p.p95, p.p99, p.max),
        None => "-".to_owned(),
    }
}

/// The table people read.
fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "curfew bench: PostgreSQL {} on {} ({} cores); idle limit {}s, interval {}{}\n",
        report.postgres,
        report.machine.cpu,
        report.machine.cores,
        report.limit_s,
        report.interval,
        if report.quick { "; --quick" } else { "" }
    );
    let _ = writeln!(
        out,
        "Lateness, from each deadline to the client seeing its connection end (ms, p50 / p95 / p99 / max):"
    );
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .map(|r| {
            vec![
                r.sessions.to_string(),
                pct(&r.curfew.lateness_ms),
                pct(&r.native.lateness_ms),
                pct(&r.cron_1m.lateness_ms),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        "  ",
        &[
            "SESSIONS",
            "CURFEW",
            "NATIVE idle_session_timeout",
            "CRON EVERY MINUTE (computed)",
        ],
        &rows,
        &[],
    ));
    let _ = writeln!(
        out,
        "\nCost and correctness (steady state: N sessions watched, nothing due):"
    );
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .map(|r| {
            let c = &r.curfew;
            vec![
                r.sessions.to_string(),
                format!("{:.2}", c.snapshots_per_s),
                if c.cpu_percent < c.cpu_resolution_percent {
                    format!("<{:.2}%", c.cpu_resolution_percent)
                } else {
                    format!("{:.2}%", c.cpu_percent)
                },
                format!("{:.1} MiB", c.peak_rss_mib),
                format!(
                    "{:.2}% ({:.2} ms/snapshot)",
                    c.server_cpu_percent, c.server_ms_per_snapshot
                ),
                c.wrong_terminations.to_string(),
                (c.missed_terminations + r.native.missed_terminations).to_string(),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        "  ",
        &[
            "SESSIONS",
            "SNAPSHOTS/S",
            "AGENT CPU",
            "PEAK RSS",
            "SERVER CPU",
            "WRONG",
            "MISSED",
        ],
        &rows,
        &[],
    ));
    if !report.engine.is_empty() {
        let _ = writeln!(out, "\nEngine (ten-rule policy, one core):");
        for e in &report.engine {
            let _ = writeln!(out, "  {:>7} sessions: {:.2} ms", e.sessions, e.eval_ms);
        }
    }
    out
}
