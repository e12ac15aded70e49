//! The validated policy: what the rest of curfew works with. Nothing here can be invalid; the
//! parser is the only way in.

use crate::duration::Limit;
pub use crate::exempt::{ExemptBy, Exemptions};
pub use crate::gateway::{DEFAULT_GATEWAY_LISTEN, Gateway, GatewayTls};
pub use crate::scope::Scope;
use crate::window::Schedule;

/// A whole policy file, validated.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `[agent]`: how the agent runs.
    pub agent: AgentSettings,
    /// `[[target]]`: the servers to watch.
    pub targets: Vec<Target>,
    /// `[exempt]`: sessions no rule ever touches.
    pub exempt: Exemptions,
    /// `[[rule]]`: the conditions, in file order.
    pub rules: Vec<Rule>,
    /// `[verify]`: how `curfew verify` tests the control.
    pub verify: VerifySettings,
    /// `[policy]`: who owns and approved this policy, its version, what it implements.
    pub meta: PolicyMeta,
    /// `[audit]`: where the audit chain is anchored and signed besides the log.
    pub audit: AuditSettings,
    /// `[notify]`: who hears of warnings besides the audit log.
    pub notify: NotifySettings,
    /// `[gateway]`: the wire-protocol gateway, if the policy configures one.
    pub gateway: Option<Gateway>,
}

/// `[policy]`: the policy's own metadata, shown by `explain` and `report` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyMeta {
    /// Who owns the policy (a person or a team).
    pub owner: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// The policy's version, as the organization numbers it.
    pub version: Option<String>,
    /// From when it is in force (a date, as written).
    pub effective: Option<String>,
    /// When it must be reviewed next (a date, as written).
    pub review_by: Option<String>,
    /// The organization's document this policy implements (e.g. "SSP AC-12 rev 3").
    pub implements: Option<String>,
}

/// `[audit]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// An Ed25519 private key file: checkpoint records are signed with it.
    pub signing_key: Option<String>,
    /// Also send each anchor (the chain's head) to the local syslog/journald.
    pub syslog: bool,
    /// The gateway's `session_terminated` records of `violations` rules also quote the
    /// statements whose errors were counted (off: only their SQLSTATEs, since a statement's
    /// text may hold data or a password).
    pub include_statement: bool,
}

/// `[notify]` settings: hooks that hear of warnings; they never delay enforcement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifySettings {
    /// A program run with the event as JSON on its standard input.
    pub command: Option<String>,
    /// An `http://` or `https://` URL the event is POSTed to as JSON.
    pub webhook: Option<String>,
}

/// A part every enforceable policy has: without it an agent would end nothing or watch nothing,
/// which is how a policy could quietly switch curfew off (issue 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No `[[rule]]`: nothing would ever be ended.
    Rule,
    /// No `[[target]]`: no server would be watched.
    Target,
}

impl Missing {
    /// What is missing and what to do, as one sentence.
    pub fn message(self) -> &'static str {
        match self {
            Missing::Rule => {
                "the policy defines no [[rule]], so it would end no session; add at least one [[rule]]"
            }
            Missing::Target => {
                "the policy names no [[target]], so an agent would watch no server; add a [[target]] with a name and a url"
            }
        }
    }

    /// As a diagnostic at the start of the file (what is absent has no position of its own).
    pub fn diagnostic(
        self,
        source: &str,
        severity: crate::diagnostic::Severity,
    ) -> crate::diagnostic::Diagnostic {
        crate::diagnostic::Diagnostic {
            severity,
            source: source.to_owned(),
            line: 1,
            column: 1,
            message: self.message().to_owned(),
        }
    }
}

impl Policy {
    /// What this policy lacks to be enforced. The parser accepts a policy without rules or
    /// targets (tests and tools work on fragments); `curfew validate`, the agent and its reload
    /// refuse one.
    pub fn missing(&self) -> Vec<Missing> {
        let mut missing = Vec::new();
        if self.rules.is_empty() {
            missing.push(Missing::Rule);
        }
        if self.targets.is_empty() {
            missing.push(Missing::Target);
        }
        missing
    }
}

/// What marks a role as a `curfew verify` canary. verify's roles are named
/// `<prefix>curfew_canary_<rule index>_<run>...`: the rule under test follows the mark.
pub const CANARY_MARK: &str = "curfew_canary_";

/// `[verify]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifySettings {
    /// A shorter limit that an `idle`, `idle_in_transaction` or `lifetime` rule applies to the
    /// `curfew verify` canary testing that rule (and to no other session, nor for any other
    /// rule), so that a 15-minute rule can be tested live in seconds. Only ever shortens.
    pub test_limit: Option<Limit>,
}

