//! PostgreSQL: per-role settings (`ALTER ROLE ... SET idle_session_timeout`, `... SET
//! idle_in_transaction_session_timeout`, `ALTER ROLE ... CONNECTION LIMIT`) for the rules that
//! map, and a comment saying why for each rule that does not.
//!
//! Role patterns, memberships and database patterns are expanded when the script is applied
//! (see [`crate::postgres_sql`]). When several rules set the same thing for one role, the
//! statements run from the largest value to the smallest, so the strictest is set last and wins.

use curfew_policy::{Condition, Policy, Rule};

use crate::Margin;
use crate::postgres_sql::{EPILOGUE, prologue};
use crate::scope::{Exempt, Selector, agent_roles, common_obstacle, or_list};
use crate::text::{comment, comment_line, comment_safe, literal, shown, shown_list};

/// The largest value PostgreSQL accepts for the timeouts (milliseconds) and for CONNECTION LIMIT.
const PG_INT_MAX: i64 = i32::MAX as i64;

/// What a rule can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    /// `idle_session_timeout` (PostgreSQL 14+).
    IdleSession,
    /// `idle_in_transaction_session_timeout`.
    IdleInTransaction,
    /// `CONNECTION LIMIT`.
    ConnectionLimit,
}

impl Setting {
    const ALL: [Setting; 3] = [
        Setting::IdleSession,
        Setting::IdleInTransaction,
        Setting::ConnectionLimit,
    ];

    fn name(self) -> &'static str {
        match self {
            Setting::IdleSession => "idle_session_timeout",
            Setting::IdleInTransaction => "idle_in_transaction_session_timeout",
            Setting::ConnectionLimit => "CONNECTION LIMIT",
        }
    }
}

/// What one rule becomes in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// A native setting.
    Native {
        /// Which.
        setting: Setting,
        /// Milliseconds for the timeouts, sessions for CONNECTION LIMIT: what "strictest" compares.
        amount: i64,
        /// As written in the statement: `'15min'`, `1`.
        value: String,
        /// The databases it is set in (`None`: all).
        databases: Option<Vec<String>>,
        /// For a timeout set above the rule's limit: the limit and the margin, in words.
        backstop: Option<String>,
    },
    /// No native equivalent; why.
    Unmapped(String),
}

