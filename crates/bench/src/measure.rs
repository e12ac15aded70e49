//! What the benchmark reads and computes: process CPU and memory from /proc, percentiles, and
//! the lateness a one-minute cron sweep would have.

use jiff::Timestamp;

/// p50/p95/p99/max of a set of lateness samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples.
    pub count: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles (None when there is no sample).
    pub(crate) fn of(samples: &[f64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Some(Percentiles {
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
            count: sorted.len(),
        })
    }
}

/// Milliseconds from `deadline` to `at`.
pub(crate) fn late_ms(deadline: Timestamp, at: Timestamp) -> f64 {
    at.duration_since(deadline).as_secs_f64() * 1e3
}

/// The lateness a sweep every minute would have for `count` deadlines: each session ends at
/// the sweep after its deadline, and with the sweep's phase unrelated to the deadlines that wait
/// is spread evenly over the minute, (i + 0.5) / count of 60 s for the i-th.
pub(crate) fn cron_ms(count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| 60_000.0 * (i as f64 + 0.5) / count as f64)
        .collect()
}

/// CPU time a process has used, in seconds: the sum of its threads' /proc/PID/task/*/schedstat
/// (nanoseconds; /proc/PID/schedstat alone covers only the main thread, and the agent works on
/// its runtime's threads) where the kernel keeps them, else /proc/PID/stat (10 ms ticks).
pub(crate) fn cpu_seconds(pid: u32, ticks_per_second: f64) -> Option<f64> {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let nanos: f64 = threads
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    // Zero means the kernel keeps no scheduler statistics (a running process has used some).
    if nanos > 0.0 {
        return Some(nanos / 1e9);
    }
    stat_cpu_seconds(pid, ticks_per_second)
}

fn stat_cpu_seconds(pid: u32, ticks_per_second: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

/// The smallest CPU time `cpu_seconds` can tell apart, in seconds: a nanosecond with
/// scheduler statistics, a clock tick without.
pub(crate) fn cpu_resolution(ticks_per_second: f64) -> f64 {
    let schedstat = std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .is_some_and(|ns| ns > 0.0);
    if schedstat {
        1e-9
    } else {
        1.0 / ticks_per_second
    }
}

/// The peak resident memory of a process (VmHWM), in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Clock ticks per second for /proc CPU times (`getconf CLK_TCK`; 100 on Linux in practice).
pub(crate) fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// How many files this process may open (the soft limit), raised first towards `wanted` as far
/// as the hard limit allows. The agent and the server's processes inherit it.
pub fn open_file_limit(wanted: u64) -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    if current < wanted {
        // Raise the soft limit towards the hard one, as a server would: no privilege needed.
        limit.current = Some(limit.maximum.map_or(wanted, |max| max.min(wanted)));
        if setrlimit(Resource::Nofile, limit).is_ok() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    Some(current)
}

/// The CPU model, for the report.
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert_eq!(
            (p.p50, p.p95, p.p99, p.max, p.count),
            (50.0, 95.0, 99.0, 100.0, 100)
        );
        let one = Percentiles::of(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn a_minute_sweep_waits_half_a_minute_on_average() {
        let cron = Percentiles::of(&cron_ms(1000)).unwrap();
        assert_eq!(cron.p50, 29_970.0);
        assert_eq!(cron.p99, 59_370.0);
        assert!(cron.max < 60_000.0);
    }

    #[test]
    fn this_process_is_measurable() {
        let me = std::process::id();
        assert!(cpu_seconds(me, ticks_per_second()).is_some());
        assert!(peak_rss_mib(me).unwrap() > 0.0);
        assert!(open_file_limit(64).unwrap() >= 64);
    }
}
