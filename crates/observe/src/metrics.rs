//! The Prometheus metrics. Counters are fed by the agent's events; gauges that depend on the
//! time of the scrape (snapshot age, health) are set just before encoding.

use std::sync::atomic::AtomicU64;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use curfew_agent::{AgentEvent, TallyKey};
use curfew_audit::Event;
use curfew_policy::SessionState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    target: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    target: String,
    rule: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarnedLabels {
    target: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every state a session can report, so that a state no session is in any more reads 0.
const STATES: [SessionState; 7] = [
    SessionState::Active,
    SessionState::Idle,
    SessionState::IdleInTransaction,
    SessionState::IdleInTransactionAborted,
    SessionState::FastpathFunctionCall,
    SessionState::Disabled,
    SessionState::Unknown,
];

/// Target, rule, result.
type OutcomeKey = (String, String, String);

/// The audit events that are the outcome of ending (or reporting) a session.
fn is_termination_outcome(event: Event) -> bool {
    matches!(
        event,
        Event::SessionTerminated
            | Event::TerminationSkipped
            | Event::TerminationFailed
            | Event::SessionReported
    )
}

type Histograms = Family<TargetLabels, Histogram, fn() -> Histogram>;

/// The registry and the metrics in it.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    sessions: Family<SessionLabels, Gauge>,
    terminations: Family<OutcomeLabels, Counter>,
    records: Family<EventLabels, Counter>,
    snapshot_seconds: Histograms,
    evaluation_seconds: Histograms,
    lateness_seconds: Histograms,
    leader: Family<TargetLabels, Gauge>,
    leader_enforcing: Family<TargetLabels, Gauge>,
    connected: Family<TargetLabels, Gauge>,
    snapshot_age: Family<TargetLabels, Gauge<f64, AtomicU64>>,
    audit_failures: Counter,
    missed_events: Counter,
    healthy: Gauge,
    warned: Family<WarnedLabels, Counter>,
    policy_info: Family<PolicyLabels, Gauge>,
    /// The hash `policy_info` shows now.
    policy_sha: Mutex<String>,
    reloads: Family<ReloadLabels, Counter>,
    login_locks: Family<TargetLabels, Gauge>,
    notify_failures: Family<HookLabels, Counter>,
    notify_dropped: Counter,
    anchor_failures: Family<TargetLabels, Counter>,
    gateway_missed: Family<TargetLabels, Counter>,
    /// Targets that have per-target series, to drop those of targets a reload removed.
    targets: Mutex<BTreeSet<String>>,
}

/// Snapshot durations: 0.5 ms to about 4 s.
fn snapshot_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// Evaluation durations: 10 µs to about 0.3 s.
fn evaluation_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 2.0, 16))
}

