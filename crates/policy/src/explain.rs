//! The policy as a document a system security plan can quote (NIST SP 800-171 3.1.11[a]): each
//! rule in plain English with its scope, exemptions, time zone and action.

use std::fmt::Write as _;

use crate::model::{Action, Condition, NotifySettings, Policy, PolicyMeta, Rule, Scope};
use crate::window::Schedule;

/// The whole policy, explained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    /// One entry per rule, in policy order.
    pub rules: Vec<RuleExplanation>,
    /// Who is never touched, as a sentence.
    pub exemptions: String,
    /// How and where the rules are enforced, as a sentence.
    pub enforcement: String,
    /// The targets by name (connection details stay out of documents).
    pub targets: Vec<String>,
    /// `[policy]`: owner, approval, version, dates, the document implemented.
    pub metadata: Metadata,
}

/// `[policy]` as documents show it; every field is optional.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Metadata {
    /// Who owns the policy.
    pub owner: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// In force from (YYYY-MM-DD).
    pub effective: Option<String>,
    /// Next review due (YYYY-MM-DD).
    pub review_by: Option<String>,
    /// The organization's document it implements.
    pub implements: Option<String>,
}

impl Metadata {
    fn of(meta: &PolicyMeta) -> Self {
        Self {
            owner: meta.owner.clone(),
            approved_by: meta.approved_by.clone(),
            version: meta.version.clone(),
            effective: meta.effective.clone(),
            review_by: meta.review_by.clone(),
            implements: meta.implements.clone(),
        }
    }

    /// The fields that are set, as (label, value), in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("Owner", &self.owner),
            ("Approved by", &self.approved_by),
            ("Version", &self.version),
            ("Effective", &self.effective),
            ("Review by", &self.review_by),
            ("Implements", &self.implements),
        ]
        .into_iter()
        .filter_map(|(label, v)| v.as_deref().map(|v| (label, v)))
        .collect()
    }
}

/// A requirement a rule names in `controls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ControlRef {
    /// The id as written (`NIST-800-171-3.1.11`, `local:SEC-7`).
    pub id: String,
    /// What it is.
    pub title: String,
}

/// One rule, explained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleExplanation {
    /// The rule's name.
    pub name: String,
    /// The author's own description, if any.
    pub description: Option<String>,
    /// The condition key (`idle`, `allow`, ...).
    pub condition: &'static str,
    /// What ends a session, in plain English.
    pub statement: String,
    /// Which sessions the rule applies to.
    pub applies_to: String,
    /// The time zone windows are read in.
    pub timezone: Option<String>,
    /// Terminate or report.
    pub action: Action,
    /// The action in plain English.
    pub action_text: String,
    /// The warning lead, if any (e.g. "2m").
    pub warn: Option<String>,
    /// What the warning is, as a sentence: what the running components do, and that the
    /// session's user is not told.
    pub warning: Option<String>,
    /// Whether logins are locked outside the windows.
    pub lock_logins: bool,
    /// `agent`, `gateway` (a `violations` rule: the gateway alone sees errors), or `none` for a
    /// rule no running component enforces.
    pub enforced_by: &'static str,
    /// Whether a running component enforces the rule (false: NOT ENFORCED).
    pub enforced: bool,
    /// Who enforces the rule, or that nothing does, as a sentence.
    pub enforcement: String,
    /// The requirements the rule implements (`controls`).
    pub controls: Vec<ControlRef>,
}

/// What a report-only `violations` rule gets instead of an enforcement: the agent cannot see
/// errors, and the gateway acts only on rules that end sessions.
pub const NOT_ENFORCED: &str = "NOT ENFORCED: no running curfew component acts on a report-only `violations` rule (the agent cannot see a session's errors; the curfew gateway counts them only for rules that end sessions). The rule is documentation only: no session is ended and nothing is recorded for it.";

/// Who enforces an ending `violations` rule (accepted only with a `[gateway]`): exactly what
/// runs, never more.
pub const GATEWAY_ENFORCED: &str =
    "the curfew gateway, for sessions through it; direct sessions are not watched";

/// Added for `per = "role"`: where the count lives, and what happens when it cannot be read.
pub const PER_ROLE_SCOPE: &str = "per-role counts are kept in the database for every gateway (the functions `curfew init` installs); when that count fails or takes over 2 s, a gateway's own count decides, which sees only its own sessions";

