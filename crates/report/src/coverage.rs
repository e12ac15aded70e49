//! Continuity: when each target was enforced, from the agent's heartbeats and the records
//! around them (`agent_started`, `agent_stopped`, `leader_*`, `worker_failed`,
//! `audit_resumed`). Every stretch of time not enforced is a gap, with its cause and duration.
//!
//! A target counts as enforced while the last word about it is `enforcing` (the agent that
//! wrote this log leads and enforces), and only as long as records keep coming. `standing_by`
//! (another agent leads and says it enforces this policy) is not counted: this log does not
//! show that agent's enforcement, its own log must (and the claim comes from a lock holder's
//! announcement, which the holder chose); it is a gap whose cause says so. Records must keep
//! coming: a silence longer than [`SILENCE_FACTOR`] heartbeat intervals
//! is a gap from the last record on ("no record from any agent: stopped or crashed"), since
//! nothing shows enforcement went on. Conservative by design: coverage is claimed only as far
//! as the log proves it.

use std::collections::BTreeSet;

use curfew_audit::Entry;
use curfew_audit::details::{AuditResumption, Heartbeat};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// A silence longer than this many heartbeat intervals is a gap.
pub const SILENCE_FACTOR: f64 = 2.5;
/// The heartbeat interval assumed before any heartbeat says otherwise (the default).
const DEFAULT_INTERVAL_MS: i64 = 60_000;

/// Coverage of every target over the period.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Heartbeat records in the whole log (0: the agent recorded none, and the timeline
    /// rests on the other records alone).
    pub heartbeats: u64,
    /// Per target, by name.
    pub targets: Vec<TargetCoverage>,
}

/// One target's coverage.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCoverage {
    /// The target's name.
    pub target: String,
    /// Milliseconds of the period the target was enforced.
    pub enforced_ms: i64,
    /// Milliseconds in the period.
    pub period_ms: i64,
    /// `enforced_ms / period_ms` in percent (100 for an empty period).
    pub share_percent: f64,
    /// The timeline: consecutive segments from the period's start to its end.
    pub segments: Vec<Segment>,
    /// The stretches not enforced, oldest first (adjacent segments not enforced merged into
    /// one gap, named after the longest).
    pub gaps: Vec<Gap>,
    /// The database server's clock minus the agent's, largest in magnitude over the period's
    /// heartbeats (`None`: no heartbeat measured it).
    pub max_clock_offset_ms: Option<i64>,
    /// The heartbeat interval last recorded, in milliseconds.
    pub heartbeat_interval_ms: i64,
}

/// One stretch of the timeline in one state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Start (included).
    pub from: Timestamp,
    /// End (excluded).
    pub to: Timestamp,
    /// Whether the target was enforced.
    pub enforced: bool,
    /// The state: `enforcing`, `standing_by`, or a gap's cause (see [`Gap::cause`]).
    pub state: String,
    /// Why, in words (empty while enforcing).
    pub why: String,
}

/// A stretch of time the target was not enforced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    /// Start.
    pub from: Timestamp,
    /// End.
    pub to: Timestamp,
    /// How long, in milliseconds.
    pub duration_ms: i64,
    /// `agent_stopped`, `silence`, `unreachable`, `not_enforced`, `dry_run`, `worker_failed`,
    /// `audit_unwritable`, `leadership_lost`, `starting` or `no_record`.
    pub cause: String,
    /// The cause in words, with what the records said.
    pub why: String,
}

/// What a record says about a target.
#[derive(Debug, Clone, PartialEq)]
struct Said {
    enforced: bool,
    state: String,
    why: String,
}

impl Said {
    fn new(enforced: bool, state: &str, why: impl Into<String>) -> Said {
        Said {
            enforced,
            state: state.to_owned(),
            why: why.into(),
        }
    }
}

/// The cause words of a heartbeat's `state`, and whether it is enforced.
fn from_heartbeat(state: &str, why: &str) -> Said {
    let with = |label: &str| {
        if why.is_empty() {
            label.to_owned()
        } else {
            format!("{label}: {why}")
        }
    };
    match state {
        "enforcing" => Said::new(true, "enforcing", ""),
        "standing_by" => Said::new(
            false,
            "standing_by",
            with("standing by behind another agent, whose own log must show the enforcement"),
        ),
        "unreachable" => Said::new(
            false,
            "unreachable",
            with("the server could not be reached"),
        ),
        "dry_run" => Said::new(false, "dry_run", with("dry run")),
        "audit_unwritable" => Said::new(
            false,
            "audit_unwritable",
            with("the audit log could not be written"),
        ),
        "stopped" if why.is_empty() => Said::new(false, "agent_stopped", "the agent stopped"),
        "stopped" => Said::new(false, "agent_stopped", why),
        other => Said::new(
            false,
            "not_enforced",
            with(&format!("not enforced ({other})")),
        ),
    }
}

