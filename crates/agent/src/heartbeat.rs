//! Continuity evidence: a compact `heartbeat` record per target every `[agent] heartbeat` and
//! at every change of state, so that a report can show when each target was enforced and why
//! it was not. A heartbeat is written after the round's actions, never before them, so it
//! never delays enforcement.
//!
//! Detail keys: `state` (see [`State::word`]), `why` (for every state but `enforcing`),
//! `interval_ms` (the heartbeat interval, so a reader knows how long a silence may be) and
//! `clock_offset_ms` (the database server's clock minus the agent host's at the last snapshot).

use std::sync::Arc;
use std::time::Duration;

use curfew_audit::details::Heartbeat as HeartbeatDetail;
use curfew_audit::{Event, Record};
use jiff::Timestamp;
use tokio::time::Instant;

use crate::records::{about, write, write_all};
use crate::shared::Shared;

/// What a target's worker is doing about enforcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// This agent leads the target and enforces the policy.
    Enforcing,
    /// Another agent leads and enforces this policy (or, for a standby, leads its primary):
    /// who, in words.
    StandingBy(String),
    /// Nobody enforces this policy on the target: why.
    NotEnforced(String),
    /// The server cannot be reached: the connection error.
    Unreachable(String),
    /// This agent runs a dry run: it ends nothing.
    DryRun,
    /// The audit log cannot be written, so this agent does not lead.
    AuditUnwritable(String),
    /// The worker stopped (the agent stops, or the target left the policy).
    Stopped(String),
}

impl State {
    /// The word in `detail.state`.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            State::Enforcing => "enforcing",
            State::StandingBy(_) => "standing_by",
            State::NotEnforced(_) => "not_enforced",
            State::Unreachable(_) => "unreachable",
            State::DryRun => "dry_run",
            State::AuditUnwritable(_) => "audit_unwritable",
            State::Stopped(_) => "stopped",
        }
    }

    /// Why, in words (`None` while enforcing).
    pub(crate) fn why(&self) -> Option<&str> {
        match self {
            State::Enforcing => None,
            State::DryRun => {
                Some("this agent runs a dry run: it records what it would end and ends nothing")
            }
            State::StandingBy(why)
            | State::NotEnforced(why)
            | State::Unreachable(why)
            | State::AuditUnwritable(why)
            | State::Stopped(why) => Some(why),
        }
    }
}

/// The database server's clock minus the agent host's, in milliseconds, for a snapshot whose
/// request was sent at `sent` and whose reply arrived at `received` (agent clock), and that
/// the server stamped `server`. The agent's reading is the midpoint of the round trip: the
/// server's stamp falls somewhere inside it, so the error is at most half the round trip.
pub(crate) fn clock_offset_ms(sent: Timestamp, received: Timestamp, server: Timestamp) -> i64 {
    let half = received.duration_since(sent) / 2;
    let midpoint = sent.checked_add(half).unwrap_or(sent);
    i64::try_from(server.duration_since(midpoint).as_millis()).unwrap_or(i64::MAX)
}

/// One target's heartbeat: what was said last and when.
pub(crate) struct Heartbeat {
    shared: Arc<Shared>,
    target: String,
    said: Option<State>,
    at: Option<Instant>,
    offset_ms: Option<i64>,
    /// Since when heartbeats could not be written (agent clock), and in what state.
    unwritable_since: Option<Timestamp>,
}

impl Heartbeat {
    pub(crate) fn new(shared: Arc<Shared>, target: &str) -> Self {
        Self {
            shared,
            target: target.to_owned(),
            said: None,
            at: None,
            offset_ms: None,
            unwritable_since: None,
        }
    }

    /// Note the clock offset measured at the last snapshot.
    pub(crate) fn offset(&mut self, offset_ms: i64) {
        self.offset_ms = Some(offset_ms);
    }

