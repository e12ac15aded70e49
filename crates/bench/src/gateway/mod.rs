//! `curfew bench gateway`: `pgbench -S` (simple, extended, a connection per transaction)
//! direct, through `curfew gateway` and through PgBouncer in session mode, plaintext and with
//! TLS on the client leg, in alternating short rounds; then each proxy's memory per idle
//! client. One sandbox cluster with `scram-sha-256`, the gateway's auth function installed as
//! `curfew init` does.

mod idle;
mod lateness;
mod pgbench;
mod proxies;
mod setup;

pub use idle::IdleMemory;
pub use lateness::{LIMIT as LATENESS_LIMIT, LatenessRun};
pub use pgbench::{CLIENTS, THREADS, Workload, median};
pub use proxies::ProxyKind;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BenchError;
use crate::measure::{cpu_seconds, ticks_per_second};
use crate::report::Machine;
use crate::{Progress, measure};
use idle::Login;
use pgbench::Endpoint;
use setup::{BENCH_DATABASE, BENCH_ROLE, NATIVE_ROLE, Setup};

/// The shape of a gateway run.
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    /// Rounds per configuration (each route once per round, alternating).
    pub rounds: usize,
    /// How long each pgbench round runs.
    pub round_length: Duration,
    /// Idle clients opened through each proxy for the memory figure.
    pub idle_clients: usize,
    /// pgbench's scale factor (`pgbench -i -s`).
    pub scale: u32,
    /// The numbers of idle sessions whose ends are timed, through the gateway and by
    /// `idle_session_timeout`.
    pub lateness_sessions: Vec<usize>,
    /// Rounds of each lateness measurement (each route once per round, the order alternating):
    /// one run's p99 on a noisy 2-core machine swings by half, so the ratio is taken between
    /// the routes' medians.
    pub lateness_rounds: usize,
    /// Whether this is the short run (`--quick`).
    pub quick: bool,
    /// The `curfew` binary whose `gateway` is measured.
    pub gateway_exe: PathBuf,
    /// The gateway's `--workers` (else its default, one per core).
    pub gateway_workers: Option<u16>,
    /// Where to keep the run's files (else a temporary directory, removed at the end).
    pub keep: Option<PathBuf>,
}

impl GatewayPlan {
    /// The standard run (5 rounds of 3 s, 1,000 idle clients) or the quick one (1 round of
    /// 1 s, 100 idle clients); `rounds` replaces the number of rounds. Lateness is timed at
    /// 200 and 1,000 sessions (100 when quick), in as many rounds as pgbench's, at most 3.
    pub fn new(
        quick: bool,
        rounds: Option<usize>,
        keep: Option<PathBuf>,
        gateway_exe: PathBuf,
    ) -> GatewayPlan {
        let rounds = rounds.unwrap_or(if quick { 1 } else { 5 });
        GatewayPlan {
            rounds,
            lateness_rounds: rounds.clamp(1, 3),
            round_length: Duration::from_secs(if quick { 1 } else { 3 }),
            idle_clients: if quick { 100 } else { 1000 },
            scale: 1,
            lateness_sessions: if quick { vec![100] } else { vec![200, 1000] },
            quick,
            gateway_exe,
            gateway_workers: None,
            keep,
        }
    }

    /// Open files the run needs in this process and its children (each idle client is a socket
    /// here and two in the proxy).
    pub fn open_files(&self) -> u64 {
        self.most_clients() as u64 * 2 + 256
    }

    /// The most clients connected at once (idle ones, or a lateness run's).
    pub fn most_clients(&self) -> usize {
        self.lateness_sessions
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.idle_clients)
    }
}

/// The lateness figures' route names.
pub const GATEWAY_ROUTE: &str = "curfew gateway";
/// The reference: PostgreSQL's own timer, direct.
pub const NATIVE_ROUTE: &str = "idle_session_timeout";

/// How pgbench reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Straight to PostgreSQL.
    Direct,
    /// Through `curfew gateway`.
    Gateway,
    /// Through PgBouncer, session mode.
    Pgbouncer,
}

impl Route {
    /// In the order each round runs them.
    pub const ALL: [Route; 3] = [Route::Direct, Route::Gateway, Route::Pgbouncer];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Gateway => "curfew gateway",
            Route::Pgbouncer => "pgbouncer",
        }
    }
}

