//! The benchmark's figures (serialized as JSON to compare across commits; the binary prints
//! them as a table).

use crate::measure::Percentiles;

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The machine it ran on.
    pub machine: Machine,
    /// The PostgreSQL server's version.
    pub postgres: String,
    /// Whether it was the short run (`--quick`).
    pub quick: bool,
    /// The idle limit used, in seconds.
    pub limit_s: f64,
    /// The agent's discovery interval.
    pub interval: String,
    /// One run per number of concurrent sessions.
    pub runs: Vec<Run>,
    /// The engine alone, per number of sessions.
    pub engine: Vec<EngineRun>,
}

/// Where the figures come from.
#[derive(Debug, serde::Serialize)]
pub struct Machine {
    /// The CPU model.
    pub cpu: String,
    /// The cores available to this process.
    pub cores: usize,
}

/// One number of concurrent sessions.
#[derive(Debug, serde::Serialize)]
pub struct Run {
    /// How many sessions.
    pub sessions: usize,
    /// curfew's figures.
    pub curfew: Curfew,
    /// PostgreSQL's `idle_session_timeout`, same load.
    pub native: Native,
    /// A one-minute cron sweep, computed.
    pub cron_1m: Cron,
}

/// curfew's figures.
#[derive(Debug, serde::Serialize)]
pub struct Curfew {
    /// Lateness from deadline to the end the client saw.
    pub lateness_ms: Option<Percentiles>,
    /// Snapshots the agent took per second.
    pub snapshots_per_s: f64,
    /// The agent's CPU share.
    pub cpu_percent: f64,
    /// The smallest CPU share the measurement can see (one clock tick over the window).
    pub cpu_resolution_percent: f64,
    /// The agent's CPU seconds per minute.
    pub cpu_seconds_per_minute: f64,
    /// The agent's peak resident memory.
    pub peak_rss_mib: f64,
    /// The CPU share of the agent's server process.
    pub server_cpu_percent: f64,
    /// Server CPU per snapshot.
    pub server_ms_per_snapshot: f64,
    /// Sessions ended that should not have been.
    pub wrong_terminations: usize,
    /// Sessions due that were not ended.
    pub missed_terminations: usize,
}

/// PostgreSQL's own `idle_session_timeout`, same load.
#[derive(Debug, serde::Serialize)]
pub struct Native {
    /// Lateness from deadline to the end the client saw.
    pub lateness_ms: Option<Percentiles>,
    /// Sessions due that were not ended.
    pub missed_terminations: usize,
}

/// A one-minute cron sweep, computed from curfew's deadlines.
#[derive(Debug, serde::Serialize)]
pub struct Cron {
    /// Lateness from deadline to the end the client saw.
    pub lateness_ms: Option<Percentiles>,
    /// How the figures were computed.
    pub method: &'static str,
}

/// Engine evaluation time.
#[derive(Debug, serde::Serialize)]
pub struct EngineRun {
    /// How many sessions.
    pub sessions: usize,
    /// The engine's evaluation time (median of 5).
    pub eval_ms: f64,
}
