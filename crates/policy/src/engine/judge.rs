//! The per-session pass: every applicable rule against every session, keeping only the earliest
//! candidate per action. Full decisions (with their cause) are built only for the sessions that
//! end up in a plan.
//!
//! The pass does its time arithmetic in `i64` nanoseconds since the Unix epoch (years 1678 to
//! 2261, far beyond any session's lifetime): jiff's checked `Timestamp` arithmetic, done for
//! every rule of every session, was the largest cost at 100k sessions.

use std::collections::HashMap;

use jiff::Timestamp;

use super::decision::{Cause, Decision};
use super::scope::ScopeIndex;
use crate::duration::Limit;
use crate::model::{Action, Condition, ExemptBy, Policy, Rule, RuleId};
use crate::overrides::Overrides;
use crate::session::{BackendType, Session, SessionKey, SessionState};
use crate::window::WindowState;

/// Nanoseconds since the Unix epoch, saturating outside the `i64` range.
pub(super) fn nanos(t: Timestamp) -> i64 {
    let n = t.as_nanosecond();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `n` nanoseconds after the Unix epoch.
pub(super) fn instant(n: i64) -> Timestamp {
    // Every i64 nanosecond count is within jiff's range.
    Timestamp::from_nanosecond(i128::from(n)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn limit_nanos(limit: Limit) -> i64 {
    i64::try_from(limit.get().as_nanos()).unwrap_or(i64::MAX)
}

/// The earliest time a rule fires for a session: the rule, the deadline, and for `max_sessions`
/// the session's rank among its role's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    /// Nanoseconds since the epoch.
    pub(super) deadline: i64,
    rule: u32,
    rank: u32,
    count: u32,
}

impl Candidate {
    /// Index of the rule in the policy.
    pub(super) fn rule(&self) -> usize {
        self.rule as usize
    }
}

/// The earlier of two candidates; on a tie, the rule written first wins.
pub(super) fn earlier(a: Option<Candidate>, b: Option<Candidate>) -> Option<Candidate> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (b.deadline, b.rule) < (a.deadline, a.rule) {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// One session's outcome after every rule was considered.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Judgement {
    pub(super) client: bool,
    pub(super) exempt: Option<ExemptBy>,
    pub(super) terminate: Option<Candidate>,
    pub(super) report: Option<Candidate>,
}

/// A rule, ready for the hot loop.
#[derive(Debug, Clone, Copy)]
enum Prepared {
    Idle(i64),
    IdleInTransaction(i64),
    Lifetime(i64),
    Allow(Placed),
    Deny(Placed),
    MaxSessions,
    /// Not evaluated here (violations are the gateway's).
    Skip,
}

/// A window rule placed at `now`.
#[derive(Debug, Clone, Copy)]
struct Placed {
    state: WindowState,
    since: Option<i64>,
    until: Option<i64>,
}

/// What the pass and the decisions built from it share: the policy, `now`, each rule prepared
/// once, and the overrides resolved to rule indexes.
pub(super) struct Context<'p> {
    pub(super) policy: &'p Policy,
    /// `now` in nanoseconds since the epoch.
    pub(super) now: i64,
    rules: Vec<(Prepared, Action)>,
    /// Each rule's stable id, for the decisions.
    ids: Vec<RuleId>,
    /// `[verify] test_limit` in nanoseconds, for canary sessions.
    test_limit: Option<i64>,
    /// Window edges by session: the window rule's index and the edge (nanoseconds).
    edges: HashMap<SessionKey, (usize, i64)>,
}

/// The edge a session's override gives rule `r`, if any (nanoseconds).
fn edge_for(edge: Option<(usize, i64)>, r: usize) -> Option<i64> {
    edge.filter(|(rule, _)| *rule == r).map(|(_, at)| at)
}

impl<'p> Context<'p> {
    /// Prepare every rule; window rules are placed at `now` (they depend on nothing else).
    pub(super) fn new(policy: &'p Policy, now: Timestamp, overrides: &Overrides) -> Self {
        let place = |state: WindowState| Placed {
            state,
            since: state.since.map(nanos),
            until: state.until.map(nanos),
        };
        let rules: Vec<(Prepared, Action)> = policy
            .rules
            .iter()
            .map(|r| {
                let prepared = match &r.condition {
                    Condition::Idle(l) => Prepared::Idle(limit_nanos(*l)),
                    Condition::IdleInTransaction(l) => Prepared::IdleInTransaction(limit_nanos(*l)),
                    Condition::Lifetime(l) => Prepared::Lifetime(limit_nanos(*l)),
                    Condition::Allow(s) => Prepared::Allow(place(s.state_at(now))),
                    Condition::Deny(s) => Prepared::Deny(place(s.state_at(now))),
                    Condition::MaxSessions(_) => Prepared::MaxSessions,
                    Condition::Violations(_) => Prepared::Skip,
                };
                (prepared, r.action)
            })
            .collect();
        // Only window rules take an edge; any other override is ignored.
        let edges = overrides
            .edges()
            .filter_map(|(key, edge)| {
                let r = policy.rule_index(&edge.rule)?;
                matches!(rules[r].0, Prepared::Allow(_) | Prepared::Deny(_))
                    .then(|| (*key, (r, nanos(edge.at))))
            })
            .collect();
        Context {
            policy,
            now: nanos(now),
            rules,
            ids: policy.rules.iter().map(Rule::id).collect(),
            test_limit: policy.verify.test_limit.map(limit_nanos),
            edges,
        }
    }

    /// For a `curfew verify` canary, when a test limit is set (so that other policies pay
    /// nothing): the rule it tests, whose time limit is capped at the test limit for it.
    fn test_limit_rule(&self, s: &Session) -> Option<usize> {
        self.test_limit?;
        crate::model::canary_rule(&s.role)
    }

    /// The window edge an override sets for this session: the rule's index and the edge.
    fn edge(&self, s: &Session) -> Option<(usize, i64)> {
        if self.edges.is_empty() {
            return None;
        }
        self.edges.get(&s.key()).copied()
    }

    /// For a window rule, when its window next opens or closes (nanoseconds; None: never, or
    /// not a window rule).
    pub(super) fn window_change(&self, r: usize) -> Option<i64> {
        match self.rules.get(r)?.0 {
            Prepared::Allow(p) | Prepared::Deny(p) => p.until,
            _ => None,
        }
    }

    /// Rule `r`'s stable id.
    pub(super) fn id(&self, r: usize) -> &RuleId {
        &self.ids[r]
    }

    /// The full decision for a candidate of this session.
    pub(super) fn decision(&self, s: &Session, c: Candidate) -> Decision {
        let rule = c.rule();
        let edge = edge_for(self.edge(s), rule).filter(|e| *e == c.deadline);
        let cause = match (&self.policy.rules[rule].condition, self.rules[rule].0) {
            (_, Prepared::Allow(_) | Prepared::Deny(_)) if edge.is_some() => Cause::CanaryEdge {
                edge: instant(c.deadline),
            },
            (Condition::Idle(limit), _) => Cause::Idle {
                since: s.state_change.unwrap_or(s.backend_start),
                limit: self.policy.verify.limit_for(&s.role, rule, *limit),
            },
            (Condition::IdleInTransaction(limit), _) => Cause::IdleInTransaction {
                since: s.state_change.unwrap_or(s.backend_start),
                limit: self.policy.verify.limit_for(&s.role, rule, *limit),
            },
            (Condition::Lifetime(limit), _) => Cause::Lifetime {
                started: s.backend_start,
                limit: self.policy.verify.limit_for(&s.role, rule, *limit),
            },
            (_, Prepared::Allow(p)) => Cause::OutsideWindows {
                since: if p.state.inside {
                    p.state.until
                } else {
                    p.state.since
                },
            },
            (_, Prepared::Deny(p)) => Cause::InsideDenyWindow {
                since: if p.state.inside {
                    p.state.since
                } else {
                    p.state.until
                },
            },
            (Condition::MaxSessions(limit), _) => Cause::OverSessionLimit {
                rank: c.rank,
                count: c.count,
                limit: *limit,
            },
            (condition, _) => unreachable!("{} rules yield no candidates", condition.key()),
        };
        Decision {
            session: s.key(),
            rule,
            rule_id: self.ids[rule].clone(),
            deadline: instant(c.deadline),
            cause,
        }
    }
}

/// When a prepared time-based rule fires for a session (`start` is its `backend_start`; `cap`
/// bounds its time limit: a canary's test limit, see [`Context::test_limit_rule`]).
#[inline(always)]
fn deadline(rule: &Prepared, s: &Session, start: i64, cap: i64) -> Option<i64> {
    // Outside an allow window (or inside a deny window): due since the window changed, or since
    // connecting if that was later. Otherwise: due when the window changes.
    let due_since = |since: Option<i64>| Some(since.map_or(start, |t| t.max(start)));
    match *rule {
        Prepared::Idle(limit) if s.state == SessionState::Idle => {
            Some(nanos(s.state_change?).saturating_add(limit.min(cap)))
        }
        Prepared::IdleInTransaction(limit) if s.state.is_idle_in_transaction() => {
            Some(nanos(s.state_change?).saturating_add(limit.min(cap)))
        }
        Prepared::Lifetime(limit) => Some(start.saturating_add(limit.min(cap))),
        Prepared::Allow(p) if !p.state.inside => due_since(p.since),
        Prepared::Deny(p) if p.state.inside => due_since(p.since),
        Prepared::Allow(p) | Prepared::Deny(p) => p.until,
        _ => None,
    }
}

/// Buffers kept between evaluations, so that an agent evaluating every tick does not allocate
/// (and fault in) megabytes each time.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Sessions under a `max_sessions` rule, waiting for ranking.
    pending: Vec<(usize, Judgement)>,
    limited: Vec<Limited>,
    /// Sort keys for ordering decisions.
    pub(super) keys: Vec<u128>,
}

