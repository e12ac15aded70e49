//! `curfew bench gateway`: pgbench through curfew gateway, PgBouncer in session mode and
//! direct, plaintext and TLS, and each proxy's memory per idle client. The run is
//! `curfew-bench`'s; here the options, the progress bar and the tables.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use curfew_bench::gateway::{GatewayPlan, GatewayReport, Route, Workload};
use indicatif::{ProgressBar, ProgressStyle};

use super::Bar;
use crate::exit::{Failure, out};

/// Options of `curfew bench gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A short run (about a minute): one 1-second round per configuration, 100 idle clients,
    /// lateness at 100 sessions (else 200 and 1,000).
    #[arg(long)]
    quick: bool,
    /// Rounds per configuration (default 5; 1 with --quick).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep the run's files (policies, PgBouncer's configuration, the proxies' logs) in this
    /// directory.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// The gateway's worker threads (`curfew gateway --workers`; default one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    gateway_workers: Option<u16>,
}

/// Run the gateway benchmark.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    if let Some(bad) = args.rounds.filter(|n| !(1..=100).contains(n)) {
        return Err(Failure::Usage(format!(
            "--rounds {bad}: must be between 1 and 100"
        )));
    }
    let exe = std::env::current_exe().context("finding the curfew binary")?;
    let mut plan = GatewayPlan::new(args.quick, args.rounds, args.keep.clone(), exe);
    plan.gateway_workers = args.gateway_workers;
    let files = plan.open_files();
    if let Some(limit) = curfew_bench::open_file_limit(files)
        && limit < files
    {
        return Err(Failure::Usage(format!(
            "{} idle clients need about {files} open files, but this process may open only \
             {limit} (the hard limit); raise it (`ulimit -Hn {files}` as root)",
            plan.idle_clients
        )));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let bar = Bar(
        ProgressBar::new(curfew_bench::gateway::total_steps(&plan)).with_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} steps  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
    );
    let report = runtime
        .block_on(curfew_bench::gateway::bench_gateway(&plan, &bar))
        .map_err(|e| Failure::Runtime(e.into()))?;
    bar.0.finish_and_clear();
    if let Some(dir) = &plan.keep {
        eprintln!(
            "curfew bench gateway: the run's files are kept in {}",
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

fn workload_name(workload: Workload) -> String {
    workload.options().join(" ")
}

/// The tables people read.
fn table(report: &GatewayReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "curfew bench gateway: PostgreSQL {}, {}, on {} ({} cores){}",
        report.postgres,
        report.pgbouncer,
        report.machine.cpu,
        report.machine.cores,
        if report.quick { "; --quick" } else { "" }
    );
    let _ = writeln!(
        out,
        "pgbench -c {} -j {}, scale {}, {} round(s) of {} s per configuration, routes alternating \
         in each round; server leg plaintext on loopback for both proxies; SCRAM-SHA-256 \
         everywhere. PROXY CPU: the proxy process's CPU time (user + system, every thread) per \
         transaction, median of the rounds; unlike tps, other load on the machine does not \
         distort it.\n",
        report.clients, report.threads, report.scale, report.rounds, report.round_seconds
    );
    if let Some(workers) = report.gateway_workers {
        let _ = writeln!(out, "curfew gateway --workers {workers}.\n");
    }
    let rows: Vec<Vec<String>> = report
        .throughput
        .iter()
        .map(|t| {
            let ratio = match t.route {
                Route::Gateway => report
                    .ratio(t.tls, t.workload)
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}× pgbouncer")),
                _ => String::new(),
            };
            let cpu = t
                .median_proxy_cpu_us_per_tx
                .map_or_else(String::new, |c| format!("{c:.1}"));
            let cpu_ratio = match t.route {
                Route::Gateway => report
                    .cpu_ratio(t.tls, t.workload)
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×")),
                _ => String::new(),
            };
            vec![
                if t.tls { "TLS" } else { "plaintext" }.to_owned(),
                workload_name(t.workload),
                t.route.name().to_owned(),
                format!("{:.0}", t.median_tps),
                t.tps
                    .iter()
                    .map(|v| format!("{v:.0}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                ratio,
                cpu,
                cpu_ratio,
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        "  ",
        &[
            "CLIENT LEG",
            "PGBENCH",
            "ROUTE",
            "TPS (MEDIAN)",
            "ROUNDS",
            "GATEWAY / PGBOUNCER",
            "PROXY CPU µs/TX",
            "PGBOUNCER CPU / GATEWAY CPU",
        ],
        &rows,
        &[],
    ));
    let _ = writeln!(
        out,
        "\nMemory per idle client ((RSS with the clients idle − RSS before) / clients, each proxy \
         freshly started):"
    );
    let rows: Vec<Vec<String>> = report
        .idle_memory
        .iter()
        .map(|m| {
            vec![
                m.proxy.to_owned(),
                if m.tls { "TLS" } else { "plaintext" }.to_owned(),
                m.clients.to_string(),
                format!("{} KiB", m.rss_before_kib),
                format!("{} KiB", m.rss_after_kib),
                format!("{:.1} KiB", m.kib_per_client),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        "  ",
        &[
            "PROXY",
            "CLIENT LEG",
            "IDLE CLIENTS",
            "RSS BEFORE",
            "RSS AFTER",
            "PER CLIENT",
        ],
        &rows,
        &[],
    ));
    lateness_table(report, &mut out);
    out
}

/// How late idle sessions were ended, through the gateway and by `idle_session_timeout`: each
/// round, then the routes' median p99s and their ratio.
fn lateness_table(report: &GatewayReport, out: &mut String) {
    if report.lateness.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nLateness of an idle limit of {} s (ms from each session's deadline — its last reply + \
         the limit — to its client seeing the FATAL; the sessions' idle moments spread over 3 s; \
         plaintext, SCRAM; the routes alternate which goes first in each round):",
        report.lateness_limit_seconds
    );
    let ms = |p: Option<&curfew_bench::Percentiles>, f: fn(&curfew_bench::Percentiles) -> f64| {
        p.map_or_else(|| "-".to_owned(), |p| format!("{:.1}", f(p)))
    };
    let rows: Vec<Vec<String>> = report
        .lateness
        .iter()
        .map(|r| {
            let p = r.lateness_ms.as_ref();
            vec![
                r.sessions.to_string(),
                r.round.to_string(),
                r.route.to_owned(),
                ms(p, |p| p.p50),
                ms(p, |p| p.p95),
                ms(p, |p| p.p99),
                ms(p, |p| p.max),
                format!(
                    "{} 57P05, {} otherwise, {} not ended, {} early{}",
                    r.ended_57p05,
                    r.ended_otherwise,
                    r.not_ended,
                    r.early,
                    if r.stalled > 0 {
                        format!(
                            ", {} left out (the bench's keepalive fell behind)",
                            r.stalled
                        )
                    } else {
                        String::new()
                    }
                ),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        "  ",
        &[
            "SESSIONS", "ROUND", "ENDED BY", "P50", "P95", "P99", "MAX", "ENDINGS",
        ],
        &rows,
        &[],
    ));
    let mut counts: Vec<usize> = report.lateness.iter().map(|r| r.sessions).collect();
    counts.dedup();
    let median = |sessions, route| {
        report
            .lateness_p99(sessions, route)
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}"))
    };
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|sessions| {
            vec![
                sessions.to_string(),
                median(sessions, curfew_bench::gateway::GATEWAY_ROUTE),
                median(sessions, curfew_bench::gateway::NATIVE_ROUTE),
                report
                    .lateness_ratio(sessions)
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×")),
            ]
        })
        .collect();
    let _ = writeln!(out, "\nMedian over the rounds of each route's p99:");
    out.push_str(&crate::table::render(
        "  ",
        &["SESSIONS", "GATEWAY P99", "NATIVE P99", "P99 / NATIVE P99"],
        &rows,
        &[],
    ));
}