/// Build the coverage of `targets` (and of every target a record names) over `[from, to)`.
/// `entries` is the whole log: records before `from` give the state at the start.
pub fn coverage(entries: &[Entry], targets: &[String], from: Timestamp, to: Timestamp) -> Coverage {
    let mut names: BTreeSet<String> = targets.iter().cloned().collect();
    let mut heartbeats = 0;
    for e in entries {
        if e.event == "heartbeat" {
            heartbeats += 1;
        }
        if is_continuity(&e.event)
            && let Some(t) = &e.target
        {
            names.insert(t.clone());
        }
    }
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.ts, e.seq));
    Coverage {
        heartbeats,
        targets: names
            .into_iter()
            .map(|t| target_coverage(&sorted, &t, from, to))
            .collect(),
    }
}

fn is_continuity(event: &str) -> bool {
    matches!(
        event,
        "heartbeat" | "leader_acquired" | "leader_lost" | "worker_failed"
    )
}

/// One target's timeline.
fn target_coverage(
    sorted: &[&Entry],
    target: &str,
    from: Timestamp,
    to: Timestamp,
) -> TargetCoverage {
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    // The state changes, in time order, and stretches laid over them afterwards.
    let mut changes: Vec<(Timestamp, Said)> = Vec::new();
    let mut overlays: Vec<(Timestamp, Timestamp, Said)> = Vec::new();
    let mut last_alive: Option<Timestamp> = None;
    let mut max_offset: Option<i64> = None;
    let silence = |interval_ms: i64| {
        SignedDuration::from_millis((interval_ms as f64 * SILENCE_FACTOR) as i64)
    };
    let silent_why = "no record from any agent: stopped or crashed";
    for e in sorted {
        let ours = e.target.as_deref() == Some(target);
        let global = e.target.is_none();
        let said = match (e.event.as_str(), ours, global) {
            ("heartbeat", true, _) => {
                // A heartbeat without a readable detail says nothing but that it came.
                let beat = e.details::<Heartbeat>().unwrap_or_default();
                if let Some(ms) = beat.interval_ms.and_then(|ms| i64::try_from(ms).ok())
                    && ms > 0
                {
                    interval_ms = ms;
                }
                if let Some(offset) = beat.clock_offset_ms
                    && e.ts >= from
                    && e.ts <= to
                    && max_offset.is_none_or(|m: i64| offset.abs() > m.abs())
                {
                    max_offset = Some(offset);
                }
                let said = from_heartbeat(&beat.state, beat.why.as_deref().unwrap_or_default());
                if beat.state == "audit_unwritable"
                    && let Some(since) = beat.since
                {
                    overlays.push((since, e.ts, said));
                    None
                } else {
                    Some(said)
                }
            }
            ("agent_stopped", _, true) => Some(Said::new(
                false,
                "agent_stopped",
                "the agent stopped (agent_stopped)",
            )),
            ("agent_started", _, true) => {
                // After a stop the gap goes on until the new agent says what it does; after
                // anything else, the new agent is starting.
                match changes.last() {
                    Some((_, s)) if s.state == "agent_stopped" => None,
                    _ => Some(Said::new(false, "starting", "the agent was starting")),
                }
            }
            ("worker_failed", true, _) => Some(Said::new(
                false,
                "worker_failed",
                format!(
                    "worker failure: {}",
                    e.reason.as_deref().unwrap_or("the worker failed")
                ),
            )),
            ("leader_lost", true, _) => Some(Said::new(
                false,
                "leadership_lost",
                format!(
                    "this agent stopped leading: {}",
                    e.reason.as_deref().unwrap_or("leadership lost")
                ),
            )),
            ("leader_acquired", true, _) => Some(Said::new(true, "enforcing", "")),
            ("audit_resumed", _, true) => {
                let resumed = e.details::<AuditResumption>().unwrap_or_default();
                if let Some(since) = resumed.since {
                    let error = resumed.error.unwrap_or_default();
                    overlays.push((
                        since,
                        e.ts,
                        Said::new(
                            false,
                            "audit_unwritable",
                            format!(
                                "the audit log could not be written ({error}); no action was taken"
                            ),
                        ),
                    ));
                }
                None
            }
            // Other records (sessions ended, runs of `check` or `verify`, which a command
            // writes while no agent may run) say nothing about continuity.
            _ => continue,
        };
        // A silence before this record: nothing shows what happened meanwhile.
        if let Some(alive) = last_alive
            && e.ts.duration_since(alive) > silence(interval_ms)
            && changes
                .last()
                .is_some_and(|(_, s)| s.state != "agent_stopped")
        {
            changes.push((alive, Said::new(false, "silence", silent_why)));
        }
        last_alive = Some(e.ts);
        // The same state said again keeps its first words (a `stopped` heartbeat says more
        // than the `agent_stopped` record after it).
        if let Some(said) = said
            && changes
                .last()
                .is_none_or(|(_, last)| last.state != said.state)
        {
            changes.push((e.ts, said));
        }
    }
    if let Some(alive) = last_alive
        && to.duration_since(alive) > silence(interval_ms)
        && changes
            .last()
            .is_some_and(|(_, s)| s.state != "agent_stopped")
    {
        changes.push((alive, Said::new(false, "silence", silent_why)));
    }
    let mut segments = segments_of(&changes, from, to);
    for (start, end, said) in overlays {
        segments = overlay(segments, start.max(from), end.min(to), &said);
    }
    let segments = merge(segments);
    let period_ms = to.duration_since(from).as_millis().max(0) as i64;
    let enforced_ms: i64 = segments
        .iter()
        .filter(|s| s.enforced)
        .map(|s| s.to.duration_since(s.from).as_millis() as i64)
        .sum();
    let gaps = gaps_of(&segments);
    TargetCoverage {
        target: target.to_owned(),
        enforced_ms,
        period_ms,
        share_percent: if period_ms == 0 {
            100.0
        } else {
            enforced_ms as f64 * 100.0 / period_ms as f64
        },
        segments,
        gaps,
        max_clock_offset_ms: max_offset,
        heartbeat_interval_ms: interval_ms,
    }
}