    /// Record `state` if it changed or the interval has passed since the last heartbeat.
    pub(crate) async fn beat(&mut self, state: State, interval: Duration) {
        // A tenth early: rounds come about one interval apart, and a round a hair early must
        // not push the heartbeat to the round after.
        let due = self
            .at
            .is_none_or(|at| at.elapsed() + interval / 10 >= interval);
        if !due && self.said.as_ref() == Some(&state) {
            return;
        }
        if let State::AuditUnwritable(_) = &state {
            // Writing would fail (and log the failure each round): note since when, and say
            // it once records can be written again.
            self.unwritable_since.get_or_insert_with(Timestamp::now);
            self.said = Some(state);
            self.at = Some(Instant::now());
            return;
        }
        let mut records = Vec::with_capacity(2);
        if let Some(since) = self.unwritable_since {
            let why = format!(
                "the audit log could not be written from {since} until now; this agent did not lead meanwhile"
            );
            let detail = HeartbeatDetail {
                since: Some(since),
                ..heartbeat_detail(&State::AuditUnwritable(why), interval, self.offset_ms)
            };
            records.push(about(Event::Heartbeat, &self.target).with_details(&detail));
        }
        records.push(self.record(&state, interval));
        let written = if records.len() == 1 {
            write(&self.shared, records.remove(0)).await.map(|_| ())
        } else {
            write_all(&self.shared, records).await.map(|_| ())
        };
        match written {
            Ok(()) => self.unwritable_since = None,
            Err(_) => {
                self.unwritable_since.get_or_insert_with(Timestamp::now);
            }
        }
        self.said = Some(state);
        self.at = Some(Instant::now());
    }

    /// The record for `state`.
    fn record(&self, state: &State, interval: Duration) -> Record {
        heartbeat_record(&self.target, state, interval, self.offset_ms)
    }
}

/// A heartbeat record for a target (also written by the supervisor at stop).
pub(crate) fn heartbeat_record(
    target: &str,
    state: &State,
    interval: Duration,
    offset_ms: Option<i64>,
) -> Record {
    about(Event::Heartbeat, target).with_details(&heartbeat_detail(state, interval, offset_ms))
}

/// What a heartbeat record says about `state`.
fn heartbeat_detail(state: &State, interval: Duration, offset_ms: Option<i64>) -> HeartbeatDetail {
    HeartbeatDetail {
        state: state.word().to_owned(),
        interval_ms: Some(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX)),
        why: state.why().map(str::to_owned),
        clock_offset_ms: offset_ms,
        since: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_at_the_midpoint_of_the_round_trip() {
        let sent: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let received: Timestamp = "2026-01-01T00:00:00.100Z".parse().unwrap();
        // The server stamped 250 ms after the midpoint (50 ms).
        let server: Timestamp = "2026-01-01T00:00:00.300Z".parse().unwrap();
        assert_eq!(clock_offset_ms(sent, received, server), 250);
        let behind: Timestamp = "2025-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(clock_offset_ms(sent, received, behind), -1050);
    }

    /// A heartbeat the log could not take is said once the log takes records again: an
    /// `audit_unwritable` record with since when, then the state, in one batch.
    #[tokio::test]
    async fn an_unwritable_log_is_said_once_records_can_be_written() {
        let dir = curfew_testkit::TempDir::new("heartbeat", "unwritable");
        let path = dir.join("audit.jsonl");
        let audit = curfew_audit::AuditLog::open(&path).unwrap();
        let shared = Arc::new(Shared::new(audit, crate::AgentOptions::default()));
        let mut beat = Heartbeat::new(shared, "db");
        let every = Duration::from_secs(60);
        beat.beat(State::Enforcing, every).await;
        beat.beat(State::Enforcing, every).await; // not due, unchanged: nothing written
        beat.beat(State::AuditUnwritable("disk full".to_owned()), every)
            .await;
        beat.offset(7);
        beat.beat(State::Enforcing, every).await;
        let records: Vec<_> = curfew_audit::read(&path)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let states: Vec<_> = records
            .iter()
            .map(|r| {
                r.detail.as_ref().unwrap()["state"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(states, ["enforcing", "audit_unwritable", "enforcing"]);
        let unwritable = records[1].detail.as_ref().unwrap();
        let since: Timestamp = unwritable["since"].as_str().unwrap().parse().unwrap();
        assert!(since >= records[0].ts && since <= records[1].ts);
        assert_eq!(records[2].detail.as_ref().unwrap()["clock_offset_ms"], 7);
    }

    #[test]
    fn a_heartbeat_is_compact_and_says_why() {
        let record = heartbeat_record(
            "primary",
            &State::Unreachable("connection refused".to_owned()),
            Duration::from_secs(60),
            Some(-3),
        );
        assert_eq!(record.event, Event::Heartbeat);
        assert!(record.session.is_none());
        let detail = record.detail.unwrap();
        assert_eq!(detail["state"], "unreachable");
        assert_eq!(detail["why"], "connection refused");
        assert_eq!(detail["interval_ms"], 60_000);
        assert_eq!(detail["clock_offset_ms"], -3);
        let enforcing = heartbeat_record("p", &State::Enforcing, Duration::from_secs(1), None);
        let detail = enforcing.detail.unwrap();
        assert!(detail.get("why").is_none());
        assert!(detail.get("clock_offset_ms").is_none());
    }
}