/// Decide what a rule becomes; timeouts go `margin` above the rule's limit.
pub(crate) fn map_rule(rule: &Rule, margin: Margin) -> Mapping {
    if let Some(why) = common_obstacle(rule, "role") {
        return Mapping::Unmapped(why);
    }
    let databases = (!rule.scope.databases.is_empty()).then(|| {
        rule.scope
            .databases
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect::<Vec<_>>()
    });
    let timeout = |setting: Setting, limit: curfew_policy::Limit| {
        let limit_ms = i64::try_from(limit.get().as_millis()).unwrap_or(i64::MAX);
        if limit_ms > PG_INT_MAX {
            return Mapping::Unmapped(format!(
                "its limit ({limit}) is longer than the largest {} PostgreSQL accepts \
                 (2147483647 ms, about 24.8 days).",
                setting.name()
            ));
        }
        // Whole seconds, rounded up: a value like '990001ms' helps nobody.
        let margin_ms = u64::try_from(margin.above(limit.to_std()).as_millis())
            .unwrap_or(u64::MAX)
            .div_ceil(1000)
            .saturating_mul(1000);
        let margin_ms = i64::try_from(margin_ms).unwrap_or(i64::MAX);
        let ms = limit_ms.saturating_add(margin_ms).min(PG_INT_MAX);
        let backstop = (ms > limit_ms).then(|| {
            let cut = if ms - limit_ms < margin_ms {
                ", cut to PostgreSQL's largest value"
            } else {
                ""
            };
            format!(
                "the rule's {limit} plus a margin of {}{cut}",
                span(u64::try_from(ms - limit_ms).unwrap_or(0))
            )
        });
        Mapping::Native {
            setting,
            amount: ms,
            value: duration_value(ms),
            databases: databases.clone(),
            backstop,
        }
    };
    match &rule.condition {
        Condition::Idle(limit) => timeout(Setting::IdleSession, *limit),
        Condition::IdleInTransaction(limit) => timeout(Setting::IdleInTransaction, *limit),
        Condition::Lifetime(_) => Mapping::Unmapped(
            "PostgreSQL has no setting that limits how long a session stays connected.".to_owned(),
        ),
        Condition::Allow(_) | Condition::Deny(_) => Mapping::Unmapped(format!(
            "PostgreSQL has no setting that depends on the time of day or the date; the curfew \
             agent ends these sessions{}.",
            if rule.lock_logins {
                " and disables the logins of the roles in scope while sessions are not allowed"
            } else {
                ""
            }
        )),
        // Refused earlier by `common_obstacle`; kept for the match.
        Condition::Violations(_) => Mapping::Unmapped(
            "no setting counts errors by SQLSTATE (the curfew gateway counts them for its own \
             sessions)."
                .to_owned(),
        ),
        Condition::MaxSessions(_) if databases.is_some() => Mapping::Unmapped(
            "CONNECTION LIMIT counts a role's sessions in every database; a limit on its sessions \
             in some databases only cannot be expressed (a database's CONNECTION LIMIT counts \
             every role's sessions)."
                .to_owned(),
        ),
        Condition::MaxSessions(n) if i64::from(*n) > PG_INT_MAX => Mapping::Unmapped(format!(
            "its limit ({n}) is larger than the largest CONNECTION LIMIT PostgreSQL accepts."
        )),
        Condition::MaxSessions(n) => Mapping::Native {
            setting: Setting::ConnectionLimit,
            amount: i64::from(*n),
            value: n.to_string(),
            backstop: None,
            databases: None,
        },
    }
}

/// Milliseconds as a PostgreSQL time value in the largest unit that is exact: `'15min'`,
/// `'90s'`, `'1500ms'`.
pub(crate) fn duration_value(ms: i64) -> String {
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    for (size, unit) in units {
        if ms % size == 0 {
            return format!("'{}{unit}'", ms / size);
        }
    }
    format!("'{ms}ms'")
}

/// One `CALL` in the output.
struct Call<'a> {
    rule: &'a Rule,
    setting: Setting,
    amount: i64,
    value: String,
    selector: Selector,
    databases: Option<Vec<String>>,
    note: Option<String>,
}

/// The PostgreSQL script for a policy. `source` and `sha256` name the policy file in the header.
pub(crate) fn compile(policy: &Policy, source: &str, sha256: &str, margin: Margin) -> String {
    let exempt = Exempt::of(policy);
    let agents = agent_roles(policy);
    let mappings: Vec<(&Rule, Mapping)> = policy
        .rules
        .iter()
        .map(|r| (r, map_rule(r, margin)))
        .collect();

    let mut out = String::new();
    header(&mut out, source, sha256, margin);
    exemptions(&mut out, &exempt, &agents);
    comment_line(&mut out, "Rules:");
    for (rule, mapping) in &mappings {
        summarize(&mut out, rule, mapping);
    }
    comment_line(&mut out, "");

    let calls = calls(&mappings);
    if calls.is_empty() {
        comment_line(
            &mut out,
            "Nothing to apply: no rule of this policy can be expressed natively.",
        );
        return out;
    }
    out.push('\n');
    out.push_str(&prologue(&exempt, &agents));
    for setting in Setting::ALL {
        let of: Vec<&Call> = calls.iter().filter(|c| c.setting == setting).collect();
        if of.is_empty() {
            continue;
        }
        out.push('\n');
        comment_line(
            &mut out,
            &format!(
                "{}: largest first, so that where rules overlap the strictest is set last.",
                setting.name()
            ),
        );
        for call in of {
            write_call(&mut out, call);
        }
    }
    exempt_databases(&mut out, &exempt, &calls);
    out.push('\n');
    out.push_str(EPILOGUE);
    out
}

