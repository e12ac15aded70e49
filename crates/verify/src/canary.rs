//! The canary: a role verify creates for the test, with a session in one rule's scope.

use std::net::IpAddr;
use std::sync::Arc;

use curfew_policy::{
    AddressBlock, BackendType, CANARY_MARK, Condition, Exemptions, Glob, Limit, Policy, Scope,
    Session, SessionState, Verdict,
};
use jiff::Timestamp;

/// What a canary session does while it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Nothing, after one statement (`idle`).
    Idle,
    /// An open transaction, after one statement (`idle in transaction`).
    IdleInTransaction,
    /// A statement that outlasts the wait (`active`): only a lifetime rule should end it.
    Busy,
}

impl Activity {
    /// The activity that a rule's condition ends.
    pub fn for_condition(condition: &Condition) -> Activity {
        match condition {
            Condition::Idle(_) => Activity::Idle,
            Condition::IdleInTransaction(_) => Activity::IdleInTransaction,
            _ => Activity::Busy,
        }
    }

    fn state(self) -> SessionState {
        match self {
            Activity::Idle => SessionState::Idle,
            Activity::IdleInTransaction => SessionState::IdleInTransaction,
            Activity::Busy => SessionState::Active,
        }
    }
}

/// A session verify opens: who it logs in as and what it does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Canary {
    /// The role to create (LOGIN, dropped afterwards).
    pub role: String,
    /// Roles to grant it, for `member_of`.
    pub groups: Vec<String>,
    /// The database to connect to (None: the target's).
    pub database: Option<String>,
    /// The `application_name` the session sets.
    pub application: String,
    /// A client address the session must come from, when the scope names addresses (checked
    /// once connected).
    pub client_addr: Option<IpAddr>,
    /// What the session does while waiting.
    pub activity: Activity,
}

/// A name matching `glob`: each `*` becomes the run's canary name, each `?` an `x`.
pub(crate) fn fill(glob: &Glob, token: &str) -> String {
    glob.as_str()
        .replace('*', &format!("{CANARY_MARK}{token}"))
        .replace('?', "x")
}

/// A client address for a sample session in `scope`: inside one of its address blocks, or,
/// when it names none, a Unix socket or a documentation address (192.0.2.1, 2001:db8::1) — the
/// first that `[exempt] addresses` does not exempt, so that an exempt `local` does not hide the
/// rule. None stands for a Unix socket.
pub(crate) fn sample_address(scope: &Scope, exempt: &Exemptions) -> Option<IpAddr> {
    let candidates: Vec<Option<IpAddr>> = if scope.addresses.is_empty() {
        vec![
            None,
            Some(IpAddr::from([192, 0, 2, 1])),
            Some(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])),
        ]
    } else {
        scope
            .addresses
            .iter()
            .map(|block| match block {
                AddressBlock::Local => None,
                AddressBlock::Net { network, .. } => Some(*network),
            })
            .collect()
    };
    candidates
        .iter()
        .copied()
        .find(|a| exempt.by_address(*a).is_none())
        .unwrap_or_else(|| candidates.first().copied().flatten())
}

/// The canary that rule `index` of `policy` would end, or why none can be made. The role must
/// be one verify creates, so `roles` needs a pattern; a group in `member_of` and a database in
/// `databases` must be named exactly (they must exist). The canary must not be exempt, and the
/// engine must name this rule when its limit is reached at `now` (an earlier rule would end it
/// first).
pub fn canary_for(
    policy: &Policy,
    index: usize,
    limit: Limit,
    now: Timestamp,
    token: &str,
) -> Result<Canary, String> {
    let canary = in_scope(policy, index, token)?;
    let session = sample_session(&canary, now);
    expect_ended_by(
        policy,
        index,
        &session,
        now + limit.get() + jiff::SignedDuration::from_millis(1),
    )?;
    Ok(canary)
}