/// Lateness (confirmed exit minus deadline): 1 ms to about 16 s.
fn lateness_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    pub(crate) fn new(dry_run: bool) -> Self {
        let mut registry = Registry::with_prefix("curfew");
        let sessions = Family::<SessionLabels, Gauge>::default();
        registry.register(
            "sessions",
            "Client sessions in the last snapshot, by target and state (targets this agent leads)",
            sessions.clone(),
        );
        let terminations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "terminations",
            "Outcome records written to the audit log, by target, rule and result (ended, no_longer_matched, not_yet_due, failed, report_only, dry_run)",
            terminations.clone(),
        );
        let records = Family::<EventLabels, Counter>::default();
        registry.register(
            "audit_records",
            "Audit records written, by event",
            records.clone(),
        );
        let snapshot_seconds: Histograms = Family::new_with_constructor(snapshot_buckets);
        registry.register_with_unit(
            "snapshot_duration",
            "Time to read a target's sessions",
            Unit::Seconds,
            snapshot_seconds.clone(),
        );
        let evaluation_seconds: Histograms = Family::new_with_constructor(evaluation_buckets);
        registry.register_with_unit(
            "evaluation_duration",
            "Time to evaluate the policy over one snapshot",
            Unit::Seconds,
            evaluation_seconds.clone(),
        );
        let lateness_seconds: Histograms = Family::new_with_constructor(lateness_buckets);
        registry.register_with_unit(
            "termination_lateness",
            "Time from a session's deadline to its confirmed exit (server clock)",
            Unit::Seconds,
            lateness_seconds.clone(),
        );
        let leader = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "leader",
            "1 while this agent leads the target (holds its leader lock), else 0",
            leader.clone(),
        );
        let leader_enforcing = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "leader_enforcing",
            "1 while a curfew agent enforcing this policy leads the target (this one or a replica), 0 while nothing does (a squatter on the leader lock, a leader in dry run or on another policy, a failed worker, no connection)",
            leader_enforcing.clone(),
        );
        let connected = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "connected",
            "1 while this agent is connected to the target, else 0",
            connected.clone(),
        );
        let snapshot_age = Family::<TargetLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "last_snapshot_age",
            "Time since the last successful snapshot of the target (only while this agent leads it)",
            Unit::Seconds,
            snapshot_age.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit writes that failed (the action each was for was not taken)",
            audit_failures.clone(),
        );
        let missed_events = Counter::default();
        registry.register(
            "observer_missed_events",
            "Agent events the metrics endpoint fell too far behind to see (counters may then be low)",
            missed_events.clone(),
        );
        let healthy = Gauge::default();
        registry.register(
            "healthy",
            "1 when /healthz would answer 200, else 0",
            healthy.clone(),
        );
        let dry_run_gauge = Gauge::<i64>::default();
        dry_run_gauge.set(i64::from(dry_run));
        registry.register(
            "dry_run",
            "1 when the agent only records what it would do (--dry-run): then nothing is ended",
            dry_run_gauge,
        );
        let warned = Family::<WarnedLabels, Counter>::default();
        registry.register(
            "sessions_warned",
            "session_warned records written, by target and rule: a session entered its rule's warning lead. Recorded for operators and passed to the notify hooks, if any; the agent cannot reach the session's user",
            warned.clone(),
        );
        let policy_info = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "policy_info",
            "1 for the SHA-256 of the policy file in force",
            policy_info.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        for result in ["applied", "rejected"] {
            // Both series from the start, so that a first reload shows as an increase.
            drop(reloads.get_or_create(&ReloadLabels {
                result: result.to_owned(),
            }));
        }
        registry.register(
            "policy_reloads",
            "Policy reloads (SIGHUP), by result: applied (a changed file now in force) or rejected (the running policy stays in force)",
            reloads.clone(),
        );
        let login_locks = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "login_locks",
            "Login locks in force on the target (window and incident locks, one per role and lock), as this agent last read its ledger",
            login_locks.clone(),
        );
        let notify_failures = Family::<HookLabels, Counter>::default();
        for hook in ["command", "webhook"] {
            drop(notify_failures.get_or_create(&HookLabels {
                hook: hook.to_owned(),
            }));
        }
        registry.register(
            "notify_failures",
            "Events a notify hook (command, webhook) did not take after every attempt",
            notify_failures.clone(),
        );
        let notify_dropped = Counter::default();
        registry.register(
            "notify_dropped",
            "Events dropped before reaching the notify hooks because their queue was full (each is still in the audit log)",
            notify_dropped.clone(),
        );
        let anchor_failures = Family::<TargetLabels, Counter>::default();
        registry.register(
            "anchor_failures",
            "Attempts to anchor the audit chain's head on a target that failed (the log is then confirmed only up to the last anchor)",
            anchor_failures.clone(),
        );
        let gateway_missed = Family::<TargetLabels, Counter>::default();
        registry.register(
            "gateway_missed",
            "Sessions curfew gateway logged in that were still there `[agent] gateway_grace` after a deadline the gateway enforces itself, so the agent ended them",
            gateway_missed.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "curfew's version", build);
        Metrics {
            registry,
            sessions,
            terminations,
            records,
            snapshot_seconds,
            evaluation_seconds,
            lateness_seconds,
            leader,
            leader_enforcing,
            connected,
            snapshot_age,
            audit_failures,
            missed_events,
            healthy,
            warned,
            policy_info,
            policy_sha: Mutex::new(String::new()),
            reloads,
            login_locks,
            notify_failures,
            notify_dropped,
            anchor_failures,
            gateway_missed,
            targets: Mutex::new(BTreeSet::new()),
        }
    }

    /// Count one event.
    pub(crate) fn apply(&self, event: &AgentEvent) {
        match event {
            AgentEvent::Connected { target, .. } => self.set(&self.connected, target, 1),
            AgentEvent::Disconnected { target, .. } => {
                self.set(&self.connected, target, 0);
                self.set(&self.leader, target, 0);
                self.set(&self.leader_enforcing, target, 0);
                self.forget_sessions(target);
            }
            AgentEvent::Enforcement { target, problem } => {
                self.set(&self.leader_enforcing, target, i64::from(problem.is_none()));
            }
            AgentEvent::Leading { target, leading } => {
                self.set(&self.leader, target, i64::from(*leading));
                if !leading {
                    self.forget_sessions(target);
                }
            }
            AgentEvent::StandingBy { target } => self.set(&self.leader, target, 0),
            AgentEvent::Evaluated {
                target,
                sessions,
                snapshot_time,
                evaluation_time,
                ..
            } => {
                self.set(&self.connected, target, 1);
                self.set(&self.leader, target, 1);
                let mut counts = [0i64; STATES.len()];
                for s in sessions.iter() {
                    if let Some(i) = STATES.iter().position(|state| *state == s.state) {
                        counts[i] += 1;
                    }
                }
                for (state, count) in STATES.iter().zip(counts) {
                    self.sessions
                        .get_or_create(&SessionLabels {
                            target: target.clone(),
                            state: state.as_pg().to_owned(),
                        })
                        .set(count);
                }
                let labels = TargetLabels {
                    target: target.clone(),
                };
                self.snapshot_seconds
                    .get_or_create(&labels)
                    .observe(snapshot_time.as_secs_f64());
                self.evaluation_seconds
                    .get_or_create(&labels)
                    .observe(evaluation_time.as_secs_f64());
            }
            AgentEvent::Terminated {
                target, lateness, ..
            } => {
                self.lateness_seconds
                    .get_or_create(&TargetLabels {
                        target: target.clone(),
                    })
                    .observe(lateness.as_secs_f64().max(0.0));
            }
            // Counted from the agent's lossless tally at scrape time instead.
            AgentEvent::Recorded { .. } => {}
            AgentEvent::AuditFailed { .. } => {
                self.audit_failures.inc();
            }
            AgentEvent::PolicyApplied { reload, .. } => {
                if *reload {
                    self.reload("applied");
                }
            }
            AgentEvent::PolicyRejected { .. } => self.reload("rejected"),
            AgentEvent::LoginLocks { target, locks } => {
                let count = i64::try_from(locks.len()).unwrap_or(i64::MAX);
                self.set(&self.login_locks, target, count);
            }
            AgentEvent::NotifyFailed { hook, .. } => {
                self.notify_failures
                    .get_or_create(&HookLabels {
                        hook: (*hook).to_owned(),
                    })
                    .inc();
            }
            AgentEvent::NotifyDropped => {
                self.notify_dropped.inc();
            }
            // Warnings are counted from the lossless tally at scrape time.
            AgentEvent::NoLongerMatched { .. }
            | AgentEvent::TerminationFailed { .. }
            | AgentEvent::Reported { .. }
            | AgentEvent::Warned { .. } => {}
            AgentEvent::GatewayMissed { target, .. } => {
                self.gateway_missed
                    .get_or_create(&TargetLabels {
                        target: target.clone(),
                    })
                    .inc();
            }
            AgentEvent::AnchorFailed { target, .. } => {
                self.anchor_failures
                    .get_or_create(&TargetLabels {
                        target: target.clone(),
                    })
                    .inc();
            }
        }
    }

    fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Show `sha256` as the policy in force (and only it).
    fn policy_in_force(&self, sha256: &str) {
        let mut shown = self
            .policy_sha
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *shown != sha256 {
            self.policy_info.remove(&PolicyLabels {
                sha256: shown.clone(),
            });
            sha256.clone_into(&mut shown);
        }
        self.policy_info
            .get_or_create(&PolicyLabels {
                sha256: sha256.to_owned(),
            })
            .set(1);
    }

    /// Bring the audit counters up to the tally (counters only go up; the tally does too).
    fn sync_counts(&self, tally: &[(TallyKey, u64)]) {
        let mut by_event: BTreeMap<&str, u64> = BTreeMap::new();
        let mut outcomes: BTreeMap<OutcomeKey, u64> = BTreeMap::new();
        let mut warned: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (key, count) in tally {
            if key.event == Event::SessionWarned {
                *warned
                    .entry((
                        key.target.clone().unwrap_or_default(),
                        key.rule.clone().unwrap_or_default(),
                    ))
                    .or_insert(0) += count;
            }
            *by_event.entry(key.event.as_str()).or_insert(0) += count;
            if is_termination_outcome(key.event) {
                *outcomes
                    .entry((
                        key.target.clone().unwrap_or_default(),
                        key.rule.clone().unwrap_or_default(),
                        key.result.clone().unwrap_or_default(),
                    ))
                    .or_insert(0) += count;
            }
        }
        for (event, total) in by_event {
            let counter = self.records.get_or_create(&EventLabels {
                event: event.to_owned(),
            });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        for ((target, rule, result), total) in outcomes {
            let counter = self.terminations.get_or_create(&OutcomeLabels {
                target,
                rule,
                result,
            });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        for ((target, rule), total) in warned {
            let counter = self.warned.get_or_create(&WarnedLabels { target, rule });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Events the observer missed (it fell behind the agent).
    pub(crate) fn missed(&self, count: u64) {
        self.missed_events.inc_by(count);
    }

    /// The text exposition, with the scrape-time gauges set first: `ages` has each target's
    /// last snapshot age (None: no snapshot now), `healthy` the health check's verdict,
    /// `policy_sha256` the hash of the policy in force.
    pub(crate) fn encode(
        &self,
        ages: &[(String, Option<f64>)],
        healthy: bool,
        tally: &[(TallyKey, u64)],
        policy_sha256: &str,
    ) -> String {
        self.sync_counts(tally);
        self.policy_in_force(policy_sha256);
        // Series of targets a reload removed would otherwise stay, frozen, forever.
        let current: BTreeSet<&str> = ages.iter().map(|(t, _)| t.as_str()).collect();
        let gone: Vec<String> = self
            .known_targets()
            .iter()
            .filter(|t| !current.contains(t.as_str()))
            .cloned()
            .collect();
        for target in gone {
            let labels = TargetLabels {
                target: target.clone(),
            };
            self.connected.remove(&labels);
            self.leader.remove(&labels);
            self.leader_enforcing.remove(&labels);
            self.snapshot_age.remove(&labels);
            self.login_locks.remove(&labels);
            self.forget_sessions(&target);
            self.known_targets().remove(&target);
        }
        for (target, age) in ages {
            let labels = TargetLabels {
                target: target.clone(),
            };
            match age {
                Some(age) => {
                    self.snapshot_age.get_or_create(&labels).set(*age);
                }
                None => {
                    self.snapshot_age.remove(&labels);
                }
            }
        }
        self.healthy.set(i64::from(healthy));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn known_targets(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, family: &Family<TargetLabels, Gauge>, target: &str, value: i64) {
        let mut known = self.known_targets();
        if !known.contains(target) {
            known.insert(target.to_owned());
        }
        drop(known);
        family
            .get_or_create(&TargetLabels {
                target: target.to_owned(),
            })
            .set(value);
    }

    /// A target this agent does not lead (any more) has no sessions to show.
    fn forget_sessions(&self, target: &str) {
        for state in STATES {
            self.sessions.remove(&SessionLabels {
                target: target.to_owned(),
                state: state.as_pg().to_owned(),
            });
        }
    }
}