fn header(out: &mut String, source: &str, sha256: &str, margin: Margin) {
    comment_line(out, "curfew compile --dialect postgres");
    comment_line(out, &format!("Policy: {source}"));
    comment_line(out, &format!("SHA-256: {sha256}"));
    comment_line(out, "");
    for paragraph in [
        "Native PostgreSQL settings for the rules of this policy that PostgreSQL can express \
         itself: defense in depth beside the curfew agent, not a replacement for it.",
        "WARNING: these are per-role defaults, and any user can override them for their own \
         session (SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0). They \
         give no warning before a session ends and leave no record of why it ended. The curfew \
         agent enforces the whole policy from outside the session, where users cannot switch it \
         off: keep it running.",
        &margin_paragraph(margin),
        "Apply on the primary as a superuser: psql -v ON_ERROR_STOP=1 -f FILE (role settings \
         replicate to standbys). The script runs in one transaction and needs PostgreSQL 14 or \
         later. Settings take effect for sessions that start afterwards.",
        "Role patterns, memberships and database patterns are expanded when the script runs: \
         roles and databases created later are covered only once it runs again (running it again \
         is safe). Settings it made earlier that the policy no longer asks for are not removed: \
         ALTER ROLE name RESET idle_session_timeout removes one. A setting on a group role does \
         not reach its members, so members are given the settings themselves.",
        "When several rules give a role different limits, the strictest (smallest) wins: the \
         statements for each setting run from the largest value to the smallest.",
    ] {
        comment(out, "-- ", "-- ", paragraph);
        comment_line(out, "");
    }
}

/// A span of milliseconds as the policy writes durations: `90s`, `1m30s`, `1h12m`.
fn span(ms: u64) -> String {
    curfew_policy::Limit::from_millis(u32::try_from(ms).unwrap_or(u32::MAX))
        .map_or_else(|| format!("{ms}ms"), |l| l.to_string())
}

/// Why the timeouts are above the limits, and by how much.
fn margin_paragraph(margin: Margin) -> String {
    let how = match margin {
        Margin::Default => "the larger of 1 minute and a tenth of the limit (the default; \
                            curfew compile --margin sets another)"
            .to_owned(),
        Margin::Fixed(m) if m.is_zero() => {
            return "Margin: none (--margin 0): each timeout equals curfew's limit, so PostgreSQL \
                    may end a session at the instant the agent would, and then the agent \
                    records no reason for it."
                .to_owned();
        }
        Margin::Fixed(m) => format!(
            "{} (curfew compile --margin)",
            span(u64::try_from(m.as_millis()).unwrap_or(u64::MAX))
        ),
    };
    format!(
        "Margin: each timeout is set above curfew's limit by {how}, so that the curfew agent ends \
         the session first and records why; PostgreSQL ends it only when the agent has not (for \
         instance while it is stopped). A timeout equal to the limit would race the agent and \
         destroy that evidence."
    )
}

fn exemptions(out: &mut String, exempt: &Exempt, agents: &[String]) {
    comment_line(out, "Exemptions:");
    // (what is exempt, its names, what the script does about it)
    let kinds: [(String, &[String], &str); 6] = [
        (
            "[exempt] roles".to_owned(),
            &exempt.roles,
            "never given these settings.",
        ),
        (
            "[exempt] member_of".to_owned(),
            &exempt.member_of,
            "members (and the roles themselves) are never given these settings.",
        ),
        (
            format!(
                "curfew's own role{}",
                if agents.len() == 1 { "" } else { "s" }
            ),
            agents,
            "(the targets' users): never given these settings.",
        ),
        (
            "[exempt] databases".to_owned(),
            &exempt.databases,
            "the timeouts are set to 0 (off) in these databases for the roles given them, at \
             the end of the script. CONNECTION LIMIT counts sessions in every database, these \
             included.",
        ),
        (
            "[exempt] applications".to_owned(),
            &exempt.applications,
            "cannot be expressed natively (a role's settings cannot depend on application_name); \
             sessions of the roles below get these settings whatever application they come from.",
        ),
        (
            "[exempt] addresses".to_owned(),
            &exempt.addresses,
            "cannot be expressed natively (a role's settings cannot depend on where a session \
             connects from); sessions of the roles below get these settings from every address.",
        ),
    ];
    let mut any = false;
    for (what, names, effect) in kinds {
        if names.is_empty() {
            continue;
        }
        any = true;
        // "(the targets' users): ..." follows the names without a colon of its own.
        let joiner = if effect.starts_with('(') { " " } else { ": " };
        comment(
            out,
            "--   ",
            "--     ",
            &format!(
                "{what} {}{joiner}{effect}",
                shown_list(names.iter().map(String::as_str))
            ),
        );
    }
    for entry in &exempt.combined {
        any = true;
        comment(
            out,
            "--   ",
            "--     ",
            &format!(
                "{entry}: cannot be expressed natively (a role's settings cannot depend on a \
                 session's other keys); these sessions get the settings of their role."
            ),
        );
    }
    if !any {
        comment_line(out, "  none.");
    }
    comment_line(out, "");
}