/// The `[gateway]`, when there is one, as a sentence to follow the enforcement's.
fn gateway_text(policy: &Policy) -> String {
    let Some(gateway) = &policy.gateway else {
        return String::new();
    };
    let listen: Vec<String> = gateway.listen.iter().map(ToString::to_string).collect();
    format!(
        " Clients may also connect through the curfew gateway on {}, which forwards each session to target \"{}\"{}, serving {}{}.",
        listen.join(", "),
        gateway.target,
        if gateway.require_tls {
            " and accepts only TLS"
        } else {
            ""
        },
        gateway
            .serve_members_of
            .as_deref()
            .map(|r| format!("the members of role \"{}\"", crate::visible(r)))
            .unwrap_or_else(|| "every login role".to_owned()),
        if gateway.serve_superusers {
            ", superusers included"
        } else {
            " except superusers"
        }
    )
}

/// Explain a policy.
pub fn explain(policy: &Policy) -> Explanation {
    Explanation {
        rules: policy
            .rules
            .iter()
            .map(|r| explain_rule(r, &policy.notify, policy.gateway.is_some()))
            .collect(),
        exemptions: exemptions(policy),
        enforcement: format!(
            "The curfew agent reads the sessions of each target at least every {}, and also wakes at the moment each session's deadline falls, so a session is ended when its condition is met, not at the next check. Ages are measured on the database server's clock. Each termination is recorded in a hash-chained audit log{}.{}",
            policy.agent.interval.to_words(),
            policy
                .agent
                .audit_log
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            policy
                .verify
                .test_limit
                .map(|t| format!(
                    " For the live control test (`curfew verify`), sessions of its temporary canary roles (names containing `{}`) are held to a test limit of {} where a rule's limit is longer; no other session is.",
                    crate::model::CANARY_MARK,
                    t.to_words()
                ))
                .unwrap_or_default()
        ) + &gateway_text(policy),
        targets: policy.targets.iter().map(|t| t.name.clone()).collect(),
        metadata: Metadata::of(&policy.meta),
    }
}

