//! `[[rule]]` tables: one condition, a scope, and the options that go with the condition.

use std::collections::HashMap;
use std::ops::Range;

use jiff::tz::{TimeZone, TimeZoneDatabase};
use toml::de::DeTable;

use super::reader::{Located, TableReader};
use super::violations::violations;
use super::{array_of_tables, duration, parse_scope};
use crate::diagnostic::{Collector, did_you_mean};
use crate::duration::Limit;
use crate::model::{Action, Condition, Rule};
use crate::window::{Schedule, parse_window};

pub(super) const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "controls",
    "idle",
    "idle_in_transaction",
    "lifetime",
    "allow",
    "deny",
    "max_sessions",
    "violations",
    "warn",
    "action",
    "timezone",
    "lock_logins",
    "message",
    "roles",
    "member_of",
    "databases",
    "applications",
    "addresses",
];

const CONDITION_KEYS: &[&str] = &[
    "idle",
    "idle_in_transaction",
    "lifetime",
    "allow",
    "deny",
    "max_sessions",
    "violations",
];

const ACTIONS: &[&str] = &["terminate", "report"];

/// Every `[[rule]]`; a rule with any error is left out (and the errors reported).
pub(super) fn parse_rules(
    c: &mut Collector<'_>,
    top: &TableReader<'_, '_>,
    tzdb: &TimeZoneDatabase,
) -> Vec<Rule> {
    let Some(value) = top.get("rule") else {
        return Vec::new();
    };
    let Some(items) = array_of_tables(c, value, "rule") else {
        return Vec::new();
    };
    // Only the gateway sees a session's errors: an ending `violations` rule needs one.
    let has_gateway = top.get("gateway").is_some();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::new();
    for (index, (table, header)) in items.into_iter().enumerate() {
        let errors_before = c.error_count();
        let rule = parse_rule(c, table, header, index, &mut names, tzdb, has_gateway);
        if c.error_count() == errors_before {
            rules.extend(rule);
        }
    }
    rules
}

fn parse_rule(
    c: &mut Collector<'_>,
    table: &DeTable<'_>,
    header: Range<usize>,
    index: usize,
    names: &mut HashMap<String, usize>,
    tzdb: &TimeZoneDatabase,
    has_gateway: bool,
) -> Option<Rule> {
    let anonymous = TableReader::new(table, format!("[[rule]] #{}", index + 1), RULE_KEYS);
    let name = anonymous.string(c, "name", "a string");
    let context = match &name {
        Some(n) if !n.value.trim().is_empty() => format!("rule \"{}\"", n.value),
        _ => anonymous.context.clone(),
    };
    let r = TableReader::new(table, context.clone(), RULE_KEYS);
    check_name(c, &r, name.as_ref(), &header, names);

    let description = r.string(c, "description", "a string").map(|d| d.value);
    let controls = parse_controls(c, &r);
    let scope = parse_scope(c, &r);
    let action = parse_action(c, &r);
    let zone = parse_timezone(c, &r, tzdb);
    let warn = duration(c, &r, "warn");
    let lock_logins = r.boolean(c, "lock_logins");
    let message = parse_message(c, &r);

    // Which condition keys are present, in file order.
    let present: Vec<(&str, Range<usize>)> = table
        .iter()
        .map(|(k, _)| (k.get_ref().as_ref(), k.span()))
        .filter_map(|(k, span)| CONDITION_KEYS.iter().find(|c| **c == k).map(|c| (*c, span)))
        .collect();
    // A misspelt condition key (`idel`) is reported as an unknown key with a suggestion; saying
    // the rule has no condition as well would only repeat it.
    let misspelt_condition = table.iter().any(|(k, _)| {
        let k = k.get_ref().as_ref();
        !RULE_KEYS.contains(&k) && did_you_mean(k, CONDITION_KEYS).is_some()
    });
    let condition = match present.as_slice() {
        [] if misspelt_condition => None,
        [] => {
            c.error(
                header.clone(),
                format!(
                    "{context} has no condition; add exactly one of {}",
                    CONDITION_KEYS.join(", ")
                ),
            );
            None
        }
        [(key, _)] => parse_condition(c, &r, key, zone.as_ref(), &header),
        [(first, _), (second, span), ..] => {
            c.error(
                span.clone(),
                format!(
                    "{context} has two conditions, `{first}` and `{second}`; each rule has exactly one, so split it into two rules"
                ),
            );
            None
        }
    };

    if let Some(Condition::Violations(_)) = &condition {
        let span = r.key_span("violations").unwrap_or_else(|| header.clone());
        match action {
            Action::Report => c.warning(
                span,
                format!(
                    "{context} is NOT ENFORCED: with action = \"report\" no running curfew component acts on it (the gateway counts errors only for rules that end sessions), so this rule ends nothing and records nothing; it is kept as documentation"
                ),
            ),
            Action::Terminate if !has_gateway => c.error(
                span,
                format!(
                    "{context} has a `violations` condition, which needs the curfew gateway: only the gateway sees a session's errors (the agent cannot); add a [gateway] section and connect clients through it, or keep the rule as documentation with action = \"report\" (it is then shown as NOT ENFORCED)"
                ),
            ),
            Action::Terminate => {}
        }
    }
    if let Some(condition) = &condition {
        check_options(
            c,
            &r,
            condition,
            warn.as_ref(),
            lock_logins.as_ref(),
            zone.as_ref(),
        );
    }
    r.finish(c);
    Some(Rule {
        name: name?.value,
        description,
        condition: condition?,
        scope,
        warn: warn.map(|w| w.value),
        action,
        lock_logins: lock_logins.is_some_and(|l| l.value),
        controls,
        message,
    })
}