/// One configuration's rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    /// TLS on the client leg.
    pub tls: bool,
    /// The pgbench workload.
    pub workload: Workload,
    /// The route.
    pub route: Route,
    /// Each round's tps, in order.
    pub tps: Vec<f64>,
    /// Their median.
    pub median_tps: f64,
    /// Each round's CPU time of the proxy (all its threads, user and system) per transaction,
    /// in microseconds: what load on the machine does not distort as it does tps. Empty for
    /// the direct route.
    pub proxy_cpu_us_per_tx: Vec<f64>,
    /// Their median.
    pub median_proxy_cpu_us_per_tx: Option<f64>,
}

/// The figures of a gateway run.
#[derive(Debug, serde::Serialize)]
pub struct GatewayReport {
    /// The machine.
    pub machine: Machine,
    /// The server's version.
    pub postgres: String,
    /// The PgBouncer version measured.
    pub pgbouncer: String,
    /// Whether this was the short run.
    pub quick: bool,
    /// Rounds per configuration.
    pub rounds: usize,
    /// Seconds per round.
    pub round_seconds: u64,
    /// pgbench `-c`.
    pub clients: u32,
    /// pgbench `-j`.
    pub threads: u32,
    /// pgbench scale factor.
    pub scale: u32,
    /// The gateway's `--workers`, when the run set it.
    pub gateway_workers: Option<u16>,
    /// Every configuration, grouped by TLS then workload then route.
    pub throughput: Vec<Throughput>,
    /// Memory per idle client, per proxy and client leg.
    pub idle_memory: Vec<IdleMemory>,
    /// The idle limit of the lateness runs, in seconds.
    pub lateness_limit_seconds: f64,
    /// How late idle sessions are ended: each round's run of the gateway and of
    /// `idle_session_timeout`, per number of sessions.
    pub lateness: Vec<LatenessRun>,
}

impl GatewayReport {
    /// The median over the rounds of a route's p99 lateness at `sessions`.
    pub fn lateness_p99(&self, sessions: usize, route: &str) -> Option<f64> {
        let mut p99s: Vec<f64> = self
            .lateness
            .iter()
            .filter(|r| r.sessions == sessions && r.route == route)
            .filter_map(|r| r.lateness_ms.as_ref().map(|p| p.p99))
            .collect();
        if p99s.is_empty() {
            return None;
        }
        p99s.sort_by(f64::total_cmp);
        let mid = p99s.len() / 2;
        Some(if p99s.len() % 2 == 1 {
            p99s[mid]
        } else {
            (p99s[mid - 1] + p99s[mid]) / 2.0
        })
    }

    /// The gateway's median p99 lateness over `idle_session_timeout`'s at `sessions` (below
    /// 1: the gateway ended sessions closer to their deadlines).
    pub fn lateness_ratio(&self, sessions: usize) -> Option<f64> {
        let native = self
            .lateness_p99(sessions, NATIVE_ROUTE)
            .filter(|p| *p > 0.0)?;
        Some(self.lateness_p99(sessions, GATEWAY_ROUTE)? / native)
    }

    /// Gateway median tps over PgBouncer's for a TLS setting and workload.
    pub fn ratio(&self, tls: bool, workload: Workload) -> Option<f64> {
        let median = |route| {
            self.throughput
                .iter()
                .find(|t| t.tls == tls && t.workload == workload && t.route == route)
                .map(|t| t.median_tps)
        };
        let pgbouncer = median(Route::Pgbouncer).filter(|t| *t > 0.0)?;
        Some(median(Route::Gateway)? / pgbouncer)
    }

    /// PgBouncer's median CPU per transaction over the gateway's (above 1: the gateway is
    /// cheaper) for a TLS setting and workload.
    pub fn cpu_ratio(&self, tls: bool, workload: Workload) -> Option<f64> {
        let cpu = |route| {
            self.throughput
                .iter()
                .find(|t| t.tls == tls && t.workload == workload && t.route == route)
                .and_then(|t| t.median_proxy_cpu_us_per_tx)
        };
        let gateway = cpu(Route::Gateway).filter(|c| *c > 0.0)?;
        Some(cpu(Route::Pgbouncer)? / gateway)
    }
}

