//! Engine evaluation time for 1k, 10k and 100k sessions against the ten-rule policy.
//!
//! `cargo bench -p curfew-policy --bench engine` (add `-- --quick` for fewer rounds). Reports
//! the median and the fastest of several rounds, single-threaded, plus the plan's size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use curfew_policy::{Engine, evaluate, parse_policy, synthetic};
use jiff::Timestamp;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 25 };
    // `--only N`: one size, one round (for profilers such as cachegrind).
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let policy = match parse_policy("ten-rule", synthetic::TEN_RULE_POLICY, jiff::tz::db()) {
        Ok(p) => p.policy,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // A Monday morning in New York, inside the working-hours window for some and not others.
    let now: Timestamp = "2026-11-23T15:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    println!(
        "{:>9}  {:>10}  {:>10}  {:>8}  {:>8}  {:>8}",
        "sessions", "median", "fastest", "ns/sess", "ends", "exempt"
    );
    let sizes = only.map_or(vec![1_000usize, 10_000, 100_000], |n| vec![n]);
    let rounds = if only.is_some() { 1 } else { rounds };
    for n in sizes {
        let sessions = synthetic::sessions(n, now, 42);
        if only.is_some() {
            // Exactly one evaluation (or none with --generate-only), for instruction counts.
            if !args.iter().any(|a| a == "--generate-only") {
                black_box(evaluate(&policy, &sessions, now));
            }
            return;
        }
        // One engine for all rounds, as the agent keeps one; the first round warms it up.
        let mut engine = Engine::new();
        black_box(engine.evaluate(&policy, &sessions, now));
        let mut times: Vec<Duration> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                black_box(engine.evaluate(black_box(&policy), black_box(&sessions), now));
                start.elapsed()
            })
            .collect();
        times.sort_unstable();
        let median = times[times.len() / 2];
        let plan = evaluate(&policy, &sessions, now);
        println!(
            "{:>9}  {:>8.3}ms  {:>8.3}ms  {:>8.0}  {:>8}  {:>8}",
            n,
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            median.as_nanos() as f64 / n as f64,
            plan.terminations.len(),
            plan.exempt
        );
    }
}
