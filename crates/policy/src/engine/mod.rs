//! The decision engine: for a policy, a set of live sessions and an instant, which sessions end,
//! which are only reported, which are due a warning, and when to look again (the batch API, for
//! the agent); and, on the same rule code, the per-session API for an enforcement point inside
//! the session: [`admit`] a login, the [`next_event`] of one session, and [`ViolationCounter`]
//! for `violations` rules, judged per error.
//!
//! A pure function of its inputs: the same sessions at the same `now` give the same plan, in
//! whatever order the sessions come. Deadlines are instants on the database server's clock.

mod decision;
mod judge;
mod per_session;
mod scope;
mod violations;

use jiff::Timestamp;

pub use decision::{Cause, Decision};
pub use per_session::{
    Admission, IncidentLock, LOGIN_LOCK_RULE, Login, NextEvent, Refusal, RoleSession, admit,
    next_event, next_report,
};
pub use violations::{ErrorVerdict, ViolationCounter};

use crate::model::{ExemptBy, Policy};
use crate::overrides::Overrides;
use crate::session::Session;
use judge::{Context, Scratch, earlier, instant, judge};

/// What to do now, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// The instant the plan was made for.
    pub now: Timestamp,
    /// Sessions to end now, earliest deadline first.
    pub terminations: Vec<Decision>,
    /// Sessions a `report` rule would end now (nothing is done to them), earliest first.
    pub reports: Vec<Decision>,
    /// Sessions inside the warning lead of the rule that will end them, earliest first.
    pub warnings: Vec<Decision>,
    /// Sessions a terminating rule will end within the horizon given to
    /// [`Engine::evaluate_ahead`] if nothing changes, earliest deadline first (empty for
    /// [`Engine::evaluate`]). An agent can end them when their deadline falls without reading
    /// the sessions again: the guarded termination re-checks each one.
    pub upcoming: Vec<Decision>,
    /// The earliest future instant at which this plan could change for the same sessions.
    pub next_wake: Option<Timestamp>,
    /// Client sessions seen.
    pub clients: usize,
    /// Of those, sessions exempt from every rule.
    pub exempt: usize,
}

/// The engine's view of one session, for `curfew plan`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Not a client backend (walsender, autovacuum, ...): never touched.
    NotClient,
    /// Exempt by the `[exempt]` key named.
    Exempt {
        /// The key that matched.
        by: ExemptBy,
    },
    /// Ends now.
    Ends(Decision),
    /// A `report` rule fires now; nothing is done.
    Reported(Decision),
    /// The earliest rule that will fire if nothing changes.
    Scheduled(Decision),
    /// No rule applies or will fire.
    Untouched,
}

/// The verdict on each session, in input order, with explicit overrides (a `curfew verify`
/// canary's window edge). A one-off [`Engine::assess_with`].
pub fn assess_with(
    policy: &Policy,
    sessions: &[Session],
    now: Timestamp,
    overrides: &Overrides,
) -> Vec<Verdict> {
    Engine::new().assess_with(policy, sessions, now, overrides)
}

/// Decide, for every session at `now`, what happens. A one-off [`Engine::evaluate`].
pub fn evaluate(policy: &Policy, sessions: &[Session], now: Timestamp) -> Plan {
    Engine::new().evaluate(policy, sessions, now)
}

/// The verdict on each session, in input order (for `curfew plan`). A one-off
/// [`Engine::assess`].
pub fn assess(policy: &Policy, sessions: &[Session], now: Timestamp) -> Vec<Verdict> {
    Engine::new().assess(policy, sessions, now)
}

/// The decision engine, with buffers it reuses from one evaluation to the next: an agent that
/// evaluates every tick keeps one and allocates next to nothing in the steady state.
#[derive(Debug, Default)]
pub struct Engine {
    scratch: Scratch,
}

impl Engine {
    /// A new engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decide, for every session at `now`, what happens.
    pub fn evaluate(&mut self, policy: &Policy, sessions: &[Session], now: Timestamp) -> Plan {
        self.evaluate_ahead(policy, sessions, now, jiff::SignedDuration::ZERO)
    }

    /// As [`Engine::evaluate`], and also list the terminations falling due within `horizon`
    /// after `now` (in [`Plan::upcoming`]).
    pub fn evaluate_ahead(
        &mut self,
        policy: &Policy,
        sessions: &[Session],
        now: Timestamp,
        horizon: jiff::SignedDuration,
    ) -> Plan {
        self.evaluate_with(policy, sessions, now, horizon, &Overrides::none())
    }

