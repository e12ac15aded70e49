//! pgbench runs: the command line for one configuration and the tps it reports.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::error::BenchError;

/// pgbench's clients (`-c`) in every round.
pub const CLIENTS: u32 = 8;
/// pgbench's threads (`-j`) in every round.
pub const THREADS: u32 = 2;

/// The pgbench workload of a round: `-S` in one of its query modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// `-S`: the simple query protocol.
    Simple,
    /// `-S -M extended`: the extended query protocol.
    Extended,
    /// `-S -C`: a new connection (and SCRAM login) per transaction.
    Connect,
}

impl Workload {
    /// Every workload, in the order the report shows them.
    pub const ALL: [Workload; 3] = [Workload::Simple, Workload::Extended, Workload::Connect];

    /// pgbench's options for it.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Workload::Simple => &["-S"],
            Workload::Extended => &["-S", "-M", "extended"],
            Workload::Connect => &["-S", "-C"],
        }
    }
}

/// Where pgbench connects for one round.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint<'a> {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The role and its password.
    pub user: &'a str,
    pub password: &'a str,
    /// The database.
    pub database: &'a str,
    /// TLS on the client leg (`sslmode=require`) or not (`disable`).
    pub tls: bool,
}

/// What one pgbench round reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RoundResult {
    /// Transactions per second.
    pub tps: f64,
    /// Transactions processed (what a proxy's CPU time is divided by).
    pub transactions: u64,
}

/// Run one round of `workload` for `length` against `endpoint`; its tps and transactions.
pub(crate) fn round(
    pgbench: &Path,
    workload: Workload,
    length: Duration,
    endpoint: &Endpoint<'_>,
) -> Result<RoundResult, BenchError> {
    let output = Command::new(pgbench)
        .arg("-n")
        .args(workload.options())
        .args(["-c", &CLIENTS.to_string(), "-j", &THREADS.to_string()])
        .args(["-T", &length.as_secs().max(1).to_string()])
        .args(["-h", "127.0.0.1", "-p", &endpoint.port.to_string()])
        .args(["-U", endpoint.user, endpoint.database])
        .env("PGPASSWORD", endpoint.password)
        .env(
            "PGSSLMODE",
            if endpoint.tls { "require" } else { "disable" },
        )
        .env_remove("PGSERVICE")
        .output()
        .map_err(|source| BenchError::IoDoing {
            what: format!("running {}", pgbench.display()),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (output.status.success(), tps(&stdout), transactions(&stdout)) {
        (true, Some(tps), Some(transactions)) => Ok(RoundResult { tps, transactions }),
        _ => Err(BenchError::Pgbench {
            what: format!(
                "pgbench {} on port {}",
                workload.options().join(" "),
                endpoint.port
            ),
            output: format!("{stdout}{stderr}"),
        }),
    }
}

/// The tps pgbench reports: its first `tps = N (...)` line.
pub(crate) fn tps(output: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix("tps = ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| n.is_finite())
    })
}

/// The transactions pgbench reports: `number of transactions actually processed: N`.
pub(crate) fn transactions(output: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix("number of transactions actually processed: ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
    })
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tps_of_pgbench_15() {
        let out = "latency average = 0.321 ms\ninitial connection time = 12.5 ms\ntps = 24890.123456 (without initial connection time)\n";
        assert_eq!(tps(out), Some(24890.123456));
        let connect = "tps = 310.5 (including reconnection times)\n";
        assert_eq!(tps(connect), Some(310.5));
        assert_eq!(tps("pgbench: error: connection failed\n"), None);
        assert_eq!(tps("tps = NaN (x)\n"), None);
    }

    #[test]
    fn reads_the_transactions_of_pgbench_15() {
        let out = "number of clients: 8\nnumber of transactions actually processed: 73210\n";
        assert_eq!(transactions(out), Some(73210));
        // With -t, pgbench adds the planned count.
        let planned = "number of transactions actually processed: 800/800\n";
        assert_eq!(transactions(planned), Some(800));
        assert_eq!(transactions("tps = 1.0 (x)\n"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn workloads_use_pgbench_options() {
        assert_eq!(Workload::Extended.options(), ["-S", "-M", "extended"]);
        assert_eq!(Workload::Connect.options(), ["-S", "-C"]);
    }
}
