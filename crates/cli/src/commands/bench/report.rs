//! The benchmark's figures: a readable table, and the same as JSON to compare across commits.

use std::fmt::Write as _;

use super::measure::Percentiles;

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) postgres: String,
    pub(crate) quick: bool,
    /// The idle limit used, in seconds.
    pub(crate) limit_s: f64,
    /// The agent's discovery interval.
    pub(crate) interval: String,
    pub(crate) runs: Vec<Run>,
    pub(crate) engine: Vec<EngineRun>,
}

/// Where the figures come from.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
}

/// One number of concurrent sessions.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Run {
    pub(crate) sessions: usize,
    pub(crate) curfew: Curfew,
    pub(crate) native: Native,
    pub(crate) cron_1m: Cron,
}

/// curfew's figures.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Curfew {
    pub(crate) lateness_ms: Option<Percentiles>,
    pub(crate) snapshots_per_s: f64,
    pub(crate) cpu_percent: f64,
    /// The smallest CPU share the measurement can see (one clock tick over the window).
    pub(crate) cpu_resolution_percent: f64,
    pub(crate) cpu_seconds_per_minute: f64,
    pub(crate) peak_rss_mib: f64,
    pub(crate) server_cpu_percent: f64,
    pub(crate) server_ms_per_snapshot: f64,
    pub(crate) wrong_terminations: usize,
    pub(crate) missed_terminations: usize,
}

/// PostgreSQL's own `idle_session_timeout`, same load.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Native {
    pub(crate) lateness_ms: Option<Percentiles>,
    pub(crate) missed_terminations: usize,
}

/// A one-minute cron sweep, computed from curfew's deadlines.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Cron {
    pub(crate) lateness_ms: Option<Percentiles>,
    pub(crate) method: &'static str,
}

/// Engine evaluation time.
#[derive(Debug, serde::Serialize)]
pub(crate) struct EngineRun {
    pub(crate) sessions: usize,
    pub(crate) eval_ms: f64,
}

fn pct(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("{:.1} / {:.1} / {:.1} / {:.1}", p.p50, p.p95, p.p99, p.max),
        None => "-".to_owned(),
    }
}

impl Report {
    /// The table people read.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "curfew bench: PostgreSQL {} on {} ({} cores); idle limit {}s, interval {}{}\n",
            self.postgres,
            self.machine.cpu,
            self.machine.cores,
            self.limit_s,
            self.interval,
            if self.quick { "; --quick" } else { "" }
        );
        let _ = writeln!(
            out,
            "Lateness, from each deadline to the client seeing its connection end (ms, p50 / p95 / p99 / max):"
        );
        let rows: Vec<Vec<String>> = self
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
        let rows: Vec<Vec<String>> = self
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
        if !self.engine.is_empty() {
            let _ = writeln!(out, "\nEngine (ten-rule policy, one core):");
            for e in &self.engine {
                let _ = writeln!(out, "  {:>7} sessions: {:.2} ms", e.sessions, e.eval_ms);
            }
        }
        out
    }
}