fn summarize(out: &mut String, rule: &Rule, mapping: &Mapping) {
    let head = format!(
        "{} ({}):",
        shown(&rule.name),
        curfew_policy::explain::summary(rule),
    );
    let text = match mapping {
        Mapping::Unmapped(why) => format!("{head} not expressible natively: {why}"),
        Mapping::Native {
            setting,
            value,
            backstop,
            ..
        } => {
            let target = Selector::of(&rule.scope).describe();
            let as_rule = match backstop {
                Some(b) => format!("a backstop behind the agent ({b})"),
                None => "as the rule does".to_owned(),
            };
            let mut text = match setting {
                Setting::IdleSession => format!(
                    "{head} idle_session_timeout = {value} for {target}. PostgreSQL ends a \
                     session idle outside a transaction for longer than this, {as_rule}."
                ),
                Setting::IdleInTransaction => format!(
                    "{head} idle_in_transaction_session_timeout = {value} for {target}. PostgreSQL \
                     ends a session idle inside a transaction for longer than this, {as_rule}."
                ),
                Setting::ConnectionLimit => format!(
                    "{head} CONNECTION LIMIT {value} for {target}. Unlike the rule, PostgreSQL \
                     refuses a login beyond the limit instead of ending the newest session, and \
                     does not limit superusers."
                ),
            };
            if let Some(warn) = rule.warn {
                text.push_str(&format!(
                    " The rule's warn lead ({warn}) has no native equivalent; curfew's agent records \
                     a session_warned audit record then (the session's user is not told)."
                ));
            }
            text
        }
    };
    comment(out, "--   ", "--     ", &text);
}