/// Run the gateway benchmark on a sandbox cluster of its own.
pub async fn bench_gateway(
    plan: &GatewayPlan,
    progress: &dyn Progress,
) -> Result<GatewayReport, BenchError> {
    let setup = Setup::prepare(plan, progress).await?;
    let result = measure_all(plan, &setup, progress).await;
    setup.finish(plan.keep.is_some());
    result
}

async fn measure_all(
    plan: &GatewayPlan,
    setup: &Setup,
    progress: &dyn Progress,
) -> Result<GatewayReport, BenchError> {
    let pgbench = setup.cluster.bin_dir().join("pgbench");
    let ticks = ticks_per_second();
    let mut throughput = Vec::new();
    {
        let mut gateway = setup.start_gateway("rounds")?;
        let mut pgbouncer = setup.start_pgbouncer("rounds")?;
        for tls in [false, true] {
            for workload in Workload::ALL {
                let mut rows: Vec<Throughput> = Route::ALL
                    .iter()
                    .map(|&route| Throughput {
                        tls,
                        workload,
                        route,
                        tps: Vec::new(),
                        median_tps: 0.0,
                        proxy_cpu_us_per_tx: Vec::new(),
                        median_proxy_cpu_us_per_tx: None,
                    })
                    .collect();
                for round in 0..plan.rounds {
                    for row in &mut rows {
                        progress.message(format!(
                            "pgbench {} {}, {}: round {} of {}",
                            workload.options().join(" "),
                            if tls { "TLS" } else { "plaintext" },
                            row.route.name(),
                            round + 1,
                            plan.rounds
                        ));
                        let (port, proxy_pid) = match row.route {
                            Route::Direct => (setup.cluster.port(), None),
                            Route::Gateway => (gateway.port, Some(gateway.pid())),
                            Route::Pgbouncer => (pgbouncer.port, Some(pgbouncer.pid())),
                        };
                        let cpu_before = proxy_pid.and_then(|pid| cpu_seconds(pid, ticks));
                        let endpoint = Endpoint {
                            port,
                            user: BENCH_ROLE,
                            password: &setup.password,
                            database: BENCH_DATABASE,
                            tls,
                        };
                        let result =
                            pgbench::round(&pgbench, workload, plan.round_length, &endpoint);
                        let cpu_after = proxy_pid.and_then(|pid| cpu_seconds(pid, ticks));
                        gateway.check_alive()?;
                        pgbouncer.check_alive()?;
                        let result = result?;
                        row.tps.push(result.tps);
                        if let (Some(before), Some(after)) = (cpu_before, cpu_after)
                            && result.transactions > 0
                        {
                            row.proxy_cpu_us_per_tx
                                .push((after - before) * 1e6 / result.transactions as f64);
                        }
                        progress.opened();
                    }
                }
                for row in &mut rows {
                    row.median_tps = median(&row.tps).unwrap_or(0.0);
                    row.median_proxy_cpu_us_per_tx = median(&row.proxy_cpu_us_per_tx);
                }
                throughput.extend(rows);
            }
        }
    }
    let mut idle_memory = Vec::new();
    let tls_config = Arc::new(setup.client_tls()?);
    for tls in [false, true] {
        for kind in [ProxyKind::Gateway, ProxyKind::Pgbouncer] {
            setup.settle().await?;
            progress.message(format!(
                "{}: {} idle {} clients",
                kind.name(),
                plan.idle_clients,
                if tls { "TLS" } else { "plaintext" }
            ));
            let run = format!("idle-{}", if tls { "tls" } else { "plain" });
            let mut proxy = match kind {
                ProxyKind::Gateway => setup.start_gateway(&run)?,
                ProxyKind::Pgbouncer => setup.start_pgbouncer(&run)?,
            };
            let login = Login {
                user: BENCH_ROLE,
                password: &setup.password,
                database: BENCH_DATABASE,
                tls: tls.then_some(&tls_config),
            };
            idle_memory.push(idle::measure(&mut proxy, plan.idle_clients, &login).await?);
            progress.opened();
        }
    }
    let mut late = Vec::new();
    for &sessions in &plan.lateness_sessions {
        for round in 1..=plan.lateness_rounds {
            // The order alternates, so that neither route always runs on the heels of the
            // other's thousand backends exiting.
            let gateway_first = round % 2 == 1;
            for gateway_turn in [gateway_first, !gateway_first] {
                setup.settle().await?;
                let mut run = if gateway_turn {
                    progress.message(format!(
                        "lateness: {sessions} idle sessions through curfew gateway (round {round})"
                    ));
                    let mut gateway = setup.start_gateway_with(
                        &format!("lateness-{sessions}-{round}"),
                        &format!(
                            "[[rule]]\nname = \"inactivity\"\nidle = \"{}s\"\nroles = [\"{BENCH_ROLE}\"]\n",
                            LATENESS_LIMIT.as_secs()
                        ),
                    )?;
                    let through_gateway = lateness::Endpoint {
                        port: gateway.port,
                        user: BENCH_ROLE,
                        password: &setup.password,
                        database: BENCH_DATABASE,
                        route: GATEWAY_ROUTE,
                    };
                    let run = lateness::measure(&through_gateway, sessions).await?;
                    gateway.check_alive()?;
                    run
                } else {
                    progress.message(format!(
                        "lateness: {sessions} idle sessions direct, idle_session_timeout (round {round})"
                    ));
                    let direct = lateness::Endpoint {
                        port: setup.cluster.port(),
                        user: NATIVE_ROLE,
                        password: &setup.password,
                        database: BENCH_DATABASE,
                        route: NATIVE_ROUTE,
                    };
                    lateness::measure(&direct, sessions).await?
                };
                run.round = round;
                late.push(run);
                progress.opened();
            }
        }
    }
    Ok(GatewayReport {
        machine: Machine {
            cpu: measure::cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        },
        postgres: setup.postgres_version.clone(),
        pgbouncer: setup.pgbouncer_version.clone(),
        quick: plan.quick,
        rounds: plan.rounds,
        round_seconds: plan.round_length.as_secs(),
        clients: CLIENTS,
        threads: THREADS,
        scale: plan.scale,
        gateway_workers: plan.gateway_workers,
        throughput,
        idle_memory,
        lateness_limit_seconds: LATENESS_LIMIT.as_secs_f64(),
        lateness: late,
    })
}