/// The longest `message` accepted, in characters: a banner, not a document.
pub(super) const MESSAGE_MAX_CHARS: usize = 1000;

/// `message`: shown to clients as written, so it must be one non-empty line of text a client
/// can print safely (no control characters: no terminal escapes, no NUL the protocol cannot
/// carry, no line breaks that could fake another line of output).
fn parse_message(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Option<String> {
    let message = r.string(c, "message", "a string (the text clients see)")?;
    let context = &r.context;
    let chars = message.value.chars().count();
    if message.value.trim().is_empty() {
        c.error(
            message.span,
            format!("`message` in {context} is empty; remove it to use curfew's own message"),
        );
    } else if chars > MESSAGE_MAX_CHARS {
        c.error(
            message.span,
            format!(
                "`message` in {context} is {chars} characters long; at most {MESSAGE_MAX_CHARS} are allowed"
            ),
        );
    } else if let Some(bad) = message.value.chars().find(|ch| ch.is_control()) {
        c.error(
            message.span,
            format!(
                "`message` in {context} contains the control character {}; write one line of plain text",
                bad.escape_default()
            ),
        );
    } else {
        return Some(message.value);
    }
    None
}

/// `controls`: each id is one curfew knows, or the organization's own (`local:...`).
fn parse_controls(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Vec<String> {
    let Some(list) = r.string_list(
        c,
        "controls",
        "requirement ids like \"NIST-800-171-3.1.11\"",
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.value {
        match crate::controls::classify(&item.value) {
            Ok(_) if out.contains(&item.value) => c.error(
                item.span,
                format!(
                    "control \"{}\" is listed twice in {}",
                    item.value, r.context
                ),
            ),
            Ok(_) => out.push(item.value),
            Err(why) => c.error(item.span, format!("`controls` in {}: {why}", r.context)),
        }
    }
    out
}

fn check_name(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    name: Option<&Located<String>>,
    header: &Range<usize>,
    names: &mut HashMap<String, usize>,
) {
    match name {
        None if r.get("name").is_none() => c.error(
            header.clone(),
            format!(
                "{} has no `name`; add name = \"...\" (it appears in audit records and messages)",
                r.context
            ),
        ),
        None => {}
        Some(n) if n.value.trim().is_empty() => {
            c.error(
                n.span.clone(),
                format!("`name` in {} must not be empty", r.context),
            );
        }
        Some(n) => {
            if let Some(first) = names.get(&n.value) {
                let line = c.line_of(*first);
                c.error(
                    n.span.clone(),
                    format!(
                        "duplicate rule name \"{}\"; first defined at line {line}",
                        n.value
                    ),
                );
            } else {
                names.insert(n.value.clone(), n.span.start);
            }
        }
    }
}

fn parse_action(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Action {
    let Some(action) = r.string(c, "action", "\"terminate\" or \"report\"") else {
        return Action::Terminate;
    };
    match action.value.as_str() {
        "terminate" => Action::Terminate,
        "report" => Action::Report,
        other => {
            let hint = did_you_mean(other, ACTIONS)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            c.error(
                action.span,
                format!(
                    "`action` in {} is \"{other}\"; {hint}expected \"terminate\" or \"report\"",
                    r.context
                ),
            );
            Action::Terminate
        }
    }
}

fn parse_timezone(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    tzdb: &TimeZoneDatabase,
) -> Option<Located<TimeZone>> {
    let name = r.string(
        c,
        "timezone",
        "an IANA time zone name like \"America/New_York\"",
    )?;
    match tzdb.get(&name.value) {
        Ok(zone) => Some(Located {
            value: zone,
            span: name.span,
        }),
        Err(_) => {
            let available: Vec<String> = tzdb.available().map(|n| n.to_string()).collect();
            let refs: Vec<&str> = available.iter().map(String::as_str).collect();
            let hint = did_you_mean(&name.value, &refs)
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_else(|| {
                    "; expected an IANA name like \"America/New_York\" or \"UTC\"".into()
                });
            c.error(
                name.span,
                format!(
                    "unknown time zone \"{}\" in {}{hint}",
                    name.value, r.context
                ),
            );
            None
        }
    }
}

fn parse_condition(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    key: &str,
    zone: Option<&Located<TimeZone>>,
    header: &Range<usize>,
) -> Option<Condition> {
    match key {
        "idle" => duration(c, r, "idle").map(|d| Condition::Idle(d.value)),
        "idle_in_transaction" => {
            duration(c, r, "idle_in_transaction").map(|d| Condition::IdleInTransaction(d.value))
        }
        "lifetime" => duration(c, r, "lifetime").map(|d| Condition::Lifetime(d.value)),
        "allow" | "deny" => {
            let key = if key == "allow" { "allow" } else { "deny" };
            let schedule = windows(c, r, key, zone, header)?;
            Some(if key == "allow" {
                Condition::Allow(schedule)
            } else {
                Condition::Deny(schedule)
            })
        }
        "max_sessions" => {
            let n = r.integer(c, "max_sessions", "a whole number of sessions, at least 1")?;
            match u32::try_from(n.value) {
                Ok(v) if v >= 1 && n.value <= i64::from(i32::MAX) => {
                    Some(Condition::MaxSessions(v))
                }
                _ => {
                    c.error(
                        n.span,
                        format!(
                            "`max_sessions` in {} is {}; it must be at least 1 (to shut a role out entirely, use a deny window or `curfew lock`)",
                            r.context, n.value
                        ),
                    );
                    None
                }
            }
        }
        _ => violations(c, r).map(Condition::Violations),
    }
}

fn windows(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    key: &'static str,
    zone: Option<&Located<TimeZone>>,
    header: &Range<usize>,
) -> Option<Schedule> {
    let list = r.string_list(
        c,
        key,
        "windows like \"Mon-Fri 07:00-19:00\" or \"2026-12-31 22:00 - 2027-01-01 02:00\"",
    )?;
    if list.value.is_empty() {
        let consequence = if key == "allow" {
            "an empty allow list would end every session at all times"
        } else {
            "an empty deny list would never end anything"
        };
        c.error(
            list.span.clone(),
            format!(
                "`{key}` in {} is empty: {consequence}; list at least one window",
                r.context
            ),
        );
    }
    let mut parsed = Vec::new();
    for item in &list.value {
        match parse_window(&item.value) {
            Ok(w) => parsed.push(w),
            Err(e) => c.error(item.span.clone(), format!("`{key}` in {}: {e}", r.context)),
        }
    }
    let Some(zone) = zone else {
        if r.get("timezone").is_none() {
            let span = r.key_span(key).unwrap_or_else(|| header.clone());
            c.error(
                span,
                format!(
                    "{} has `{key}` windows but no `timezone`; add timezone = \"America/New_York\" (or \"UTC\") so the times mean one thing",
                    r.context
                ),
            );
        }
        return None;
    };
    Some(Schedule::new(parsed, zone.value.clone()))
}

/// `warn`, `lock_logins` and `timezone` only make sense with some conditions.
fn check_options(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    condition: &Condition,
    warn: Option<&Located<Limit>>,
    lock_logins: Option<&Located<bool>>,
    zone: Option<&Located<TimeZone>>,
) {
    let key = condition.key();
    if let Some(warn) = warn {
        match condition {
            Condition::MaxSessions(_) | Condition::Violations(_) => c.error(
                warn.span.clone(),
                format!(
                    "`warn` in {} has no meaning for a `{key}` rule, which ends sessions as soon as it fires; remove it",
                    r.context
                ),
            ),
            _ => {
                if let Some(limit) = condition.limit()
                    && warn.value >= limit
                {
                    c.error(
                        warn.span.clone(),
                        format!(
                            "`warn` in {} is {}, which is not shorter than the `{key}` limit {limit}; the warning must come before the end",
                            r.context, warn.value
                        ),
                    );
                }
            }
        }
    }
    let is_window = condition.schedule().is_some();
    if let Some(lock) = lock_logins
        && lock.value
        && !is_window
    {
        c.error(
            lock.span.clone(),
            format!(
                "`lock_logins` in {} only applies to `allow` or `deny` rules (logins are locked while outside the allowed windows), not to `{key}`",
                r.context
            ),
        );
    }
    if lock_logins.is_some_and(|l| l.value) && is_window {
        for key in ["databases", "applications", "addresses"] {
            if let Some(span) = r.key_span(key) {
                c.error(
                    span,
                    format!(
                        "{} has lock_logins, which disables a role's login everywhere, so it can be scoped only by `roles` and `member_of`, not `{key}`",
                        r.context
                    ),
                );
            }
        }
    }
    if let Some(zone) = zone
        && !is_window
    {
        c.error(
            zone.span.clone(),
            format!(
                "`timezone` in {} only applies to `allow` or `deny` windows; a `{key}` rule does not use it, so remove it",
                r.context
            ),
        );
    }
}
