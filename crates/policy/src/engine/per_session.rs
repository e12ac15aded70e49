//! The per-session engine, for an enforcement point inside the session (a gateway): may this
//! login proceed now, and what happens next to one live session. It judges with the batch
//! pass's own functions ([`super::judge::judge_rules`], the scope index, the decisions and their
//! reasons), so the two cannot disagree on a rule; `tests/agreement.rs` checks that they do not.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;

use super::decision::{Cause, Decision};
use super::judge::{Context, instant, judge_rules};
use super::scope::ScopeIndex;
use crate::model::{Action, Condition, Policy, RuleId};
use crate::overrides::Overrides;
use crate::session::{BackendType, ClientAddr, Session, SessionState};

/// The id under which a refusal for an incident lock (`curfew lock`) is given: the name the
/// agent records the endings of locked roles' sessions under. No `[[rule]]` can have it in
/// its place, since an incident lock is not a rule of the policy.
pub const LOGIN_LOCK_RULE: &str = "login-lock";

/// A login asking to proceed: who, to what, from where (as a [`Session`] would have them).
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The role logging in.
    pub role: &'a str,
    /// Every role it is a member of, directly or indirectly.
    pub member_of: &'a [String],
    /// The database asked for.
    pub database: &'a str,
    /// `application_name`, as the client set it.
    pub application: &'a str,
    /// The client address; None for a Unix socket (an enforcement point inside the session
    /// always knows which).
    pub client_addr: Option<IpAddr>,
}

impl Login<'_> {
    /// The session this login would be if admitted at `now`, as the batch engine sees one: a
    /// client session started at `now`, running its first statement (pid 0: it has none yet).
    pub fn as_session(&self, now: Timestamp) -> Session {
        Session {
            pid: 0,
            backend_start: now,
            xact_start: None,
            state: SessionState::Active,
            state_change: Some(now),
            role: Arc::from(self.role),
            member_of: Arc::from(self.member_of),
            database: Arc::from(self.database),
            client_addr: self.client_addr.into(),
            application: Arc::from(self.application),
            backend_type: BackendType::ClientBackend,
        }
    }
}

/// Another live session of the login's role, or another login of it being admitted: what a
/// session cap's scope and `[exempt]` read of it (its role and memberships are the login's).
///
/// The database and application names are the client's own words, as they are for every
/// session the agent judges: they only decide which caps count the session (as the agent
/// decides it), never admit anything by themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    /// The database it is connected to.
    pub database: String,
    /// Its `application_name`.
    pub application: String,
    /// Where its client is: for a session an enforcement point relays, the client behind it.
    pub client_addr: ClientAddr,
}

/// An incident lock in force on the login's role (from the login ledger: `curfew lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentLock {
    /// Why the role was locked, as given.
    pub reason: String,
    /// When it expires (None: until released).
    pub until: Option<Timestamp>,
}

/// What [`admit`] says about a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The login may proceed.
    Allowed {
        /// A report-only rule that would have refused it (to be recorded, not enforced).
        reported: Option<Refusal>,
    },
    /// The login is refused.
    Refused(Refusal),
}

/// Why a login is (or, for a report-only rule, would be) refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule's stable id ([`LOGIN_LOCK_RULE`] for an incident lock).
    pub rule: RuleId,
    /// The rule's index in the policy judged (None for an incident lock).
    pub rule_index: Option<usize>,
    /// The facts, as the batch engine gives them for a session it ends (None for an incident
    /// lock).
    pub cause: Option<Cause>,
    /// The human reason.
    pub reason: String,
    /// When the refusing rule stops refusing: an allow window's next opening, a deny window's
    /// end, an incident lock's expiry (the latest, if several). None: not by itself (a session
    /// cap: when one of the role's sessions ends; an incident lock without expiry: when it is
    /// released; a window that never changes again). Another rule may still refuse then: the
    /// caller asks again.
    pub retry_at: Option<Timestamp>,
}