/// The calls for the native rules, per setting: role-wide ones from the largest value to the
/// smallest, then database-specific ones likewise. A database-specific value overrides the
/// role-wide one in its databases, so a role-wide value smaller than a database-specific one is
/// set again in those databases (after it, being smaller), to keep the strictest.
fn calls<'a>(mappings: &'a [(&'a Rule, Mapping)]) -> Vec<Call<'a>> {
    let native: Vec<Call> = mappings
        .iter()
        .filter_map(|(rule, mapping)| match mapping {
            Mapping::Native {
                setting,
                amount,
                value,
                databases,
                ..
            } => Some(Call {
                rule,
                setting: *setting,
                amount: *amount,
                value: value.clone(),
                selector: Selector::of(&rule.scope),
                databases: databases.clone(),
                note: None,
            }),
            Mapping::Unmapped(_) => None,
        })
        .collect();
    let mut ordered = Vec::new();
    for setting in Setting::ALL {
        let mut wide: Vec<&Call> = native
            .iter()
            .filter(|c| c.setting == setting && c.databases.is_none())
            .collect();
        wide.sort_by_key(|c| std::cmp::Reverse(c.amount));
        let mut specific: Vec<Call> = Vec::new();
        for call in native
            .iter()
            .filter(|c| c.setting == setting && c.databases.is_some())
        {
            specific.push(call.again(None));
        }
        let mut extra = Vec::new();
        let mut seen: Vec<&Vec<String>> = Vec::new();
        for call in &specific {
            let Some(databases) = &call.databases else {
                continue;
            };
            if seen.contains(&databases) {
                continue;
            }
            seen.push(databases);
            let largest = specific
                .iter()
                .filter(|c| c.databases.as_ref() == Some(databases))
                .map(|c| c.amount)
                .max()
                .unwrap_or(0);
            for w in wide.iter().filter(|w| w.amount < largest) {
                let mut again = w.again(Some(format!(
                    "set again in databases {}, where a larger database-specific value would \
                     otherwise override it",
                    or_list(databases)
                )));
                again.databases = Some(databases.clone());
                extra.push(again);
            }
        }
        specific.extend(extra);
        specific.sort_by_key(|c| std::cmp::Reverse(c.amount));
        ordered.extend(wide.into_iter().map(|c| c.again(None)));
        ordered.extend(specific);
    }
    ordered
}

impl<'a> Call<'a> {
    fn again(&self, note: Option<String>) -> Call<'a> {
        Call {
            rule: self.rule,
            setting: self.setting,
            amount: self.amount,
            value: self.value.clone(),
            selector: self.selector.clone(),
            databases: self.databases.clone(),
            note: note.or_else(|| self.note.clone()),
        }
    }
}

fn write_call(out: &mut String, call: &Call) {
    let mut about = format!(
        "Rule {} ({})",
        shown(&call.rule.name),
        curfew_policy::explain::summary(call.rule),
    );
    if let Some(note) = &call.note {
        about.push_str(&format!(": {note}"));
    }
    about.push('.');
    comment(out, "-- ", "--   ", &about);
    // The rule's name labels the NOTICEs; shown on one line like in comments.
    let rule = literal(&comment_safe(&call.rule.name));
    let scope = scope_arguments(&call.selector, call.databases.as_deref());
    match call.setting {
        Setting::ConnectionLimit => out.push_str(&format!(
            "CALL pg_temp.curfew_connection_limit({rule}, {}{scope});\n",
            call.value
        )),
        setting => out.push_str(&format!(
            "CALL pg_temp.curfew_set({rule}, {}, {}{scope});\n",
            literal(setting.name()),
            call.value
        )),
    }
}

fn scope_arguments(selector: &Selector, databases: Option<&[String]>) -> String {
    let mut args = String::new();
    if !selector.roles.is_empty() {
        args.push_str(&format!(", roles => {}", array(&selector.roles)));
    }
    if !selector.member_of.is_empty() {
        args.push_str(&format!(", member_of => {}", array(&selector.member_of)));
    }
    if let Some(databases) = databases {
        args.push_str(&format!(", databases => {}", array(databases)));
    }
    args
}

/// `ARRAY['a', 'b']` (never empty here: scope lists are never empty).
fn array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| literal(i)).collect();
    format!("ARRAY[{}]", items.join(", "))
}

/// Exempt databases: the timeouts are switched off there for every role a rule gave them to,
/// last, so nothing set before overrides it.
fn exempt_databases(out: &mut String, exempt: &Exempt, calls: &[Call]) {
    if exempt.databases.is_empty() {
        return;
    }
    for setting in [Setting::IdleSession, Setting::IdleInTransaction] {
        let mut done: Vec<&Selector> = Vec::new();
        for call in calls.iter().filter(|c| c.setting == setting) {
            if done.contains(&&call.selector) {
                continue;
            }
            if done.is_empty() {
                out.push('\n');
                comment_line(
                    out,
                    &format!("{}: off in the exempt databases.", setting.name()),
                );
            }
            done.push(&call.selector);
            comment(
                out,
                "-- ",
                "--   ",
                &format!(
                    "Off for {}, in the [exempt] databases.",
                    call.selector.describe()
                ),
            );
            out.push_str(&format!(
                "CALL pg_temp.curfew_set({}, {}, '0'{});\n",
                literal("[exempt] databases"),
                literal(setting.name()),
                scope_arguments(&call.selector, Some(&exempt.databases))
            ));
        }
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