/// Every time and window rule in `rules` (a bit set over rule indexes: those that apply to
/// the session, see `ScopeIndex::classify`) against one session: the earliest candidate to
/// terminate and to report. Session caps rank sessions against each other, so they are left to
/// the caller: `cap` is called with each applicable cap rule's index. `next_wake` is lowered to
/// the next instant a deadline falls or one of these window rules changes.
///
/// The one place where a rule's deadline for a session is worked out: the batch pass and the
/// per-session API both call it.
#[inline(always)]
pub(super) fn judge_rules(
    ctx: &Context<'_>,
    s: &Session,
    rules: &[u64],
    next_wake: &mut i64,
    mut cap: impl FnMut(usize),
) -> (Option<Candidate>, Option<Candidate>) {
    let now = ctx.now;
    let (mut terminate, mut report) = (None, None);
    let start = nanos(s.backend_start);
    let tested = ctx.test_limit_rule(s);
    let edge = ctx.edge(s);
    for (w, word) in rules.iter().enumerate() {
        let mut word = *word;
        while word != 0 {
            let r = w * 64 + word.trailing_zeros() as usize;
            word &= word - 1;
            let (rule, action) = &ctx.rules[r];
            match rule {
                Prepared::MaxSessions => {
                    cap(r);
                    continue;
                }
                // A window that opens or closes changes the verdict on a session in scope,
                // even one already due (which, if it survives, e.g. in a dry run, stops
                // being due then).
                Prepared::Allow(p) | Prepared::Deny(p) => {
                    if let Some(until) = p.until {
                        *next_wake = (*next_wake).min(until);
                    }
                }
                _ => {}
            }
            let limit_cap = match (tested, ctx.test_limit) {
                (Some(tested), Some(test)) if tested == r => test,
                _ => i64::MAX,
            };
            let mut due = deadline(rule, s, start, limit_cap);
            // An edge override for this window rule: the earlier of the window's own
            // deadline and the edge (never later, see `Overrides`).
            if let (Prepared::Allow(_) | Prepared::Deny(_), Some(edge)) = (rule, edge_for(edge, r))
            {
                due = Some(due.map_or(edge, |d| d.min(edge)));
            }
            let Some(deadline) = due else {
                continue;
            };
            if deadline > now {
                *next_wake = (*next_wake).min(deadline);
            }
            let candidate = Candidate {
                deadline,
                rule: u32::try_from(r).unwrap_or(u32::MAX),
                rank: 0,
                count: 0,
            };
            let slot = match action {
                Action::Terminate => &mut terminate,
                Action::Report => &mut report,
            };
            *slot = earlier(*slot, Some(candidate));
        }
    }
    (terminate, report)
}