/// May this login proceed at `now`?
///
/// What it covers, in this order:
/// 1. **Incident locks** (`incidents`, the role's locks from the ledger): any one refuses, even
///    a login the policy exempts (the agent ends every session of an incident-locked role).
/// 2. **`[exempt]`**: an exempt login proceeds (no rule applies to it).
/// 3. **Window rules** (`allow`/`deny`, terminating): refused exactly when the batch engine
///    would end the new session at once, i.e. outside every allow window or inside a deny
///    window of a rule in scope; the rule is the one the batch would name (the first in the
///    file among those due). `lock_logins` changes how the agent refuses (it disables the
///    role's login in the database), not whether: the answer is the same with or without it.
/// 4. **Session caps** (`max_sessions`, terminating): refused when, for a cap rule in the
///    login's scope, the role's `others` (its other live sessions and logins being admitted,
///    all older than this one) that the rule counts already reach its limit, since the batch
///    engine ranks the role's sessions oldest first and ends the newest beyond it. Each rule
///    counts on its own, as the batch engine does: the others in *its* scope (database,
///    application, address), not exempt, and not ended at once by a terminating window rule
///    (ending them frees their place). The others' activity is not known here: they are judged
///    as active sessions that just started, so one the agent is about to end for its idleness
///    or lifetime still counts. The first refusing rule in the file is named.
///
/// Time limits (`idle`, `idle_in_transaction`, `lifetime`) never refuse a login: a new session
/// has used none of them. `violations` rules are judged per error ([`super::ViolationCounter`]).
/// Report-only rules never refuse; the first that would is given in
/// [`Admission::Allowed::reported`].
pub fn admit(
    policy: &Policy,
    login: &Login<'_>,
    now: Timestamp,
    others: &[RoleSession],
    incidents: &[IncidentLock],
) -> Admission {
    if let Some(refusal) = incident_refusal(login, incidents) {
        return Admission::Refused(refusal);
    }
    let session = login.as_session(now);
    let ctx = Context::new(policy, now, &Overrides::none());
    let mut index = ScopeIndex::new(policy);
    let Ok(applicable) = index.classify(&session) else {
        return Admission::Allowed { reported: None };
    };
    let mut caps = Vec::new();
    let mut wake = i64::MAX;
    let (terminate, report) = judge_rules(&ctx, &session, applicable.rules, &mut wake, |r| {
        caps.push(r);
    });
    let due = |c: &super::judge::Candidate| c.deadline <= ctx.now;
    let refusal = |c: super::judge::Candidate| {
        let decision = ctx.decision(&session, c);
        Refusal {
            rule: decision.rule_id.clone(),
            rule_index: Some(decision.rule),
            cause: Some(decision.cause),
            reason: decision.reason(policy, now),
            retry_at: ctx.window_change(decision.rule).map(instant),
        }
    };
    if let Some(t) = terminate.filter(due) {
        return Admission::Refused(refusal(t));
    }
    let counted = counted_by_caps(&ctx, &session, others, &caps);
    let cap = |action: Action| {
        caps.iter()
            .zip(&counted)
            .find_map(|(r, live)| match policy.rules[*r].condition {
                Condition::MaxSessions(limit)
                    if policy.rules[*r].action == action && *live >= limit =>
                {
                    Some(cap_refusal(&ctx, policy, *r, limit, *live, now))
                }
                _ => None,
            })
    };
    if let Some(refused) = cap(Action::Terminate) {
        return Admission::Refused(refused);
    }
    let reported = report
        .filter(due)
        .map(refusal)
        .or_else(|| cap(Action::Report));
    Admission::Allowed { reported }
}

/// For each cap rule in `caps` (applicable to `login`, the new session), how many of `others`
/// it counts: those in its scope, not exempt, and not ended at `ctx.now` by a terminating rule
/// (as [`super::judge`]'s ranking leaves them out). Classified and judged with the batch
/// engine's own scope index and rule code, as sessions of the login's role and memberships
/// that are active and started now (their activity is not known).
fn counted_by_caps(
    ctx: &Context<'_>,
    login: &Session,
    others: &[RoleSession],
    caps: &[usize],
) -> Vec<u32> {
    let mut counted = vec![0u32; caps.len()];
    if caps.is_empty() || others.is_empty() {
        return counted;
    }
    let sessions: Vec<Session> = others
        .iter()
        .map(|o| Session {
            database: Arc::from(o.database.as_str()),
            application: Arc::from(o.application.as_str()),
            client_addr: o.client_addr.clone(),
            ..login.clone()
        })
        .collect();
    let mut index = ScopeIndex::new(ctx.policy);
    for s in &sessions {
        // Exempt: no rule counts it.
        let Ok(applicable) = index.classify(s) else {
            continue;
        };
        let mut wake = i64::MAX;
        let (terminate, _) = judge_rules(ctx, s, applicable.rules, &mut wake, |_| {});
        if terminate.is_some_and(|t| t.deadline <= ctx.now) {
            continue;
        }
        for (count, r) in counted.iter_mut().zip(caps) {
            let word = applicable.rules.get(r / 64).copied().unwrap_or(0);
            if word & (1 << (r % 64)) != 0 {
                *count = count.saturating_add(1);
            }
        }
    }
    counted
}