/// Adjacent stretches not enforced, one of them shorter than this, are one gap.
const ABSORB: SignedDuration = SignedDuration::from_secs(1);

/// The gaps: adjacent segments not enforced are one gap when one of them is shorter than
/// [`ABSORB`] (a stop is preceded by a few milliseconds of "leadership lost": one gap, the
/// stop), named after its longest segment.
fn gaps_of(segments: &[Segment]) -> Vec<Gap> {
    let length = |s: &Segment| s.to.duration_since(s.from);
    let mut gaps: Vec<Gap> = Vec::new();
    let mut longest = SignedDuration::ZERO;
    let mut previous_end: Option<Timestamp> = None;
    for s in segments {
        if s.enforced {
            previous_end = None;
            continue;
        }
        match gaps.last_mut() {
            Some(gap)
                if previous_end == Some(s.from)
                    && (length(s) < ABSORB || gap.to.duration_since(gap.from) < ABSORB) =>
            {
                gap.to = s.to;
                gap.duration_ms = gap.to.duration_since(gap.from).as_millis() as i64;
                if length(s) > longest {
                    longest = length(s);
                    gap.cause.clone_from(&s.state);
                    gap.why.clone_from(&s.why);
                }
            }
            _ => {
                longest = length(s);
                gaps.push(Gap {
                    from: s.from,
                    to: s.to,
                    duration_ms: length(s).as_millis() as i64,
                    cause: s.state.clone(),
                    why: s.why.clone(),
                });
            }
        }
        previous_end = Some(s.to);
    }
    gaps
}

/// The segments between consecutive changes, clipped to `[from, to)`; before the first
/// change, `no_record`.
fn segments_of(changes: &[(Timestamp, Said)], from: Timestamp, to: Timestamp) -> Vec<Segment> {
    let mut segments = Vec::new();
    if from >= to {
        return segments;
    }
    let none = Said::new(
        false,
        "no_record",
        "no record from any agent about this target",
    );
    let mut current = (from, &none);
    for (at, said) in changes {
        if *at <= from {
            current.1 = said;
            continue;
        }
        if *at >= to {
            break;
        }
        if *at > current.0 {
            segments.push(segment(current.0, *at, current.1));
        }
        current = (*at, said);
    }
    segments.push(segment(current.0, to, current.1));
    segments
}

fn segment(from: Timestamp, to: Timestamp, said: &Said) -> Segment {
    Segment {
        from,
        to,
        enforced: said.enforced,
        state: said.state.clone(),
        why: said.why.clone(),
    }
}

/// `segments` with `[start, end)` replaced by `said`.
fn overlay(segments: Vec<Segment>, start: Timestamp, end: Timestamp, said: &Said) -> Vec<Segment> {
    if start >= end {
        return segments;
    }
    let mut out = Vec::with_capacity(segments.len() + 2);
    let mut placed = false;
    for s in segments {
        if s.to <= start || s.from >= end {
            if s.from >= end && !placed {
                out.push(segment(start, end, said));
                placed = true;
            }
            out.push(s);
            continue;
        }
        if s.from < start {
            out.push(Segment {
                to: start,
                ..s.clone()
            });
        }
        if !placed {
            out.push(segment(start, end, said));
            placed = true;
        }
        if s.to > end {
            out.push(Segment { from: end, ..s });
        }
    }
    if !placed {
        out.push(segment(start, end, said));
    }
    out
}

/// Adjacent segments of the same state merged (the first one's words kept).
fn merge(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments {
        match out.last_mut() {
            Some(last)
                if last.state == s.state && last.enforced == s.enforced && last.to == s.from =>
            {
                last.to = s.to;
            }
            _ => out.push(s),
        }
    }
    out
}