    /// As [`Engine::evaluate_ahead`], with explicit overrides (see [`Overrides`]: they only
    /// ever bring an end earlier).
    pub fn evaluate_with(
        &mut self,
        policy: &Policy,
        sessions: &[Session],
        now: Timestamp,
        horizon: jiff::SignedDuration,
        overrides: &Overrides,
    ) -> Plan {
        let ctx = Context::new(policy, now, overrides);
        let until = ctx
            .now
            .saturating_add(i64::try_from(horizon.as_nanos()).unwrap_or(i64::MAX).max(0));
        let mut upcoming = Vec::new();
        let (mut clients, mut exempt) = (0, 0);
        // Decisions are built while their session is at hand (in cache), then put in order.
        let mut ends = Vec::new();
        let mut reports = Vec::new();
        let mut warnings = Vec::new();
        let mut warn_wake = i64::MAX;
        let next_wake = judge(&ctx, sessions, &mut self.scratch, |i, j| {
            if !j.client {
                return;
            }
            clients += 1;
            if j.exempt.is_some() {
                exempt += 1;
                return;
            }
            match j.terminate {
                Some(t) if t.deadline <= ctx.now => {
                    ends.push(ctx.decision(&sessions[i], t));
                    return;
                }
                Some(t) => {
                    if t.deadline <= until {
                        upcoming.push(ctx.decision(&sessions[i], t));
                    }
                    if let Some(warn) = policy.rules[t.rule()].warn {
                        let warn_at = t.deadline.saturating_sub(nanos_of(warn));
                        if warn_at <= ctx.now {
                            warnings.push(ctx.decision(&sessions[i], t));
                        } else {
                            warn_wake = warn_wake.min(warn_at);
                        }
                    }
                }
                None => {}
            }
            if let Some(r) = j.report
                && r.deadline <= ctx.now
            {
                reports.push(ctx.decision(&sessions[i], r));
            }
        });
        let next_wake = next_wake.unwrap_or(i64::MAX).min(warn_wake);
        let keys = &mut self.scratch.keys;
        Plan {
            now,
            terminations: in_order(ends, now, keys),
            reports: in_order(reports, now, keys),
            warnings: in_order(warnings, now, keys),
            upcoming: in_order(upcoming, now, keys),
            next_wake: (next_wake != i64::MAX).then(|| instant(next_wake)),
            clients,
            exempt,
        }
    }

    /// The verdict on each session, in input order (for `curfew plan`).
    pub fn assess(
        &mut self,
        policy: &Policy,
        sessions: &[Session],
        now: Timestamp,
    ) -> Vec<Verdict> {
        self.assess_with(policy, sessions, now, &Overrides::none())
    }

    /// As [`Engine::assess`], with explicit overrides (see [`Overrides`]).
    pub fn assess_with(
        &mut self,
        policy: &Policy,
        sessions: &[Session],
        now: Timestamp,
        overrides: &Overrides,
    ) -> Vec<Verdict> {
        let ctx = Context::new(policy, now, overrides);
        let mut verdicts = vec![Verdict::Untouched; sessions.len()];
        judge(&ctx, sessions, &mut self.scratch, |i, j| {
            let s = &sessions[i];
            let due = |c: &judge::Candidate| c.deadline <= ctx.now;
            verdicts[i] = if !j.client {
                Verdict::NotClient
            } else if let Some(by) = j.exempt {
                Verdict::Exempt { by }
            } else if let Some(t) = j.terminate.filter(due) {
                Verdict::Ends(ctx.decision(s, t))
            } else if let Some(r) = j.report.filter(due) {
                Verdict::Reported(ctx.decision(s, r))
            } else if let Some(c) = earlier(j.terminate, j.report) {
                Verdict::Scheduled(ctx.decision(s, c))
            } else {
                Verdict::Untouched
            };
        });
        verdicts
    }
}

fn nanos_of(limit: crate::duration::Limit) -> i64 {
    i64::try_from(limit.get().as_nanos()).unwrap_or(i64::MAX)
}

/// The decisions, earliest deadline first, then by pid.
///
/// Sorting the 88-byte decisions themselves moved about 100 MB at 100k sessions; instead each
/// becomes one `u128` — deadline relative to `now` (40 bits of seconds), nanoseconds (30), pid
/// (32) and its index (26) — so the sort moves 16 bytes and compares once. Pids are unique within
/// a snapshot, so the index never decides the order.
fn in_order(decisions: Vec<Decision>, now: Timestamp, keys: &mut Vec<u128>) -> Vec<Decision> {
    const INDEX_BITS: u32 = 26;
    const SECONDS_BIAS: i64 = 1 << 39;
    const VISITED: u128 = u128::MAX;
    if decisions.len() >= 1 << INDEX_BITS {
        let mut all = decisions;
        all.sort_unstable_by_key(|d| (d.deadline, d.session.pid));
        return all;
    }
    keys.clear();
    keys.extend(decisions.iter().enumerate().map(|(e, d)| {
        let seconds = (d.deadline.as_second() - now.as_second() + SECONDS_BIAS)
            .clamp(0, 2 * SECONDS_BIAS - 1) as u128;
        let nanos = d.deadline.subsec_nanosecond().max(0) as u128;
        let pid = u128::from(d.session.pid as u32 ^ 0x8000_0000);
        (seconds << 88) | (nanos << 58) | (pid << INDEX_BITS) | e as u128
    }));
    keys.sort_unstable();
    // Apply the order in place, one cycle at a time, by swaps (a second 5 MB vector would have
    // to be faulted in); a visited entry is marked by clearing its key. Along a cycle, the
    // entry that started at `start` moves ahead until it reaches its own place.
    let mut decisions = decisions;
    let index_of = |k: u128| (k & ((1 << INDEX_BITS) - 1)) as usize;
    for start in 0..keys.len() {
        if keys[start] == VISITED {
            continue;
        }
        let mut at = start;
        loop {
            let from = index_of(keys[at]);
            keys[at] = VISITED;
            if from == start {
                break;
            }
            decisions.swap(at, from);
            at = from;
        }
    }
    decisions
}

#[cfg(test)]
mod canary_tests;
#[cfg(test)]
mod cap_admission_tests;
#[cfg(test)]
mod per_session_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
