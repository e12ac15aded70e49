//! `curfew bench`: how late curfew ends sessions, what it costs, how far it scales, next to
//! PostgreSQL's own `idle_session_timeout` and a one-minute cron sweep, in one run on one
//! machine.

mod agent_process;
mod load;
mod measure;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use curfew_sandbox::{Cluster, Options};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::SignedDuration;

use crate::exit::{Failure, out};
use agent_process::AgentProcess;
use load::{Load, Monitor};
use measure::{Percentiles, cpu_seconds, cron_ms, late_ms, peak_rss_mib, ticks_per_second};
use report::{Cron, Curfew, EngineRun, Machine, Native, Report, Run};

/// Options of `curfew bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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

/// The shape of a run.
struct Plan {
    sessions: Vec<usize>,
    /// How long the steady state is watched before deadlines fall.
    watch: Duration,
    /// Over how long the idle sessions' deadlines are spread.
    spread: Duration,
    /// The idle limit, for curfew and for `idle_session_timeout`.
    limit: Duration,
    engine: Vec<usize>,
    /// Where to keep the run's files (else a temporary directory, removed at the end).
    keep: Option<PathBuf>,
}

/// Run the benchmark.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let plan = Plan {
        sessions: args.sessions.clone().unwrap_or(if args.quick {
            vec![200]
        } else {
            vec![100, 500, 2000]
        }),
        watch: Duration::from_secs(if args.quick { 4 } else { 10 }),
        spread: Duration::from_secs(if args.quick { 2 } else { 5 }),
        limit: Duration::from_secs(if args.quick { 2 } else { 3 }),
        engine: if args.quick {
            vec![1_000, 10_000]
        } else {
            vec![1_000, 10_000, 100_000]
        },
        keep: args.keep.clone(),
    };
    if let Some(bad) = plan.sessions.iter().find(|n| !(2..=10_000).contains(*n)) {
        return Err(Failure::Usage(format!(
            "--sessions {bad}: each number must be between 2 and 10000"
        )));
    }
    let most = plan.sessions.iter().copied().max().unwrap_or(2);
    let files = most as u64 + 1024;
    if let Some(limit) = measure::open_file_limit(files)
        && limit < most as u64 + 256
    {
        return Err(Failure::Usage(format!(
            "{most} sessions need about {files} open files, but this process may open only {limit} \
             (the hard limit); raise it (`ulimit -Hn {files}` as root) or measure fewer sessions"
        )));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime
        .block_on(bench(&plan, args.quick))
        .map_err(Failure::Runtime)?;
    out(&report.table())?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("writing JSON")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        out(&format!("\nThe same figures as JSON: {}\n", path.display()))?;
    }
    Ok(())
}