/// Every rule against every session. `verdict` is called exactly once per session with its index
/// and judgement: at once for most, after ranking for sessions under a `max_sessions` rule
/// (ranking needs them all). Returns the next instant (nanoseconds) a deadline falls or a window
/// changes.
pub(super) fn judge(
    ctx: &Context<'_>,
    sessions: &[Session],
    scratch: &mut Scratch,
    mut verdict: impl FnMut(usize, Judgement),
) -> Option<i64> {
    let mut index = ScopeIndex::new(ctx.policy);
    let mut next_wake = i64::MAX;
    let Scratch {
        pending, limited, ..
    } = scratch;
    pending.clear();
    limited.clear();

    for (i, s) in sessions.iter().enumerate() {
        let mut j = Judgement::default();
        if s.backend_type != BackendType::ClientBackend {
            verdict(i, j);
            continue;
        }
        j.client = true;
        let applicable = match index.classify(s) {
            Ok(applicable) => applicable,
            Err(why) => {
                j.exempt = Some(why);
                verdict(i, j);
                continue;
            }
        };
        let (role, pid, waiting) = (applicable.role_id, s.pid, pending.len());
        let start = nanos(s.backend_start);
        let mut is_limited = false;
        let (terminate, report) = judge_rules(ctx, s, applicable.rules, &mut next_wake, |r| {
            limited.push(Limited {
                rule: r,
                role,
                start,
                pid,
                pending: waiting,
            });
            is_limited = true;
        });
        (j.terminate, j.report) = (terminate, report);
        if is_limited {
            pending.push((i, j));
        } else {
            verdict(i, j);
        }
    }
    rank_session_limits(ctx, pending, limited);
    for (i, j) in pending.drain(..) {
        verdict(i, j);
    }
    (next_wake != i64::MAX).then_some(next_wake)
}

