//! `curfew bench mariadb`: how late curfew ends idle MariaDB sessions next to the server's own
//! `wait_timeout`, in one run on one throwaway server, measured the same way for both.
//!
//! N sessions stay busy (a statement every 500 ms), then go idle one after another over a
//! spread; each one's deadline is the end of its last statement (as its client saw it) plus the
//! limit. For curfew the agent runs as its own process with an idle rule; for `wait_timeout`
//! each session sets it to the limit (whole seconds: it is the server's unit) and no agent
//! runs. A monitor connection polls the process list every [`POLL`]; a session's end is the
//! first poll that no longer lists it, so both figures include up to one poll of delay.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use curfew_sandbox::{MariaDbOptions, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde::Serialize;
use tokio::sync::watch;

use crate::Progress;
use crate::agent_process::AgentProcess;
use crate::error::BenchError;
use crate::measure::Percentiles;

/// How often the monitor polls the process list.
pub const POLL: Duration = Duration::from_millis(10);

/// How often a busy session runs a statement.
const BUSY_EVERY: Duration = Duration::from_millis(500);

/// The shape of a MariaDB run.
#[derive(Debug, Clone)]
pub struct MariaDbPlan {
    /// How many idle sessions each side is measured on.
    pub sessions: usize,
    /// The idle limit, whole seconds (`wait_timeout`'s unit).
    pub limit_s: u64,
    /// How long the sessions stay busy before the first one goes idle.
    pub watch: Duration,
    /// Over how long they go idle.
    pub spread: Duration,
    /// Whether this is the short run.
    pub quick: bool,
    /// The `curfew` binary whose `agent` is measured.
    pub agent_exe: PathBuf,
}

impl MariaDbPlan {
    /// The standard run (500 sessions, 3 s), or the short one with `quick` (100 sessions, 2 s);
    /// `sessions` replaces the number of sessions.
    pub fn new(quick: bool, sessions: Option<usize>, agent_exe: PathBuf) -> MariaDbPlan {
        MariaDbPlan {
            sessions: sessions.unwrap_or(if quick { 100 } else { 500 }),
            limit_s: if quick { 2 } else { 3 },
            watch: Duration::from_secs(if quick { 2 } else { 4 }),
            spread: Duration::from_secs(if quick { 2 } else { 5 }),
            quick,
            agent_exe,
        }
    }
}

/// One side's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// How the sessions were ended.
    pub method: &'static str,
    /// Milliseconds after each session's deadline that it was gone.
    pub lateness_ms: Option<Percentiles>,
    /// Sessions still there when the run gave up on them.
    pub not_ended: usize,
    /// Sessions gone before their deadline as measured (the client sees a statement end a
    /// moment after the server does, so a native timeout can read a little early).
    pub early: usize,
    /// The earliest end relative to its deadline, milliseconds (negative: early).
    pub earliest_ms: Option<f64>,
}

/// The figures of a MariaDB run.
#[derive(Debug, Clone, Serialize)]
pub struct MariaDbReport {
    /// The server's version.
    pub server: String,
    /// The number of sessions per side.
    pub sessions: usize,
    /// The idle limit in seconds.
    pub limit_s: u64,
    /// The process list's poll interval, milliseconds (both sides' resolution).
    pub poll_ms: u64,
    /// Whether this was the short run.
    pub quick: bool,
    /// curfew's agent (interval 1 s) with an idle rule.
    pub curfew: Side,
    /// The server's `wait_timeout`, set per session.
    pub wait_timeout: Side,
}

/// Run the MariaDB benchmark on a throwaway server of its own.
pub async fn bench_mariadb(
    plan: &MariaDbPlan,
    progress: &dyn Progress,
) -> Result<MariaDbReport, BenchError> {
    progress.message("starting a MariaDB server".to_owned());
    let max = plan.sessions.saturating_add(64);
    let server = tokio::task::spawn_blocking(move || {
        MariaDbServer::start(MariaDbOptions {
            performance_schema: false,
            settings: vec![("max-connections".to_owned(), max.to_string())],
            ..MariaDbOptions::default()
        })
    })
    .await??;
    server.admin_sql(
        "CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'bench-agent';
         GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'curfew_agent'@'127.0.0.1';
         CREATE USER 'bench_idle'@'127.0.0.1';
         CREATE USER 'bench_native'@'127.0.0.1';
         CREATE USER 'bench_monitor'@'127.0.0.1';
         GRANT PROCESS ON *.* TO 'bench_monitor'@'127.0.0.1';",
    )?;
    let dir = std::env::temp_dir().join(format!("curfew-bench-mariadb-{}", std::process::id()));
    let result = run(plan, &server, &dir, progress).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    plan: &MariaDbPlan,
    server: &MariaDbServer,
    dir: &std::path::Path,
    progress: &dyn Progress,
) -> Result<MariaDbReport, BenchError> {
    std::fs::create_dir_all(dir)?;
    let password = dir.join("agent.password");
    std::fs::write(&password, "bench-agent\n")?;
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600))?;
    let policy = dir.join("curfew.toml");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n\
             [[target]]\nname = \"bench\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"{}s\"\nroles = [\"bench_idle\"]\n",
            server.url("curfew_agent", ""),
            password.display(),
            plan.limit_s
        ),
    )?;
    let mut monitor = client(server, "bench_monitor").await?;
    let version: Option<String> = monitor.query_first("SELECT VERSION()").await?;

    progress.message(format!("curfew: {} sessions", plan.sessions));
    let mut agent = AgentProcess::start(&plan.agent_exe, &policy, &dir.join("audit.jsonl"), None)?;
    agent.connected(Duration::from_secs(30)).await?;
    let curfew = measure(plan, server, &mut monitor, "bench_idle", None, progress).await?;
    agent.stop()?;

    progress.message(format!("wait_timeout: {} sessions", plan.sessions));
    let native = measure(
        plan,
        server,
        &mut monitor,
        "bench_native",
        Some(plan.limit_s),
        progress,
    )
    .await?;
    Ok(MariaDbReport {
        server: version.unwrap_or_default(),
        sessions: plan.sessions,
        limit_s: plan.limit_s,
        poll_ms: u64::try_from(POLL.as_millis()).unwrap_or(u64::MAX),
        quick: plan.quick,
        curfew: side(
            "curfew agent (interval 1s), an idle rule; KILL CONNECTION re-checked",
            &curfew,
        ),
        wait_timeout: side("the server's wait_timeout, set by each session", &native),
    })
}

