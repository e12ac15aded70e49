//! The decision engine: for a policy, a set of live sessions and an instant, which sessions end,
//! which are only reported, which are due a warning, and when to look again.
//!
//! A pure function of its inputs: the same sessions at the same `now` give the same plan, in
//! whatever order the sessions come. Deadlines are instants on the database server's clock.

mod decision;
mod scope;

use jiff::Timestamp;

pub use decision::{Cause, Decision};

use crate::model::{Action, Condition, ExemptBy, Policy};
use crate::session::{BackendType, Session, SessionState};
use crate::window::WindowState;
use scope::{ScopeIndex, rule_indexes};

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

/// One session's candidates after all rules were considered.
#[derive(Debug, Clone, Copy, Default)]
struct Judgement {
    exempt: Option<ExemptBy>,
    client: bool,
    terminate: Option<Decision>,
    report: Option<Decision>,
}

/// Decide, for every session at `now`, what happens.
pub fn evaluate(policy: &Policy, sessions: &[Session], now: Timestamp) -> Plan {
    let (judgements, mut next_wake) = judge(policy, sessions, now);
    let mut plan = Plan {
        now,
        terminations: Vec::new(),
        reports: Vec::new(),
        warnings: Vec::new(),
        next_wake: None,
        clients: 0,
        exempt: 0,
    };
    for j in &judgements {
        if !j.client {
            continue;
        }
        plan.clients += 1;
        if j.exempt.is_some() {
            plan.exempt += 1;
            continue;
        }
        match j.terminate {
            Some(d) if d.deadline <= now => {
                plan.terminations.push(d);
                continue;
            }
            Some(d) => {
                if let Some(warn) = policy.rules[d.rule].warn {
                    let warn_at = d.deadline - warn.get();
                    if warn_at <= now {
                        plan.warnings.push(d);
                    } else {
                        next_wake = earliest(next_wake, Some(warn_at));
                    }
                }
            }
            None => {}
        }
        if let Some(r) = j.report
            && r.deadline <= now
        {
            plan.reports.push(r);
        }
    }
    let order = |d: &Decision| (d.deadline, d.session, d.rule);
    plan.terminations.sort_by_key(order);
    plan.reports.sort_by_key(order);
    plan.warnings.sort_by_key(order);
    plan.next_wake = next_wake;
    plan
}