/// A canary whose role, groups, database, application and address put its session in the
/// scope of rule `index`, or why none can be made (nothing is checked against the engine).
pub(crate) fn in_scope(policy: &Policy, index: usize, token: &str) -> Result<Canary, String> {
    let rule = &policy.rules[index];
    let scope = &rule.scope;
    let role = if scope.roles.is_empty() {
        format!("{CANARY_MARK}{token}")
    } else {
        let pattern = scope.roles.iter().find(|g| !g.is_literal()).ok_or_else(|| {
            format!(
                "the rule names its roles exactly ({}); verify logs in only as a role it creates, and a pattern such as \"analyst_*\" would let it",
                list(&scope.roles)
            )
        })?;
        fill(pattern, token)
    };
    if role.len() > 63 {
        return Err(format!(
            "a canary name in this scope (\"{role}\") is longer than PostgreSQL's 63 bytes"
        ));
    }
    let mut groups = Vec::new();
    if !scope.member_of.is_empty() && !scope.member_of.iter().any(|g| g.matches(&role)) {
        let group = scope
            .member_of
            .iter()
            .find(|g| g.is_literal())
            .ok_or_else(|| {
                format!(
                    "member_of holds only patterns ({}); the canary needs a group named exactly",
                    list(&scope.member_of)
                )
            })?;
        groups.push(group.as_str().to_owned());
    }
    let database = if scope.databases.is_empty() {
        None
    } else {
        let db = scope
            .databases
            .iter()
            .find(|g| g.is_literal())
            .ok_or_else(|| {
                format!(
                    "databases holds only patterns ({}); the canary needs a database named exactly",
                    list(&scope.databases)
                )
            })?;
        Some(db.as_str().to_owned())
    };
    let application = scope
        .applications
        .first()
        .map_or_else(|| "curfew-verify".to_owned(), |g| fill(g, token));
    Ok(Canary {
        role,
        groups,
        database,
        application,
        client_addr: sample_address(scope, &policy.exempt),
        activity: Activity::for_condition(&rule.condition),
    })
}

/// A synthetic session of `canary`, started (and in its state) since `since`.
pub fn sample_session(canary: &Canary, since: Timestamp) -> Session {
    let mut member_of = canary.groups.clone();
    member_of.push(canary.role.clone());
    Session {
        pid: 1,
        backend_start: since,
        xact_start: (canary.activity != Activity::Idle).then_some(since),
        state: canary.activity.state(),
        state_change: Some(since),
        role: Arc::from(canary.role.as_str()),
        member_of: Arc::from(member_of),
        database: Arc::from(canary.database.as_deref().unwrap_or("postgres")),
        client_addr: canary.client_addr.into(),
        application: Arc::from(canary.application.as_str()),
        backend_type: BackendType::ClientBackend,
    }
}

/// Whether the engine ends `session` at `at` by rule `index`; if not, what it does instead, as
/// a sentence ("exempt by [exempt] roles", "ended first by rule \"x\"").
pub fn expect_ended_by(
    policy: &Policy,
    index: usize,
    session: &Session,
    at: Timestamp,
) -> Result<(), String> {
    // With the overrides the agent builds from canary role names (a window edge).
    let sessions = std::slice::from_ref(session);
    let overrides = curfew_policy::Overrides::canary_edges(policy, sessions);
    let verdict = curfew_policy::assess_with(policy, sessions, at, &overrides)
        .pop()
        .unwrap_or(Verdict::Untouched);
    match verdict {
        Verdict::Ends(d) if d.rule == index => Ok(()),
        other => Err(describe(policy, &other)),
    }
}

/// The engine's verdict as a phrase.
pub(crate) fn describe(policy: &Policy, verdict: &Verdict) -> String {
    match verdict {
        Verdict::NotClient => "not a client session".to_owned(),
        Verdict::Exempt { by } => format!("exempt by {by}"),
        Verdict::Ends(d) => format!("ended by rule \"{}\"", policy.rules[d.rule].name),
        Verdict::Reported(d) => format!(
            "reported (not ended) by rule \"{}\"",
            policy.rules[d.rule].name
        ),
        Verdict::Scheduled(d) => format!(
            "kept; rule \"{}\" ends it at {}",
            policy.rules[d.rule].name,
            d.deadline.round(jiff::Unit::Second).unwrap_or(d.deadline)
        ),
        Verdict::Untouched => "kept; no rule ends it".to_owned(),
    }
}

fn list(globs: &[Glob]) -> String {
    globs
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