/// Each session's deadline and end (`None`: still there when the run gave up).
type Ends = Vec<(Instant, Option<Instant>)>;

fn side(method: &'static str, ends: &Ends) -> Side {
    let late: Vec<f64> = ends
        .iter()
        .filter_map(|(deadline, end)| end.map(|e| signed_ms(*deadline, e)))
        .collect();
    Side {
        method,
        lateness_ms: Percentiles::of(&late),
        not_ended: ends.iter().filter(|(_, e)| e.is_none()).count(),
        early: late.iter().filter(|&&ms| ms < 0.0).count(),
        earliest_ms: late.iter().copied().reduce(f64::min),
    }
}

/// Milliseconds from `deadline` to `at`, negative when `at` is earlier.
fn signed_ms(deadline: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(deadline) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(deadline.duration_since(at).as_secs_f64() * 1e3),
    }
}

async fn client(server: &MariaDbServer, user: &str) -> Result<Conn, BenchError> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(server.host())
        .tcp_port(server.port())
        .prefer_socket(false)
        .user(Some(user));
    Ok(Conn::new(opts).await?)
}

/// Open the sessions, keep them busy, let them go idle over the spread, and watch them go.
async fn measure(
    plan: &MariaDbPlan,
    server: &MariaDbServer,
    monitor: &mut Conn,
    user: &'static str,
    wait_timeout: Option<u64>,
    progress: &dyn Progress,
) -> Result<Ends, BenchError> {
    let (go, start) = watch::channel(None::<Instant>);
    let limit = Duration::from_secs(plan.limit_s);
    let mut tasks = Vec::with_capacity(plan.sessions);
    let mut ids = Vec::with_capacity(plan.sessions);
    for i in 0..plan.sessions {
        let mut conn = client(server, user).await?;
        if let Some(seconds) = wait_timeout {
            conn.query_drop(format!("SET SESSION wait_timeout = {seconds}"))
                .await?;
        }
        ids.push(conn.id());
        progress.opened();
        let offset = plan.watch + plan.spread.mul_f64(i as f64 / plan.sessions.max(1) as f64);
        let mut start = start.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                conn.query_drop("SELECT 1").await?;
                let done = Instant::now();
                let t0 = *start.borrow_and_update();
                if let Some(t0) = t0
                    && done >= t0 + offset
                {
                    // Idle from here on; the connection is kept until the task is dropped.
                    return Ok::<_, mysql_async::Error>((done + limit, conn));
                }
                tokio::time::sleep(BUSY_EVERY).await;
            }
        }));
    }
    let t0 = Instant::now();
    let _ = go.send(Some(t0));
    // Watch the process list from now on, while sessions go idle, until every session is gone
    // or well past its deadline.
    let give_up = t0 + plan.watch + plan.spread + limit + Duration::from_secs(10);
    let mut gone: HashMap<u32, Instant> = HashMap::new();
    let sql = format!("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}'");
    while gone.len() < ids.len() && Instant::now() < give_up {
        let present: Vec<u32> = monitor.query(&sql).await?;
        let at = Instant::now();
        let present: std::collections::HashSet<u32> = present.into_iter().collect();
        for id in &ids {
            if !present.contains(id) {
                gone.entry(*id).or_insert(at);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    // The sessions (each task's result holds its connection, so none was dropped early).
    let mut deadlines = Vec::with_capacity(tasks.len());
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (deadline, conn) = task.await??;
        deadlines.push(deadline);
        conns.push(conn);
    }
    drop(conns);
    Ok(ids
        .iter()
        .zip(deadlines)
        .map(|(id, deadline)| (deadline, gone.get(id).copied()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_counts_early_and_missing_ends() {
        let t = Instant::now();
        let ends: Ends = vec![
            (t, Some(t + Duration::from_millis(30))),
            (t + Duration::from_millis(50), Some(t)),
            (t, None),
        ];
        let s = side("x", &ends);
        assert_eq!(s.not_ended, 1);
        assert_eq!(s.early, 1);
        let p = s.lateness_ms.unwrap();
        assert_eq!(p.count, 2);
        assert!((p.max - 30.0).abs() < 1.0, "{p:?}");
        assert!((s.earliest_ms.unwrap() + 50.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn the_quick_run_is_small() {
        let plan = MariaDbPlan::new(true, None, PathBuf::from("curfew"));
        assert_eq!((plan.sessions, plan.limit_s), (100, 2));
        assert_eq!(MariaDbPlan::new(false, Some(7), PathBuf::new()).sessions, 7);
    }
}