/// The verdict on each session, in input order (for `curfew plan`).
pub fn assess(policy: &Policy, sessions: &[Session], now: Timestamp) -> Vec<Verdict> {
    let (judgements, _) = judge(policy, sessions, now);
    judgements
        .into_iter()
        .map(|j| match (j.client, j.exempt, j.terminate, j.report) {
            (false, ..) => Verdict::NotClient,
            (_, Some(by), ..) => Verdict::Exempt { by },
            (_, _, Some(t), _) if t.deadline <= now => Verdict::Ends(t),
            (_, _, _, Some(r)) if r.deadline <= now => Verdict::Reported(r),
            (_, _, t, r) => match earliest_decision(t, r) {
                Some(d) => Verdict::Scheduled(d),
                None => Verdict::Untouched,
            },
        })
        .collect()
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The earlier of two candidates; on a tie, the rule written first wins.
fn earliest_decision(a: Option<Decision>, b: Option<Decision>) -> Option<Decision> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (b.deadline, b.rule) < (a.deadline, a.rule) {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Every rule against every session: the per-session candidates and the next instant at which a
/// deadline falls.
fn judge(
    policy: &Policy,
    sessions: &[Session],
    now: Timestamp,
) -> (Vec<Judgement>, Option<Timestamp>) {
    // Window rules depend only on `now`: place them once.
    let windows: Vec<Option<WindowState>> = policy
        .rules
        .iter()
        .map(|r| r.condition.schedule().map(|s| s.state_at(now)))
        .collect();
    let mut index = ScopeIndex::new(policy);
    let mut judgements = vec![Judgement::default(); sessions.len()];
    let mut next_wake = None;
    // (rule, session) pairs for `max_sessions`, which needs every session before it can rank.
    let mut limited: Vec<(usize, usize)> = Vec::new();

    for (i, s) in sessions.iter().enumerate() {
        let j = &mut judgements[i];
        if s.backend_type != BackendType::ClientBackend {
            continue;
        }
        j.client = true;
        let rules = match index.classify(s) {
            Ok(bits) => bits,
            Err(why) => {
                j.exempt = Some(why);
                continue;
            }
        };
        for r in rule_indexes(rules) {
            let rule = &policy.rules[r];
            if let Condition::MaxSessions(_) = rule.condition {
                limited.push((r, i));
                continue;
            }
            let Some(decision) = deadline(r, &rule.condition, windows[r], s) else {
                continue;
            };
            if decision.deadline > now {
                next_wake = earliest(next_wake, Some(decision.deadline));
            }
            let slot = match rule.action {
                Action::Terminate => &mut j.terminate,
                Action::Report => &mut j.report,
            };
            *slot = earliest_decision(*slot, Some(decision));
        }
    }
    rank_session_limits(policy, sessions, now, &mut judgements, limited);
    (judgements, next_wake)
}

/// When a time-based rule fires for a session, if it ever does.
fn deadline(
    rule: usize,
    condition: &Condition,
    window: Option<WindowState>,
    s: &Session,
) -> Option<Decision> {
    let (deadline, cause) = match condition {
        Condition::Idle(limit) => {
            let since = s.state_change.filter(|_| s.state == SessionState::Idle)?;
            (
                since + limit.get(),
                Cause::Idle {
                    since,
                    limit: *limit,
                },
            )
        }
        Condition::IdleInTransaction(limit) => {
            let since = s
                .state_change
                .filter(|_| s.state.is_idle_in_transaction())?;
            (
                since + limit.get(),
                Cause::IdleInTransaction {
                    since,
                    limit: *limit,
                },
            )
        }
        Condition::Lifetime(limit) => (
            s.backend_start + limit.get(),
            Cause::Lifetime {
                started: s.backend_start,
                limit: *limit,
            },
        ),
        Condition::Allow(_) => {
            let w = window?;
            if w.inside {
                let close = w.until?;
                (close, Cause::OutsideWindows { since: Some(close) })
            } else {
                (
                    w.since.map_or(s.backend_start, |t| t.max(s.backend_start)),
                    Cause::OutsideWindows { since: w.since },
                )
            }
        }
        Condition::Deny(_) => {
            let w = window?;
            if w.inside {
                (
                    w.since.map_or(s.backend_start, |t| t.max(s.backend_start)),
                    Cause::InsideDenyWindow { since: w.since },
                )
            } else {
                let open = w.until?;
                (open, Cause::InsideDenyWindow { since: Some(open) })
            }
        }
        Condition::MaxSessions(_) | Condition::Violations(_) => return None,
    };
    Some(Decision {
        session: s.key(),
        rule,
        deadline,
        cause,
    })
}

/// `max_sessions`: per rule and role, rank the sessions oldest first; those beyond the limit
/// fire. Sessions another rule already ends now do not count (ending them frees their place).
fn rank_session_limits(
    policy: &Policy,
    sessions: &[Session],
    now: Timestamp,
    judgements: &mut [Judgement],
    mut limited: Vec<(usize, usize)>,
) {
    limited.retain(|(_, i)| !judgements[*i].terminate.is_some_and(|t| t.deadline <= now));
    limited.sort_unstable_by(|(ra, a), (rb, b)| {
        let (a, b) = (&sessions[*a], &sessions[*b]);
        (ra, &a.role, a.backend_start, a.pid).cmp(&(rb, &b.role, b.backend_start, b.pid))
    });
    for group in
        limited.chunk_by(|(ra, a), (rb, b)| ra == rb && sessions[*a].role == sessions[*b].role)
    {
        let rule_index = group[0].0;
        let rule = &policy.rules[rule_index];
        let Condition::MaxSessions(limit) = rule.condition else {
            continue;
        };
        let count = u32::try_from(group.len()).unwrap_or(u32::MAX);
        for (rank, (_, i)) in group.iter().enumerate().skip(limit as usize) {
            let s = &sessions[*i];
            let decision = Decision {
                session: s.key(),
                rule: rule_index,
                deadline: s.backend_start,
                cause: Cause::OverSessionLimit {
                    rank: u32::try_from(rank + 1).unwrap_or(u32::MAX),
                    count,
                    limit,
                },
            };
            let slot = match rule.action {
                Action::Terminate => &mut judgements[*i].terminate,
                Action::Report => &mut judgements[*i].report,
            };
            *slot = earliest_decision(*slot, Some(decision));
        }
    }
}

#[cfg(test)]
mod tests;
