//! The coverage computation on hand-made records: silence, stops, changes of state, overlays
//! and the period's clipping.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_audit::Entry;
use jiff::Timestamp;
use serde_json::json;

use crate::coverage::{TargetCoverage, coverage};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A record at `10:MM:SS` on 2026-03-01.
fn at(mmss: &str) -> Timestamp {
    ts(&format!("2026-03-01T10:{mmss}Z"))
}

fn record(seq: u64, mmss: &str, event: &str, target: Option<&str>) -> Entry {
    Entry {
        seq,
        ts: at(mmss),
        event: event.to_owned(),
        target: target.map(str::to_owned),
        rule: None,
        reason: None,
        session: None,
        result: None,
        intent: None,
        detail: None,
        prev: "prev".to_owned(),
        hash: format!("hash{seq}"),
    }
}

fn beat(seq: u64, mmss: &str, state: &str) -> Entry {
    let mut e = record(seq, mmss, "heartbeat", Some("db"));
    e.detail = Some(
        json!({"state": state, "why": "because", "interval_ms": 10_000, "clock_offset_ms": -(seq as i64)}),
    );
    e
}

/// Heartbeats every 10 s from `from` (inclusive) to `to` (exclusive), seconds of the hour.
fn beats(seq: &mut u64, from: u32, to: u32, state: &str) -> Vec<Entry> {
    (from..to)
        .step_by(10)
        .map(|s| {
            *seq += 1;
            beat(*seq, &format!("{:02}:{:02}", s / 60, s % 60), state)
        })
        .collect()
}

fn db(entries: &[Entry], from: &str, to: &str) -> TargetCoverage {
    let c = coverage(entries, &["db".to_owned()], at(from), at(to));
    assert_eq!(c.targets.len(), 1);
    c.targets.into_iter().next().unwrap()
}

fn gaps(t: &TargetCoverage) -> Vec<(String, i64)> {
    t.gaps
        .iter()
        .map(|g| (g.cause.clone(), g.duration_ms / 1000))
        .collect()
}

#[test]
fn steady_heartbeats_are_full_coverage() {
    let mut seq = 0;
    let entries = beats(&mut seq, 0, 600, "enforcing");
    let t = db(&entries, "00:00", "10:00");
    assert!(t.gaps.is_empty(), "{:?}", t.gaps);
    assert_eq!(t.share_percent, 100.0);
    assert_eq!(t.heartbeat_interval_ms, 10_000);
}

#[test]
fn a_silence_is_a_gap_from_the_last_record() {
    let mut seq = 0;
    let mut entries = beats(&mut seq, 0, 60, "enforcing");
    // Last beat at 00:50; nothing until 03:00 (a crash, no agent_stopped).
    entries.extend(beats(&mut seq, 180, 300, "enforcing"));
    let t = db(&entries, "00:00", "05:00");
    assert_eq!(gaps(&t), vec![("silence".to_owned(), 130)]);
    assert!(t.gaps[0].why.contains("stopped or crashed"));
    assert_eq!(t.gaps[0].from, at("00:50"));
    let share = t.share_percent;
    assert!((share - 170.0 / 3.0).abs() < 0.01, "{share}");
}

#[test]
fn a_silence_at_the_end_of_the_period_is_a_gap_too() {
    let mut seq = 0;
    let entries = beats(&mut seq, 0, 60, "enforcing");
    let t = db(&entries, "00:00", "02:00");
    assert_eq!(gaps(&t), vec![("silence".to_owned(), 70)]);
}

#[test]
fn a_stopped_agent_is_a_gap_until_it_enforces_again_not_a_silence() {
    let mut seq = 0;
    let mut entries = beats(&mut seq, 0, 60, "enforcing");
    seq += 1;
    entries.push(beat(seq, "00:55", "stopped"));
    seq += 1;
    entries.push(record(seq, "00:55", "agent_stopped", None));
    seq += 1;
    entries.push(record(seq, "02:00", "agent_started", None));
    entries.extend(beats(&mut seq, 121, 300, "enforcing"));
    let t = db(&entries, "00:00", "05:00");
    assert_eq!(gaps(&t), vec![("agent_stopped".to_owned(), 66)]);
    // The stopped heartbeat's words, not the agent_stopped record's after it.
    assert_eq!(t.gaps[0].why, "because");
}