/// How many steps a run counts (each pgbench round and each idle measurement), for progress.
pub fn total_steps(plan: &GatewayPlan) -> u64 {
    (2 * Workload::ALL.len() * plan.rounds * Route::ALL.len()
        + 4
        + 2 * plan.lateness_rounds * plan.lateness_sessions.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Percentiles;

    fn run(route: &'static str, round: usize, p99: f64) -> LatenessRun {
        LatenessRun {
            route,
            round,
            sessions: 200,
            lateness_ms: Some(Percentiles {
                p50: 1.0,
                p95: p99,
                p99,
                max: p99,
                count: 200,
            }),
            ended_57p05: 200,
            ended_otherwise: 0,
            not_ended: 0,
            stalled: 0,
            early: 0,
        }
    }

    #[test]
    fn the_lateness_ratio_is_between_the_routes_median_p99s_not_one_rounds() {
        let report = GatewayReport {
            machine: Machine {
                cpu: "test".to_owned(),
                cores: 2,
            },
            postgres: "15".to_owned(),
            pgbouncer: "1.18".to_owned(),
            quick: false,
            rounds: 3,
            round_seconds: 3,
            clients: 8,
            threads: 2,
            scale: 1,
            gateway_workers: None,
            throughput: Vec::new(),
            idle_memory: Vec::new(),
            lateness_limit_seconds: 3.0,
            // One round where the gateway's tail was an outlier.
            lateness: vec![
                run(GATEWAY_ROUTE, 1, 90.0),
                run(NATIVE_ROUTE, 1, 40.0),
                run(NATIVE_ROUTE, 2, 30.0),
                run(GATEWAY_ROUTE, 2, 30.0),
                run(GATEWAY_ROUTE, 3, 35.0),
                run(NATIVE_ROUTE, 3, 50.0),
            ],
        };
        assert_eq!(report.lateness_p99(200, GATEWAY_ROUTE), Some(35.0));
        assert_eq!(report.lateness_p99(200, NATIVE_ROUTE), Some(40.0));
        assert_eq!(report.lateness_ratio(200), Some(35.0 / 40.0));
        assert_eq!(report.lateness_ratio(1000), None);
    }
}
