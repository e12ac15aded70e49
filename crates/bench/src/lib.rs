//! `curfew bench`: how late curfew ends sessions, what it costs, how far it scales, next to
//! PostgreSQL's own `idle_session_timeout` and a one-minute cron sweep, in one run on one
//! machine. The load, the measuring and the figures; the binary parses the options and prints
//! them.

mod agent_process;
mod error;
pub mod gateway;
mod load;
pub mod mariadb;
mod measure;
mod report;

pub use error::BenchError;
pub use measure::{Percentiles, open_file_limit};
pub use report::{Cron, Curfew, EngineRun, Machine, Native, Report, Run};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use curfew_sandbox::{Cluster, Options};
use jiff::SignedDuration;

use agent_process::AgentProcess;
use load::{Load, Monitor};
use measure::{cpu_seconds, cron_ms, late_ms, peak_rss_mib, ticks_per_second};

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The numbers of concurrent sessions measured.
    pub sessions: Vec<usize>,
    /// How long the steady state is watched before deadlines fall.
    pub watch: Duration,
    /// Over how long the idle sessions' deadlines are spread.
    pub spread: Duration,
    /// The idle limit, for curfew and for `idle_session_timeout`.
    pub limit: Duration,
    /// The numbers of sessions the engine alone is timed on.
    pub engine: Vec<usize>,
    /// Where to keep the run's files (else a temporary directory, removed at the end).
    pub keep: Option<PathBuf>,
    /// Whether this is the short run (`--quick`), as the report says.
    pub quick: bool,
    /// The `curfew` binary whose `agent` is measured.
    pub agent_exe: PathBuf,
}

impl Plan {
    /// The standard run, or the short one with `quick` (under a minute: 200 sessions, shorter
    /// windows, smaller engine sizes); `sessions` replaces the numbers of sessions.
    pub fn new(
        quick: bool,
        sessions: Option<Vec<usize>>,
        keep: Option<PathBuf>,
        agent_exe: PathBuf,
    ) -> Plan {
        Plan {
            sessions: sessions.unwrap_or(if quick {
                vec![200]
            } else {
                vec![100, 500, 2000]
            }),
            watch: Duration::from_secs(if quick { 4 } else { 10 }),
            spread: Duration::from_secs(if quick { 2 } else { 5 }),
            limit: Duration::from_secs(if quick { 2 } else { 3 }),
            engine: if quick {
                vec![1_000, 10_000]
            } else {
                vec![1_000, 10_000, 100_000]
            },
            keep,
            quick,
            agent_exe,
        }
    }

    /// How many sessions the run opens in all (what progress counts up to).
    pub fn total_sessions(&self) -> u64 {
        self.sessions.iter().map(|n| 2 * *n as u64).sum()
    }
}

/// How a run shows its progress (the binary draws a bar).
pub trait Progress {
    /// What the run is doing now.
    fn message(&self, text: String);
    /// One more session opened.
    fn opened(&self);
}

/// Run the benchmark on a sandbox cluster of its own; the figures. The run's files are kept in
/// `plan.keep` if given, else removed.
pub async fn bench(plan: &Plan, progress: &dyn Progress) -> Result<Report, BenchError> {
    let quick = plan.quick;
    progress.message("starting a PostgreSQL cluster".to_owned());
    let most = plan.sessions.iter().copied().max().unwrap_or(2);
    let cluster = tokio::task::spawn_blocking(move || {
        Cluster::start(Options {
            max_connections: Some(u32::try_from(most).unwrap_or(u32::MAX).saturating_add(64)),
            ..Options::default()
        })
    })
    .await??;
    let limit_ms = plan.limit.as_millis();
    cluster.psql(&format!(
        "CREATE ROLE curfew_agent LOGIN;
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE bench_idle LOGIN;
             CREATE ROLE bench_busy LOGIN;
             CREATE ROLE bench_native LOGIN;
             ALTER ROLE bench_native SET idle_session_timeout = '{limit_ms}ms';"
    ))?;
    let dir = plan.keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("curfew-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|source| BenchError::IoDoing {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let mut monitor = Monitor::open(cluster.host(), cluster.port()).await?;
    let postgres = monitor.server_version().await?;
    let ticks = ticks_per_second();
    let mut runs = Vec::new();
    for (i, &n) in plan.sessions.iter().enumerate() {
        let seed = 42 + i as u64;
        let curfew =
            measure_curfew(plan, &cluster, &mut monitor, &dir, n, seed, ticks, progress).await?;
        let native = measure_native(plan, &cluster, &mut monitor, n, seed, progress).await?;
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
    progress.message("measuring the engine".to_owned());
    let engine = engine_scaling(&plan.engine)?;
    if plan.keep.is_none() {
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
    progress: &dyn Progress,
) -> Result<(Curfew, Vec<f64>), BenchError> {
    progress.message(format!("{n} sessions: starting the agent"));
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
        &plan.agent_exe,
        &policy,
        &dir.join(format!("audit-{n}.jsonl")),
        plan.keep.is_some().then_some(log.as_path()),
    )?;
    agent.connected(Duration::from_secs(20)).await?;
    let backend = monitor
        .agent_backend()
        .await?
        .ok_or(BenchError::AgentBackend)?;

    let mut load = open_load(cluster, monitor, n, "bench_idle", seed, progress).await?;
    load.schedule_idle(plan.watch, plan.spread);
    let started = Instant::now();

    // Steady state: every session busy, nothing due; the agent only watches.
    progress.message(format!("{n} sessions: watching the steady state"));
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

    progress.message(format!("{n} sessions: deadlines falling"));
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
    progress: &dyn Progress,
) -> Result<Native, BenchError> {
    let mut load = open_load(cluster, monitor, n, "bench_native", seed, progress).await?;
    // The same staggering; no steady state to watch.
    let lead = Duration::from_secs(2);
    load.schedule_idle(lead, plan.spread);
    let started = Instant::now();
    progress.message(format!("{n} sessions: native deadlines falling"));
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
    progress: &dyn Progress,
) -> Result<Load, BenchError> {
    progress.message(format!("{n} sessions: opening ({idle_role})"));
    monitor.idle_since.clear();
    Load::open(
        cluster.host(),
        cluster.port(),
        (n / 2, idle_role),
        (n - n / 2, "bench_busy"),
        seed,
        || progress.opened(),
    )
    .await
}

/// Poll the idle sessions' state until all have ended or the last deadline is well past.
async fn wait_for_endings(
    monitor: &mut Monitor,
    load: &mut Load,
    role: &str,
    give_up: Instant,
) -> Result<Vec<(i32, Option<jiff::Timestamp>)>, BenchError> {
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
async fn settle(monitor: &mut Monitor) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while monitor.bench_sessions().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The engine's evaluation time on the synthetic ten-rule workload (median of 5).
fn engine_scaling(sizes: &[usize]) -> Result<Vec<EngineRun>, BenchError> {
    use curfew_policy::{Engine, parse_policy, synthetic};
    let policy = parse_policy("ten-rule", synthetic::TEN_RULE_POLICY, jiff::tz::db())
        .map_err(BenchError::Policy)?
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