#[test]
fn each_change_of_state_starts_a_segment_with_its_cause() {
    let mut seq = 0;
    let mut entries = beats(&mut seq, 0, 30, "enforcing");
    entries.extend(beats(&mut seq, 30, 60, "unreachable"));
    entries.extend(beats(&mut seq, 60, 90, "standing_by"));
    entries.extend(beats(&mut seq, 90, 120, "not_enforced"));
    entries.extend(beats(&mut seq, 120, 150, "dry_run"));
    entries.extend(beats(&mut seq, 150, 180, "enforcing"));
    let t = db(&entries, "00:00", "03:00");
    assert_eq!(
        gaps(&t),
        vec![
            ("unreachable".to_owned(), 30),
            ("standing_by".to_owned(), 30),
            ("not_enforced".to_owned(), 30),
            ("dry_run".to_owned(), 30)
        ]
    );
    // Standing by is not enforcement this log shows: the leader's own log must.
    assert!(
        t.gaps[1]
            .why
            .contains("whose own log must show the enforcement")
    );
    assert!(
        t.gaps[0]
            .why
            .starts_with("the server could not be reached: because")
    );
    let states: Vec<&str> = t.segments.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(
        states,
        [
            "enforcing",
            "unreachable",
            "standing_by",
            "not_enforced",
            "dry_run",
            "enforcing"
        ]
    );
    assert!((t.share_percent - 100.0 / 3.0).abs() < 0.01);
    // The offset largest in magnitude (the records' offsets are minus their seq).
    assert_eq!(t.max_clock_offset_ms, Some(-(seq as i64)));
}

#[test]
fn worker_failures_and_an_unwritable_log_are_gaps() {
    let mut seq = 0;
    let mut entries = beats(&mut seq, 0, 60, "enforcing");
    let mut failed = record(100, "00:20", "worker_failed", Some("db"));
    failed.reason = Some("a panic".to_owned());
    entries.push(failed);
    seq += 1;
    let mut resumed = record(101, "00:45", "audit_resumed", None);
    resumed.detail = Some(json!({"since": at("00:40").to_string(), "error": "disk full"}));
    entries.push(resumed);
    entries.extend(beats(&mut seq, 60, 120, "enforcing"));
    let t = db(&entries, "00:00", "02:00");
    assert_eq!(
        gaps(&t),
        vec![
            ("worker_failed".to_owned(), 10),
            ("audit_unwritable".to_owned(), 5)
        ]
    );
    assert!(t.gaps[0].why.contains("a panic"));
    assert!(t.gaps[1].why.contains("disk full"));
}

#[test]
fn the_period_is_clipped_and_the_state_at_its_start_comes_from_before() {
    let mut seq = 0;
    let mut entries = beats(&mut seq, 0, 60, "enforcing");
    entries.extend(beats(&mut seq, 60, 120, "unreachable"));
    entries.extend(beats(&mut seq, 120, 180, "enforcing"));
    // From 01:30: half a minute unreachable, then enforced.
    let t = db(&entries, "01:30", "03:00");
    assert_eq!(gaps(&t), vec![("unreachable".to_owned(), 30)]);
    assert_eq!(t.segments[0].from, at("01:30"));
    assert_eq!(t.period_ms, 90_000);
    assert!((t.share_percent - 200.0 / 3.0).abs() < 0.01);
    // Nothing recorded before the period and nothing in it: no record at all.
    let empty = db(&[], "00:00", "01:00");
    assert_eq!(gaps(&empty), vec![("no_record".to_owned(), 60)]);
    assert_eq!(empty.share_percent, 0.0);
}

#[test]
fn adjacent_stretches_not_enforced_are_one_gap_named_after_the_longest() {
    let mut seq = 0;
    let mut entries = beats(&mut seq, 0, 60, "enforcing");
    let mut lost = record(100, "00:55.500", "leader_lost", Some("db"));
    lost.reason = Some("the agent is stopping".to_owned());
    entries.push(lost);
    seq += 1;
    entries.push(beat(seq, "00:56", "stopped"));
    entries.push(record(101, "00:56", "agent_stopped", None));
    entries.push(record(102, "02:00", "agent_started", None));
    entries.extend(beats(&mut seq, 121, 180, "enforcing"));
    let t = db(&entries, "00:00", "03:00");
    assert_eq!(gaps(&t), vec![("agent_stopped".to_owned(), 65)]);
    assert_eq!(t.gaps[0].from, at("00:55.500"));
    assert_eq!(t.gaps[0].why, "because");
    // The timeline keeps both stretches.
    assert!(t.segments.iter().any(|s| s.state == "leadership_lost"));
}