async fn bench(plan: &Plan, quick: bool) -> anyhow::Result<Report> {
    let total: u64 = plan.sessions.iter().map(|n| 2 * *n as u64).sum();
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} sessions  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_message("starting a PostgreSQL cluster");
    let most = plan.sessions.iter().copied().max().unwrap_or(2);
    let cluster = tokio::task::spawn_blocking(move || {
        Cluster::start(Options {
            max_connections: Some(u32::try_from(most).unwrap_or(u32::MAX).saturating_add(64)),
            ..Options::default()
        })
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let limit_ms = plan.limit.as_millis();
    cluster
        .psql(&format!(
            "CREATE ROLE curfew_agent LOGIN;
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE bench_idle LOGIN;
             CREATE ROLE bench_busy LOGIN;
             CREATE ROLE bench_native LOGIN;
             ALTER ROLE bench_native SET idle_session_timeout = '{limit_ms}ms';"
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = plan.keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("curfew-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut monitor = Monitor::open(cluster.host(), cluster.port()).await?;
    let postgres = monitor.server_version().await?;
    let ticks = ticks_per_second();
    let mut runs = Vec::new();
    for (i, &n) in plan.sessions.iter().enumerate() {
        let seed = 42 + i as u64;
        let curfew = measure_curfew(
            plan,
            &cluster,
            &mut monitor,
            &dir,
            n,
            seed,
            ticks,
            &progress,
        )
        .await?;
        let native = measure_native(plan, &cluster, &mut monitor, n, seed, &progress).await?;
        runs.push(Run {
            sessions: n,
            cron_1m: Cron {
                lateness_ms: Percentiles::of(&curfew.1),
                method: "computed: a sweep every minute, at a phase unrelated to the deadlines, ends each session up to 60 s after its deadline (uniformly)",
            },
            curfew: curfew.0,
            native,
        });
    }
    progress.set_message("measuring the engine");
    let engine = engine_scaling(&plan.engine)?;
    progress.finish_and_clear();
    if plan.keep.is_some() {
        eprintln!(
            "curfew bench: the run's files are kept in {}",
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Report {
        machine: Machine {
            cpu: measure::cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        },
        postgres,
        quick,
        limit_s: plan.limit.as_secs_f64(),
        interval: "1s".to_owned(),
        runs,
        engine,
    })
}

/// curfew on N sessions: its steady-state cost, then its lateness. The second value is the
/// deadlines' cron lateness.
#[allow(clippy::too_many_arguments)]
async fn measure_curfew(
    plan: &Plan,
    cluster: &Cluster,
    monitor: &mut Monitor,
    dir: &Path,
    n: usize,
    seed: u64,
    ticks: f64,
    progress: &ProgressBar,
) -> anyhow::Result<(Curfew, Vec<f64>)> {
    progress.set_message(format!("{n} sessions: starting the agent"));
    let policy = dir.join(format!("curfew-{n}.toml"));
    std::fs::write(
        &policy,
        format!(
            "[[target]]\nname = \"bench\"\nurl = \"{}\"\n\n[[rule]]\nname = \"idle\"\nidle = \"{}ms\"\nroles = [\"bench_idle\"]\n",
            cluster.url("curfew_agent", "postgres"),
            plan.limit.as_millis()
        ),
    )?;
    let log = dir.join(format!("agent-{n}.log"));
    let mut agent = AgentProcess::start(
        &policy,
        &dir.join(format!("audit-{n}.jsonl")),
        plan.keep.is_some().then_some(log.as_path()),
    )?;
    agent.connected(Duration::from_secs(20)).await?;
    let backend = monitor
        .agent_backend()
        .await?
        .context("finding the agent's server process")?;

    let mut load = open_load(cluster, monitor, n, "bench_idle", seed, progress).await?;
    load.schedule_idle(plan.watch, plan.spread);
    let started = Instant::now();

    // Steady state: every session busy, nothing due; the agent only watches.
    progress.set_message(format!("{n} sessions: watching the steady state"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = (
        Instant::now(),
        cpu_seconds(agent.pid(), ticks),
        cpu_seconds(backend, ticks),
        agent.snapshots(),
    );
    tokio::time::sleep_until((started + plan.watch - Duration::from_millis(300)).into()).await;
    let after = (
        Instant::now(),
        cpu_seconds(agent.pid(), ticks),
        cpu_seconds(backend, ticks),
        agent.snapshots(),
    );
    let seconds = (after.0 - before.0).as_secs_f64();
    let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(0.0, |(a, b)| b - a);
    let agent_cpu = delta(before.1, after.1);
    let server_cpu = delta(before.2, after.2);
    let snapshots = after.3.saturating_sub(before.3);

    progress.set_message(format!("{n} sessions: deadlines falling"));
    let give_up = started + plan.watch + plan.spread + plan.limit + Duration::from_secs(5);
    let ended = wait_for_endings(monitor, &mut load, "bench_idle", give_up).await?;
    let rss = peak_rss_mib(agent.pid()).unwrap_or(0.0);
    load.stop();
    let wrong = load.wrongly_ended().await;
    drop(load);
    agent.stop()?;
    settle(monitor).await?;

    let limit = SignedDuration::try_from(plan.limit)?;
    let mut lateness = Vec::new();
    let mut missed = 0;
    if plan.keep.is_some() {
        let mut dump = String::from("# pid, idle since (server clock), end seen by the client\n");
        for (pid, end) in &ended {
            let since = monitor.idle_since.get(pid).map(ToString::to_string);
            dump += &format!(
                "{pid} {} {}\n",
                since.as_deref().unwrap_or("-"),
                end.map_or_else(|| "-".to_owned(), |t| t.to_string())
            );
        }
        std::fs::write(dir.join(format!("sessions-{n}.txt")), dump)?;
    }
    for (pid, end) in ended {
        match (end, monitor.idle_since.get(&pid)) {
            (Some(end), Some(since)) => lateness.push(late_ms(*since + limit, end)),
            (None, _) => missed += 1,
            (Some(_), None) => {} // ended before the monitor saw it idle: not measurable
        }
    }
    // A cron sweep's phase is unrelated to the deadlines: over the same number of deadlines,
    // its lateness is spread evenly over the minute.
    let cron = cron_ms(lateness.len());
    Ok((
        Curfew {
            lateness_ms: Percentiles::of(&lateness),
            snapshots_per_s: snapshots as f64 / seconds,
            cpu_percent: agent_cpu / seconds * 100.0,
            cpu_resolution_percent: measure::cpu_resolution(ticks) / seconds * 100.0,
            cpu_seconds_per_minute: agent_cpu / seconds * 60.0,
            peak_rss_mib: rss,
            server_cpu_percent: server_cpu / seconds * 100.0,
            server_ms_per_snapshot: if snapshots > 0 {
                server_cpu * 1e3 / snapshots as f64
            } else {
                0.0
            },
            wrong_terminations: wrong,
            missed_terminations: missed,
        },
        cron,
    ))
}

/// PostgreSQL's `idle_session_timeout` on the same load (no agent running).
async fn measure_native(
    plan: &Plan,
    cluster: &Cluster,
    monitor: &mut Monitor,
    n: usize,
    seed: u64,
    progress: &ProgressBar,
) -> anyhow::Result<Native> {
    let mut load = open_load(cluster, monitor, n, "bench_native", seed, progress).await?;
    // The same staggering; no steady state to watch.
    let lead = Duration::from_secs(2);
    load.schedule_idle(lead, plan.spread);
    let started = Instant::now();
    progress.set_message(format!("{n} sessions: native deadlines falling"));
    let give_up = started + lead + plan.spread + plan.limit + Duration::from_secs(5);
    let ended = wait_for_endings(monitor, &mut load, "bench_native", give_up).await?;
    load.stop();
    let _ = load.wrongly_ended().await;
    drop(load);
    settle(monitor).await?;
    let limit = SignedDuration::try_from(plan.limit)?;
    let mut lateness = Vec::new();
    let mut missed = 0;
    for (pid, end) in ended {
        match (end, monitor.idle_since.get(&pid)) {
            (Some(end), Some(since)) => lateness.push(late_ms(*since + limit, end)),
            (None, _) => missed += 1,
            _ => {}
        }
    }
    Ok(Native {
        lateness_ms: Percentiles::of(&lateness),
        missed_terminations: missed,
    })
}

/// Open `n` sessions: half as `idle_role` (to go idle on schedule), half as `bench_busy`.
async fn open_load(
    cluster: &Cluster,
    monitor: &mut Monitor,
    n: usize,
    idle_role: &'static str,
    seed: u64,
    progress: &ProgressBar,
) -> anyhow::Result<Load> {
    progress.set_message(format!("{n} sessions: opening ({idle_role})"));
    monitor.idle_since.clear();
    Load::open(
        cluster.host(),
        cluster.port(),
        (n / 2, idle_role),
        (n - n / 2, "bench_busy"),
        seed,
        || progress.inc(1),
    )
    .await
}

/// Poll the idle sessions' state until all have ended or the last deadline is well past.
async fn wait_for_endings(
    monitor: &mut Monitor,
    load: &mut Load,
    role: &str,
    give_up: Instant,
) -> anyhow::Result<Vec<(i32, Option<jiff::Timestamp>)>> {
    loop {
        monitor.poll(role).await?;
        if load.all_idle_ended() || Instant::now() > give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(load.endings())
}

/// Wait for the server to let go of the closed sessions before the next phase opens more.
async fn settle(monitor: &mut Monitor) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while monitor.bench_sessions().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The engine's evaluation time on the synthetic ten-rule workload (median of 5).
fn engine_scaling(sizes: &[usize]) -> anyhow::Result<Vec<EngineRun>> {
    use curfew_policy::{Engine, parse_policy, synthetic};
    let policy = parse_policy("ten-rule", synthetic::TEN_RULE_POLICY, jiff::tz::db())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .policy;
    let now: jiff::Timestamp = "2026-11-23T15:00:00Z".parse()?;
    let mut runs = Vec::new();
    for &n in sizes {
        let sessions = synthetic::sessions(n, now, 42);
        let mut engine = Engine::new();
        std::hint::black_box(engine.evaluate(&policy, &sessions, now));
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(engine.evaluate(&policy, &sessions, now));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        runs.push(EngineRun {
            sessions: n,
            eval_ms: times[times.len() / 2],
        });
    }
    Ok(runs)
}