/// What happens at a rule's warning lead, truthfully: the agent has no channel to a database
/// session, so the user is not told.
fn warning_text(lead: crate::duration::Limit, action: Action, notify: &NotifySettings) -> String {
    let hooks: Vec<&str> = [
        notify.command.as_ref().map(|_| "runs the [notify] command"),
        notify
            .webhook
            .as_ref()
            .map(|_| "posts to the [notify] webhook"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let hooks = if hooks.is_empty() {
        "(no [notify] hook is configured)".to_owned()
    } else {
        format!("and {}", hooks.join(" and "))
    };
    format!(
        "{} before {}, the agent records a `session_warned` audit record {hooks}. The session's user is not told: the agent has no way to reach a database session.",
        lead.to_words(),
        match action {
            Action::Terminate => "the session is ended",
            Action::Report => "the rule would end the session",
        }
    )
}

fn explain_rule(rule: &Rule, notify: &NotifySettings, gateway: bool) -> RuleExplanation {
    let mut statement = match &rule.condition {
        Condition::Idle(limit) => format!(
            "A session that has been idle (connected, no statement running, no transaction open) for {} is ended.",
            limit.to_words()
        ),
        Condition::IdleInTransaction(limit) => format!(
            "A session that has kept a transaction open without running a statement for {} is ended; its transaction is rolled back.",
            limit.to_words()
        ),
        Condition::Lifetime(limit) => format!(
            "A session is ended {} after it connected, whatever it is doing at the time (a running statement is cancelled).",
            limit.to_words()
        ),
        Condition::Allow(s) => format!(
            "Sessions are allowed only during {}. A session found outside these windows is ended, including one that connects outside them.",
            windows(s)
        ),
        Condition::Deny(s) => format!(
            "Sessions are not allowed during {}. A session open when such a window begins, or that connects during it, is ended.",
            windows(s)
        ),
        Condition::MaxSessions(n) => format!(
            "Each role may hold at most {n} session{} at a time; the newest sessions beyond that are ended.",
            if *n == 1 { "" } else { "s" }
        ),
        Condition::Violations(v) => format!(
            "A session that causes {} error{} with SQLSTATE {} within {}{} is ended; one error before that, it is warned.",
            v.count,
            if v.count == 1 { "" } else { "s" },
            v.sqlstates.join(", "),
            v.within.to_words(),
            match v.per {
                crate::model::ViolationsPer::Session => "",
                crate::model::ViolationsPer::Role =>
                    " (counted across its role's sessions on every gateway)",
            }
        ),
    };
    if rule.lock_logins {
        statement.push_str(
            " While sessions are not allowed, the login of every role in scope is also disabled, and it is restored when they are allowed again.",
        );
    }
    let by_gateway = matches!(rule.condition, Condition::Violations(_));
    let enforced = !by_gateway || (gateway && rule.action == Action::Terminate);
    let action_text = match rule.action {
        _ if !enforced => NOT_ENFORCED.to_owned(),
        Action::Terminate => "The session is ended and the termination recorded.".to_owned(),
        Action::Report => {
            "Report only: curfew records when this rule would end a session, but does not end it."
                .to_owned()
        }
    };
    RuleExplanation {
        name: rule.name.clone(),
        description: rule.description.clone(),
        condition: rule.condition.key(),
        statement,
        applies_to: applies_to(&rule.scope),
        timezone: rule
            .condition
            .schedule()
            .map(|s| s.zone().iana_name().unwrap_or("UTC").to_owned()),
        action: rule.action,
        action_text,
        warn: rule.warn.map(|w| w.to_words()),
        warning: rule.warn.map(|w| warning_text(w, rule.action, notify)),
        lock_logins: rule.lock_logins,
        enforced_by: match (enforced, by_gateway) {
            (false, _) => "none",
            (true, true) => "gateway",
            (true, false) => "agent",
        },
        enforced,
        enforcement: match (&rule.condition, enforced) {
            (_, false) => NOT_ENFORCED.to_owned(),
            (Condition::Violations(v), true) if v.per == crate::model::ViolationsPer::Role => {
                format!("{GATEWAY_ENFORCED} ({PER_ROLE_SCOPE})")
            }
            (Condition::Violations(_), true) => GATEWAY_ENFORCED.to_owned(),
            (_, true) => "the curfew agent".to_owned(),
        },
        controls: rule
            .controls
            .iter()
            .map(|id| ControlRef {
                id: id.clone(),
                title: crate::controls::title(id),
            })
            .collect(),
    }
}

/// One line for a rule: its condition, options and scope (`idle 15m · warn 2m · members of
/// humans`), for listings such as `curfew validate`.
pub fn summary(rule: &Rule) -> String {
    let mut parts = vec![match &rule.condition {
        Condition::Idle(l) => format!("idle {l}"),
        Condition::IdleInTransaction(l) => format!("idle in transaction {l}"),
        Condition::Lifetime(l) => format!("lifetime {l}"),
        Condition::Allow(s) | Condition::Deny(s) => format!(
            "{} {} ({})",
            rule.condition.key(),
            s.windows()
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            s.zone().iana_name().unwrap_or("UTC")
        ),
        Condition::MaxSessions(n) => format!("at most {n} per role"),
        Condition::Violations(v) => format!(
            "{} × {} within {}{}",
            v.count,
            v.sqlstates.join("/"),
            v.within,
            match rule.action {
                Action::Report => " (NOT ENFORCED)",
                Action::Terminate => " (gateway sessions only)",
            }
        ),
    }];
    if let Some(w) = rule.warn {
        parts.push(format!("warn {w}"));
    }
    if rule.lock_logins {
        parts.push("locks logins".to_owned());
    }
    let scope = scope_parts(&rule.scope);
    parts.push(if scope.is_empty() {
        "every session".to_owned()
    } else {
        // "of roles `a`" reads as "roles a" in a listing.
        scope
            .iter()
            .map(|p| {
                let p = p.strip_prefix("of ").unwrap_or(p);
                p.strip_prefix("connected to ")
                    .unwrap_or(p)
                    .replace('`', "")
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    if rule.action == Action::Report {
        parts.push("report only".to_owned());
    }
    parts.join(" · ")
}

fn windows(s: &Schedule) -> String {
    let list: Vec<String> = s
        .windows()
        .iter()
        .map(|w| format!("\"{}\"", w.text))
        .collect();
    format!(
        "{} ({} time)",
        join_or(&list, "and"),
        s.zone().iana_name().unwrap_or("UTC")
    )
}

fn join_or(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} {word} {last}", rest.join(", ")),
    }
}

fn quoted(items: impl IntoIterator<Item = String>) -> String {
    let list: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    join_or(&list, "or")
}

fn scope_parts(scope: &Scope) -> Vec<String> {
    let mut parts = Vec::new();
    if !scope.roles.is_empty() {
        parts.push(format!(
            "of roles {}",
            quoted(scope.roles.iter().map(|g| g.to_string()))
        ));
    }
    if !scope.member_of.is_empty() {
        parts.push(format!(
            "of members of {}",
            quoted(scope.member_of.iter().map(|g| g.to_string()))
        ));
    }
    if !scope.databases.is_empty() {
        parts.push(format!(
            "connected to databases {}",
            quoted(scope.databases.iter().map(|g| g.to_string()))
        ));
    }
    if !scope.applications.is_empty() {
        parts.push(format!(
            "of applications {}",
            quoted(scope.applications.iter().map(|g| g.to_string()))
        ));
    }
    if !scope.addresses.is_empty() {
        let blocks: Vec<String> = scope
            .addresses
            .iter()
            .map(|a| match a {
                crate::pattern::AddressBlock::Local => "`local` (Unix socket)".to_owned(),
                other => format!("`{other}`"),
            })
            .collect();
        parts.push(format!("from addresses {}", join_or(&blocks, "or")));
    }
    parts
}

/// A scope in words ("of roles `a`, connected to databases `b`"); empty for every session.
pub fn explain_scope(scope: &Scope) -> String {
    scope_parts(scope).join(", ")
}

fn applies_to(scope: &Scope) -> String {
    if scope.is_everything() {
        "Every session that is not exempt.".to_owned()
    } else {
        format!("Sessions {}, unless exempt.", scope_parts(scope).join(", "))
    }
}

fn exemptions(policy: &Policy) -> String {
    let always = "Never ended by any rule: server processes that are not client sessions (replication senders, autovacuum, background workers)";
    // One clause per exemption; the keys of an `[[exempt]]` entry must all match.
    let clauses: Vec<String> = policy
        .exempt
        .entries
        .iter()
        .map(|e| join_or(&scope_parts(&e.scope), "and"))
        .collect();
    if clauses.is_empty() {
        return format!("{always} and curfew's own connections.");
    }
    let combined = policy
        .exempt
        .entries
        .iter()
        .any(|e| crate::exempt::ExemptKeys::of(&e.scope).names().count() > 1);
    let sessions = if combined {
        format!("sessions that are {}", clauses.join("; or that are "))
    } else {
        format!("sessions {}", join_or(&clauses, "or"))
    };
    let mut text = format!("{always}, curfew's own connections, and {sessions}.");
    if policy.exempt.by_application_alone().next().is_some() {
        text.push_str(
            " Note that the application name is chosen by the client, so an exemption by application alone is a convenience, not a security boundary.",
        );
    }
    text
}

impl Explanation {
    /// The explanation as a Markdown document; `source` names the policy file, `sha256` is the
    /// hash of its bytes (so a reader can tie the document to the file deployed).
    pub fn to_markdown(&self, source: &str, sha256: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Session termination conditions\n");
        let hash = sha256
            .map(|h| format!(" (SHA-256 `{h}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Defined in `{source}`{hash}. These are the conditions under which user sessions are terminated automatically (NIST SP 800-171 3.1.11 / SP 800-53 AC-12; DISA STIG V-261910 for PostgreSQL).\n"
        );
        let _ = writeln!(out, "## Policy\n");
        let fields = self.metadata.fields();
        if fields.is_empty() {
            let _ = writeln!(
                out,
                "The policy file does not say who owns or approved it (add a `[policy]` table).\n"
            );
        }
        for (label, value) in &fields {
            let _ = writeln!(out, "- **{label}:** {value}");
        }
        if !fields.is_empty() {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "## Conditions\n");
        if self.rules.is_empty() {
            let _ = writeln!(out, "No conditions are defined: no session is ended.\n");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let _ = writeln!(out, "### {}. {}\n", i + 1, rule.name);
            if let Some(d) = &rule.description {
                let _ = writeln!(out, "> {d}\n");
            }
            let _ = writeln!(out, "- **Condition:** {}", rule.statement);
            let _ = writeln!(out, "- **Applies to:** {}", rule.applies_to);
            if let Some(tz) = &rule.timezone {
                let _ = writeln!(out, "- **Time zone:** {tz}");
            }
            if let Some(w) = &rule.warning {
                let _ = writeln!(out, "- **Warning:** {w}");
            }
            // For a rule nothing enforces, the action would only repeat NOT ENFORCED.
            if rule.enforced {
                let _ = writeln!(out, "- **Action:** {}", rule.action_text);
            }
            let _ = writeln!(out, "- **Enforced by:** {}", rule.enforcement);
            if !rule.controls.is_empty() {
                let list: Vec<String> = rule
                    .controls
                    .iter()
                    .map(|c| format!("`{}` ({})", c.id, c.title))
                    .collect();
                let _ = writeln!(out, "- **Controls:** {}", list.join("; "));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "## Exemptions\n\n{}\n", self.exemptions);
        let _ = writeln!(out, "## Enforcement\n\n{}\n", self.enforcement);
        if !self.targets.is_empty() {
            let _ = writeln!(out, "Servers: {}.\n", self.targets.join(", "));
        }
        out
    }
}