/// A session under a `max_sessions` rule, with what ranking needs at hand.
#[derive(Debug, Clone, Copy)]
struct Limited {
    rule: usize,
    role: u32,
    /// `backend_start`, nanoseconds since the epoch.
    start: i64,
    pid: i64,
    /// Index into the pending judgements.
    pending: usize,
}

/// `max_sessions`: per rule and role, rank the sessions oldest first; those beyond the limit
/// fire. Sessions another rule already ends now do not count (ending them frees their place).
fn rank_session_limits(
    ctx: &Context<'_>,
    pending: &mut [(usize, Judgement)],
    limited: &mut Vec<Limited>,
) {
    let now = ctx.now;
    limited.retain(|l| {
        pending[l.pending]
            .1
            .terminate
            .is_none_or(|t| t.deadline > now)
    });
    // Role numbers depend on session order, but only group: within a group the order is by
    // connection time and pid, so the outcome does not.
    limited.sort_unstable_by_key(|l| (l.rule, l.role, l.start, l.pid));
    for group in limited.chunk_by(|a, b| a.rule == b.rule && a.role == b.role) {
        let (rule, action) = (group[0].rule, ctx.rules[group[0].rule].1);
        let Condition::MaxSessions(limit) = ctx.policy.rules[rule].condition else {
            continue;
        };
        let count = u32::try_from(group.len()).unwrap_or(u32::MAX);
        for (rank, l) in group.iter().enumerate().skip(limit as usize) {
            let j = &mut pending[l.pending].1;
            let candidate = Candidate {
                // Over the limit since it connected.
                deadline: l.start,
                rule: u32::try_from(rule).unwrap_or(u32::MAX),
                rank: u32::try_from(rank + 1).unwrap_or(u32::MAX),
                count,
            };
            let slot = match action {
                Action::Terminate => &mut j.terminate,
                Action::Report => &mut j.report,
            };
            *slot = earlier(*slot, Some(candidate));
        }
    }
}