fn incident_refusal(login: &Login<'_>, incidents: &[IncidentLock]) -> Option<Refusal> {
    if incidents.is_empty() {
        return None;
    }
    // Free again when the last lock expires; never by itself if one has no expiry.
    let retry_at = if incidents.iter().all(|i| i.until.is_some()) {
        incidents.iter().filter_map(|i| i.until).max()
    } else {
        None
    };
    let reasons: Vec<&str> = incidents.iter().map(|i| i.reason.as_str()).collect();
    Some(Refusal {
        rule: RuleId::new(LOGIN_LOCK_RULE),
        rule_index: None,
        cause: None,
        reason: format!(
            "role \"{}\" is locked: incident lock: {}",
            login.role,
            reasons.join("; ")
        ),
        retry_at,
    })
}

/// A session cap's refusal: the new session would rank `live + 1` of `live + 1`.
fn cap_refusal(
    ctx: &Context<'_>,
    policy: &Policy,
    rule: usize,
    limit: u32,
    live: u32,
    now: Timestamp,
) -> Refusal {
    let rank = live.saturating_add(1);
    let cause = Cause::OverSessionLimit {
        rank,
        count: rank,
        limit,
    };
    let decision = Decision {
        session: crate::session::SessionKey {
            pid: 0,
            backend_start: now,
        },
        rule,
        rule_id: ctx.id(rule).clone(),
        deadline: now,
        cause,
    };
    Refusal {
        rule: decision.rule_id.clone(),
        rule_index: Some(rule),
        cause: Some(cause),
        reason: decision.reason(policy, now),
        retry_at: None,
    }
}

/// What happens next to one live session if nothing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextEvent {
    /// The decision: the rule (index and stable id), when the session ends (`deadline`, in
    /// the past if it is due already) and why; the same the batch engine makes.
    pub decision: Decision,
    /// When to warn: the end minus the rule's `warn` lead (None: the rule has no `warn`). At
    /// or before `now`: the session is inside the lead already.
    pub warn_at: Option<Timestamp>,
    /// The human reason, as of the end (or `now`, if that is later).
    pub reason: String,
}

/// The next end of one session, by a terminating rule, given its state at `now`: what the
/// batch engine schedules for it (now or later), with the warning that precedes it. None when
/// nothing is pending: not a client session, exempt, or no terminating rule will fire while
/// the session stays as it is (a running statement is never idle).
///
/// Session caps are not judged here: they rank a role's sessions oldest first, so a session
/// that was admitted within the cap ([`admit`]) keeps its place while it lives; the batch
/// engine still applies them (to sessions that got in some other way). Report-only rules
/// are in [`next_report`]. `overrides` are those the batch engine would get (a canary's edge).
pub fn next_event(
    policy: &Policy,
    session: &Session,
    now: Timestamp,
    overrides: &Overrides,
) -> Option<NextEvent> {
    let ctx = Context::new(policy, now, overrides);
    let (terminate, _) = candidates(&ctx, session)?;
    let decision = ctx.decision(session, terminate?);
    let rule = &policy.rules[decision.rule];
    let warn_at = rule.warn.map(|lead| decision.deadline - lead.get());
    let reason = decision.reason(policy, now.max(decision.deadline));
    Some(NextEvent {
        decision,
        warn_at,
        reason,
    })
}

/// As [`next_event`], for report-only rules: when one would end the session (nothing is done
/// to it; the enforcement point records it).
pub fn next_report(
    policy: &Policy,
    session: &Session,
    now: Timestamp,
    overrides: &Overrides,
) -> Option<Decision> {
    let ctx = Context::new(policy, now, overrides);
    let (_, report) = candidates(&ctx, session)?;
    Some(ctx.decision(session, report?))
}

/// The earliest candidates of one session (caps apart), or None if no rule can apply to it.
fn candidates(
    ctx: &Context<'_>,
    session: &Session,
) -> Option<(
    Option<super::judge::Candidate>,
    Option<super::judge::Candidate>,
)> {
    if session.backend_type != BackendType::ClientBackend {
        return None;
    }
    let mut index = ScopeIndex::new(ctx.policy);
    let applicable = index.classify(session).ok()?;
    let mut wake = i64::MAX;
    Some(judge_rules(
        ctx,
        session,
        applicable.rules,
        &mut wake,
        |_| {},
    ))
}