impl VerifySettings {
    /// The limit a canary testing a rule with this limit is held to.
    pub fn canary_limit(&self, limit: Limit) -> Limit {
        match self.test_limit {
            Some(test) if test < limit => test,
            _ => limit,
        }
    }

    /// The limit rule `rule` applies to a session of `role`: the test limit if the role is the
    /// canary testing this rule, else the rule's own.
    pub fn limit_for(&self, role: &str, rule: usize, limit: Limit) -> Limit {
        if self.test_limit.is_some() && canary_rule(role) == Some(rule) {
            self.canary_limit(limit)
        } else {
            limit
        }
    }
}

/// For a canary role, the index of the rule it tests.
pub fn canary_rule(role: &str) -> Option<usize> {
    let (_, rest) = role.split_once(CANARY_MARK)?;
    let (digits, _) = rest.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What marks a window-edge canary's edge: `<prefix>curfew_canary_<rule>_<run>_e<unix
/// seconds>...`, the segment after the run's token.
pub const CANARY_EDGE_MARK: char = 'e';

/// For a `curfew verify` window-edge canary, the edge it was given: the instant (whole Unix
/// seconds) at which the window rule it tests must end its session at the latest.
///
/// **An explicit override, for verify only.** The engine honours it for the session of a
/// role carrying [`CANARY_MARK`], for the window rule (`allow`/`deny`) whose index follows the
/// mark, and for nothing else; it can only bring that rule's deadline *earlier* (the earlier of
/// the window's own deadline and the edge wins). It never exempts a session, never delays an
/// end, never touches another rule or another role, and needs no setting: a role that names
/// itself this way can only shorten its own sessions. It lets verify watch a window close a
/// few seconds ahead instead of waiting for the real one.
pub fn canary_edge(role: &str) -> Option<jiff::Timestamp> {
    canary_rule(role)?;
    let (_, rest) = role.split_once(CANARY_MARK)?;
    let mut parts = rest.split('_');
    let _rule = parts.next()?;
    let _run = parts.next()?;
    let edge = parts.next()?.strip_prefix(CANARY_EDGE_MARK)?;
    if edge.is_empty() || edge.len() > 12 || !edge.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    jiff::Timestamp::from_second(edge.parse().ok()?).ok()
}

/// `[agent]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// How often the agent looks for new sessions (it also wakes at every deadline).
    pub interval: Limit,
    /// Where the audit log is written, if set in the policy.
    pub audit_log: Option<String>,
    /// Where the HTTP endpoint (metrics, health, status) listens, if anywhere.
    pub listen: Option<std::net::SocketAddr>,
    /// How often the agent records a heartbeat per target (and on every change of state).
    pub heartbeat: Limit,
    /// How long past a deadline the agent leaves a session curfew gateway registered to the
    /// gateway, for the rules the gateway enforces itself; after it, the agent ends the session
    /// and records that the gateway did not.
    pub gateway_grace: Limit,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            interval: Limit::from_secs(1).unwrap_or_else(|| unreachable!("1s is positive")),
            audit_log: None,
            listen: None,
            heartbeat: Limit::from_secs(60).unwrap_or_else(|| unreachable!("60s is positive")),
            gateway_grace: Limit::from_secs(10).unwrap_or_else(|| unreachable!("10s is positive")),
        }
    }
}

/// One database server to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Unique name used in audit records, metrics and messages.
    pub name: String,
    /// Connection URL, in the form of the target's database (never holds a password).
    pub url: crate::target_url::TargetUrl,
    /// File holding the password (read at connect time, never logged).
    pub password_file: Option<String>,
    /// A read-only standby: sessions are ended there, lock state comes from the primary.
    pub standby: bool,
    /// For a standby: the target it takes login-lock state from.
    pub primary: Option<String>,
}

/// What happens when a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// End the session.
    #[default]
    Terminate,
    /// Record what would have happened; end nothing (staged rollout).
    Report,
}

/// A rule's stable identity: its name, unique in a policy. Decisions carry it so that they
/// still designate the same rule after a reload that reorders (or adds or removes) rules, where
/// an index into [`Policy::rules`] would point at another one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(std::sync::Arc<str>);

impl RuleId {
    /// The id of the rule named `name`.
    pub fn new(name: &str) -> Self {
        Self(std::sync::Arc::from(name))
    }

    /// The rule's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Policy {
    /// The index of the rule with this id in this policy, if it has one.
    pub fn rule_index(&self, id: &RuleId) -> Option<usize> {
        self.rules.iter().position(|r| r.name == id.as_str())
    }
}

/// One `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name; appears in audit records, messages and reports.
    pub name: String,
    /// Free text for the security plan.
    pub description: Option<String>,
    /// The one condition that ends a session.
    pub condition: Condition,
    /// Which sessions the rule applies to.
    pub scope: Scope,
    /// How long before the end a warning is due: the agent records `session_warned` and calls
    /// the `[notify]` hooks; the session's user is not told.
    pub warn: Option<Limit>,
    /// Terminate, or only report.
    pub action: Action,
    /// For window rules: also disable the login of matching roles while outside the windows.
    pub lock_logins: bool,
    /// The requirements this rule implements (e.g. "NIST-800-171-3.1.11", "V-261910").
    pub controls: Vec<String>,
    /// `message`: the text a client is shown instead of curfew's own when this rule ends its
    /// session in the gateway or refuses its login (a site's banner); curfew's own words, which
    /// name the rule, then go to the DETAIL field (see [`crate::login_refusal::client_text`]).
    pub message: Option<String>,
}

/// Where a `lock_logins` rule stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginWindow {
    /// Whether logins of the roles it covers are to be disabled now.
    pub locked: bool,
    /// Since when (None: always so).
    pub since: Option<jiff::Timestamp>,
    /// Until when (None: stays so).
    pub until: Option<jiff::Timestamp>,
}

impl Rule {
    /// The rule's stable id (its name).
    pub fn id(&self) -> RuleId {
        RuleId::new(&self.name)
    }

    /// For a `lock_logins` rule: whether logins are locked at `at`, since and until when.
    pub fn login_window(&self, at: jiff::Timestamp) -> Option<LoginWindow> {
        if !self.lock_logins {
            return None;
        }
        let (schedule, locked_inside) = match &self.condition {
            Condition::Allow(s) => (s, false),
            Condition::Deny(s) => (s, true),
            _ => return None,
        };
        let state = schedule.state_at(at);
        Some(LoginWindow {
            locked: state.inside == locked_inside,
            since: state.since,
            until: state.until,
        })
    }

    /// Whether this rule's scope covers a role (its `roles` and `member_of`; other keys are
    /// refused on `lock_logins` rules).
    pub fn covers_role(&self, role: &str, member_of: &[String]) -> bool {
        self.scope.admits_role(role, member_of)
    }
}

/// The condition of a rule. Exactly one per rule.
#[derive(Debug, Clone)]
pub enum Condition {
    /// State `idle` for longer than the limit, measured from `state_change`.
    Idle(Limit),
    /// State `idle in transaction` (or aborted) for longer than the limit.
    IdleInTransaction(Limit),
    /// Connected for longer than the limit, whatever the session is doing.
    Lifetime(Limit),
    /// Sessions are allowed only inside these windows.
    Allow(Schedule),
    /// Sessions are not allowed inside these windows.
    Deny(Schedule),
    /// At most this many sessions per role; the newest beyond the limit end.
    MaxSessions(u32),
    /// Repeated policy violations: the server's errors with these SQLSTATEs. Only the curfew
    /// gateway sees them, for its own sessions, so the parser accepts an ending rule only in a
    /// policy with `[gateway]`; a report-only one is documentation (NOT ENFORCED).
    Violations(Violations),
}

impl Condition {
    /// The policy key that introduces this condition.
    pub fn key(&self) -> &'static str {
        match self {
            Condition::Idle(_) => "idle",
            Condition::IdleInTransaction(_) => "idle_in_transaction",
            Condition::Lifetime(_) => "lifetime",
            Condition::Allow(_) => "allow",
            Condition::Deny(_) => "deny",
            Condition::MaxSessions(_) => "max_sessions",
            Condition::Violations(_) => "violations",
        }
    }

    /// The time limit for idle, idle-in-transaction and lifetime rules.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Condition::Idle(l) | Condition::IdleInTransaction(l) | Condition::Lifetime(l) => {
                Some(*l)
            }
            _ => None,
        }
    }

    /// The windows of an allow or deny rule.
    pub fn schedule(&self) -> Option<&Schedule> {
        match self {
            Condition::Allow(s) | Condition::Deny(s) => Some(s),
            _ => None,
        }
    }
}

/// `violations = { sqlstates = [...], count = N, within = "10m", per = "session" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations {
    /// The SQLSTATE codes that count as a violation (e.g. 42501 insufficient_privilege).
    pub sqlstates: Vec<String>,
    /// How many violations end the session.
    pub count: u32,
    /// Within how long.
    pub within: Limit,
    /// Whose errors are counted together: each session's own (the default), or all the
    /// sessions of a role (`per = "role"`).
    pub per: ViolationsPer,
}

/// Whose errors a `violations` rule counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViolationsPer {
    /// Each session's own errors (`per = "session"`, the default).
    #[default]
    Session,
    /// The errors of all the sessions of a role (`per = "role"`).
    Role,
}
