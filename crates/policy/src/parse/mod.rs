//! From the text of `curfew.toml` to a validated [`Policy`], or every problem found in it.

mod gateway;
mod limits;
mod reader;
mod rule;
mod sections;
mod violations;

use std::collections::HashMap;
use std::ops::Range;

use jiff::tz::TimeZoneDatabase;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Collector, Diagnostic, PolicyErrors};
use crate::duration::Limit;
use crate::model::{AgentSettings, Exemptions, Policy, Scope, Target, VerifySettings};
use crate::pattern::{AddressBlock, Glob};
use crate::target_url::UrlValidator;
use reader::{Located, TableReader};

/// A policy that parsed, with any warnings found on the way.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The validated policy.
    pub policy: Policy,
    /// Things that are allowed but deserve a look.
    pub warnings: Vec<Diagnostic>,
}

const TOP_KEYS: &[&str] = &[
    "agent", "target", "exempt", "rule", "verify", "policy", "audit", "notify", "gateway",
];
const VERIFY_KEYS: &[&str] = &["test_limit"];
const AGENT_KEYS: &[&str] = &[
    "interval",
    "audit_log",
    "listen",
    "heartbeat",
    "gateway_grace",
];
const TARGET_KEYS: &[&str] = &["name", "url", "password_file", "standby", "primary"];
const SCOPE_KEYS: &[&str] = &[
    "roles",
    "member_of",
    "databases",
    "applications",
    "addresses",
];

/// Parse and validate a policy, keeping each target's URL as unchecked text (its
/// [`TargetUrl::login_role`](crate::TargetUrl) is `None`): for tools that read the conditions and
/// connect to no server. Whatever loads a policy to use against servers calls
/// [`parse_policy_with`] and the database adapters' validators instead.
pub fn parse_policy(
    source: &str,
    text: &str,
    tzdb: &TimeZoneDatabase,
) -> Result<Parsed, PolicyErrors> {
    parse(source, text, tzdb, None)
}

/// Parse and validate a policy. `source` names the file in messages; `tzdb` resolves time zone
/// names (pass `jiff::tz::db()` for the system database); each target's URL is checked by the
/// validator of its scheme, and its refusals and warnings are reported at the URL. Every problem
/// is reported, not only the first. A policy with no rule or no target parses: what an
/// enforceable policy must also have is [`Policy::missing`].
pub fn parse_policy_with(
    source: &str,
    text: &str,
    tzdb: &TimeZoneDatabase,
    validators: &[&dyn UrlValidator],
) -> Result<Parsed, PolicyErrors> {
    parse(source, text, tzdb, Some(validators))
}

/// `validators` is `None` when URLs are kept unchecked.
fn parse(
    source: &str,
    text: &str,
    tzdb: &TimeZoneDatabase,
    validators: Option<&[&dyn UrlValidator]>,
) -> Result<Parsed, PolicyErrors> {
    let mut c = Collector::new(source, text);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree after a syntax error is a guess; checking it would only add noise.
        let mut seen = Vec::new();
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            let key = (span.start, e.message().to_owned());
            if !seen.contains(&key) {
                c.error(span, format!("TOML syntax: {}", e.message()));
                seen.push(key);
            }
        }
        return Err(PolicyErrors {
            diagnostics: c.finish(),
        });
    }
    let top = TableReader::new(root.get_ref(), "the policy", TOP_KEYS);
    let agent = parse_agent(&mut c, &top);
    let targets = parse_targets(&mut c, &top, validators);
    let exempt = parse_exempt(&mut c, &top);
    let rules = rule::parse_rules(&mut c, &top, tzdb);
    let verify = parse_verify(&mut c, &top);
    let meta = sections::parse_meta(&mut c, &top);
    let audit = sections::parse_audit(&mut c, &top);
    let notify = sections::parse_notify(&mut c, &top);
    let gateway = gateway::parse_gateway(&mut c, &top, &targets, validators);
    limits::check_limits(&mut c, &targets, &rules);
    top.finish(&mut c);
    if c.has_errors() {
        return Err(PolicyErrors {
            diagnostics: c.finish(),
        });
    }
    Ok(Parsed {
        policy: Policy {
            agent,
            targets,
            exempt,
            rules,
            verify,
            meta,
            audit,
            notify,
            gateway,
        },
        warnings: c.finish(),
    })
}

/// `[exempt]` (any key exempts) or `[[exempt]]` entries (every key of an entry must match).
/// TOML itself refuses both in one file (the key `exempt` would be defined twice).
fn parse_exempt(c: &mut Collector<'_>, top: &TableReader<'_, '_>) -> Exemptions {
    let Some(value) = top.get("exempt") else {
        return Exemptions::default();
    };
    if let DeValue::Table(table) = value.get_ref() {
        let r = TableReader::new(table, "[exempt]", SCOPE_KEYS);
        let scope = parse_scope(c, &r);
        if let Some(span) = r.key_span("applications") {
            warn_application_alone(c, span, "`applications` in [exempt]");
        }
        r.finish(c);
        return Exemptions::any_key(scope);
    }
    if !matches!(value.get_ref(), DeValue::Array(_)) {
        c.error(
            value.span(),
            "`exempt` must be a table, [exempt], or entries, [[exempt]]",
        );
        return Exemptions::default();
    }
    let Some(items) = array_of_tables(c, value, "exempt") else {
        return Exemptions::default();
    };
    let mut scopes = Vec::new();
    for (index, (table, header)) in items.into_iter().enumerate() {
        let context = format!("[[exempt]] #{}", index + 1);
        let r = TableReader::new(table, context.clone(), SCOPE_KEYS);
        let scope = parse_scope(c, &r);
        let given: Vec<&str> = SCOPE_KEYS
            .iter()
            .copied()
            .filter(|k| r.key_span(k).is_some())
            .collect();
        match given.as_slice() {
            [] => c.error(
                header,
                format!(
                    "{context} has no key, so it would exempt every session; give at least one of: {}",
                    SCOPE_KEYS.join(", ")
                ),
            ),
            ["applications"] => {
                if let Some(span) = r.key_span("applications") {
                    warn_application_alone(c, span, &format!("{context}, whose only key is `applications`,"));
                }
            }
            _ => {}
        }
        r.finish(c);
        scopes.push(scope);
    }
    Exemptions::all_keys(scopes)
}

/// An exemption any client can claim: it names the application it likes.
fn warn_application_alone(c: &mut Collector<'_>, span: Range<usize>, what: &str) {
    c.warning(
        span,
        format!(
            "{what} exempts any session that sets a matching application_name, which the client chooses; combine it with `roles` or `member_of` in an [[exempt]] entry (e.g. roles = [\"backup\"] with applications = [\"pg_dump\"])"
        ),
    );
}

fn parse_agent(c: &mut Collector<'_>, top: &TableReader<'_, '_>) -> AgentSettings {
    let mut settings = AgentSettings::default();
    let Some((table, _)) = top.table(c, "agent", "a table: [agent]") else {
        return settings;
    };
    let r = TableReader::new(table, "[agent]", AGENT_KEYS);
    if let Some(interval) = duration(c, &r, "interval") {
        if interval.value < Limit::from_millis(100).unwrap_or(interval.value) {
            c.error(
                interval.span,
                format!(
                    "`interval` in [agent] is {}; it must be at least 100ms (the agent also wakes at every deadline, so a short interval only adds load)",
                    interval.value
                ),
            );
        }
        settings.interval = interval.value;
    }
    if let Some(path) = r.string(c, "audit_log", "a file path string") {
        if path.value.trim().is_empty() {
            c.error(path.span, "`audit_log` in [agent] must not be empty");
        }
        settings.audit_log = Some(path.value);
    }
    // Unset, the heartbeat is a minute, or the interval when that is longer.
    settings.heartbeat = settings.heartbeat.max(settings.interval);
    if let Some(heartbeat) = duration(c, &r, "heartbeat") {
        if heartbeat.value < Limit::from_secs(1).unwrap_or(heartbeat.value) {
            c.error(
                heartbeat.span.clone(),
                format!(
                    "`heartbeat` in [agent] is {}; it must be at least 1s",
                    heartbeat.value
                ),
            );
        }
        if heartbeat.value < settings.interval {
            // Heartbeats are written at the agent's rounds: a heartbeat shorter than the
            // interval could not be kept, and the report would show silences that are not gaps.
            c.error(
                heartbeat.span,
                format!(
                    "`heartbeat` in [agent] is {}, shorter than `interval` ({}); it must be at least the interval",
                    heartbeat.value, settings.interval
                ),
            );
        }
        settings.heartbeat = heartbeat.value;
    }
    if let Some(listen) = r.string(c, "listen", "an address string like \"127.0.0.1:9187\"") {
        settings.listen = listen_address(c, listen.span, &listen.value, "`listen` in [agent]");
    }
    if let Some(grace) = duration(c, &r, "gateway_grace") {
        settings.gateway_grace = grace.value;
    }
    r.finish(c);
    settings
}

/// `[verify]`: `test_limit`, the short limit canary sessions get.
fn parse_verify(c: &mut Collector<'_>, top: &TableReader<'_, '_>) -> VerifySettings {
    let mut settings = VerifySettings::default();
    let Some((table, _)) = top.table(c, "verify", "a table: [verify]") else {
        return settings;
    };
    let r = TableReader::new(table, "[verify]", VERIFY_KEYS);
    settings.test_limit = duration(c, &r, "test_limit").map(|l| l.value);
    r.finish(c);
    settings
}

/// An HTTP endpoint's address (`key`, e.g. "`listen` in [agent]"): an IP address and a port.
/// Anything but loopback is allowed and warned about: the status page shows role names, client
/// addresses and what is about to be ended; the gateway's metrics show its traffic.
pub(super) fn listen_address(
    c: &mut Collector<'_>,
    span: std::ops::Range<usize>,
    text: &str,
    key: &str,
) -> Option<std::net::SocketAddr> {
    let Ok(address) = text.trim().parse::<std::net::SocketAddr>() else {
        let hint = if text.trim().parse::<std::net::IpAddr>().is_ok() {
            format!("add a port: \"{}:9187\"", text.trim())
        } else if text.starts_with("localhost") {
            "write the address, not a name: \"127.0.0.1:9187\"".to_owned()
        } else {
            "for example \"127.0.0.1:9187\" or \"[::1]:9187\"".to_owned()
        };
        c.error(
            span,
            format!("{key} must be an IP address and a port, not {text:?}; {hint}"),
        );
        return None;
    };
    if !address.ip().is_loopback() {
        c.warning(
            span,
            format!(
                "{key} is {address}, not loopback: anyone who can reach it sees role names, client addresses and what is about to be ended; prefer 127.0.0.1 behind a proxy that authenticates"
            ),
        );
    }
    Some(address)
}

fn parse_targets(
    c: &mut Collector<'_>,
    top: &TableReader<'_, '_>,
    validators: Option<&[&dyn UrlValidator]>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    let Some(value) = top.get("target") else {
        return targets;
    };
    let Some(items) = array_of_tables(c, value, "target") else {
        return targets;
    };
    let mut names: HashMap<String, Range<usize>> = HashMap::new();
    // Each kept target's `primary` key and header, resolved once all names are known.
    let mut primaries: Vec<(Option<Located<String>>, Range<usize>)> = Vec::new();
    for (index, (table, header)) in items.into_iter().enumerate() {
        let context = format!("[[target]] #{}", index + 1);
        let r = TableReader::new(table, context.clone(), TARGET_KEYS);
        let name = r.string(c, "name", "a string");
        let primary = r.string(c, "primary", "the name of the primary target");
        let url = r.string(c, "url", "a connection URL string like \"postgresql://curfew_agent@db1:5432/postgres?sslmode=verify-full\"");
        let password_file = r.string(c, "password_file", "a file path string");
        let standby = r.boolean(c, "standby").is_some_and(|b| b.value);
        match &name {
            None if r.get("name").is_none() => {
                c.error(
                    header.clone(),
                    format!("{context} has no `name`; add name = \"...\""),
                );
            }
            Some(n) if n.value.trim().is_empty() => {
                c.error(
                    n.span.clone(),
                    format!("`name` in {context} must not be empty"),
                );
            }
            Some(n) => {
                if let Some(first) = names.get(&n.value) {
                    let line = c.line_of(first.start);
                    c.error(
                        n.span.clone(),
                        format!(
                            "duplicate target name \"{}\"; first defined at line {line}",
                            n.value
                        ),
                    );
                } else {
                    names.insert(n.value.clone(), n.span.clone());
                }
            }
            None => {}
        }
        if url.is_none() && r.get("url").is_none() {
            c.error(
                header.clone(),
                format!(
                    "{context} has no `url`; add url = \"postgresql://user@host:5432/dbname?sslmode=verify-full\""
                ),
            );
        }
        let parsed = url.as_ref().and_then(|u| {
            let label = match &name {
                Some(n) => format!("target \"{}\"", n.value),
                None => context.clone(),
            };
            crate::target_url::check(c, "url", &label, &u.value, u.span.clone(), validators)
        });
        r.finish(c);
        if let (Some(name), Some(url)) = (name, parsed) {
            targets.push(Target {
                name: name.value,
                url,
                password_file: password_file.map(|p| p.value),
                standby,
                primary: None,
            });
            primaries.push((primary, header));
        }
    }
    resolve_primaries(c, &mut targets, primaries);
    targets
}

/// Give each standby the primary it takes lock state from: the one it names, or the only one.
fn resolve_primaries(
    c: &mut Collector<'_>,
    targets: &mut [Target],
    primaries: Vec<(Option<Located<String>>, Range<usize>)>,
) {
    let primary_names: Vec<String> = targets
        .iter()
        .filter(|t| !t.standby)
        .map(|t| t.name.clone())
        .collect();
    for (target, (named, header)) in targets.iter_mut().zip(primaries) {
        match (target.standby, named) {
            (false, Some(named)) => c.error(
                named.span,
                format!(
                    "`primary` in target \"{}\" only applies to a standby (standby = true)",
                    target.name
                ),
            ),
            (false, None) => {}
            (true, Some(named)) => {
                if primary_names.contains(&named.value) {
                    target.primary = Some(named.value);
                } else {
                    c.error(
                        named.span,
                        format!(
                            "standby target \"{}\" names primary \"{}\", which is not a primary target; expected one of: {}",
                            target.name,
                            named.value,
                            primary_names.join(", ")
                        ),
                    );
                }
            }
            (true, None) => match primary_names.as_slice() {
                [only] => target.primary = Some(only.clone()),
                [] => c.error(
                    header,
                    format!(
                        "standby target \"{}\" has no primary to take lock state from; add the primary as a [[target]]",
                        target.name
                    ),
                ),
                _ => c.error(
                    header,
                    format!(
                        "standby target \"{}\" must name its primary, e.g. primary = \"{}\"",
                        target.name, primary_names[0]
                    ),
                ),
            },
        }
    }
}

/// The elements of a `[[name]]` array of tables, with their header spans.
fn array_of_tables<'t, 'i>(
    c: &mut Collector<'_>,
    value: &'t toml::Spanned<DeValue<'i>>,
    name: &str,
) -> Option<Vec<(&'t DeTable<'i>, Range<usize>)>> {
    let DeValue::Array(items) = value.get_ref() else {
        c.error(
            value.span(),
            format!("`{name}` must be an array of tables: write each one as [[{name}]]"),
        );
        return None;
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(t) => out.push((t, item.span())),
            _ => c.error(
                item.span(),
                format!("each `{name}` must be a table: write each one as [[{name}]]"),
            ),
        }
    }
    Some(out)
}

/// A duration-valued key.
pub(super) fn duration(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    key: &'static str,
) -> Option<Located<Limit>> {
    let text = r.string(
        c,
        key,
        "a duration string like \"90s\", \"15m\" or \"1h30m\"",
    )?;
    match text.value.parse::<Limit>() {
        Ok(limit) => Some(Located {
            value: limit,
            span: text.span,
        }),
        Err(e) => {
            c.error(text.span, format!("`{key}` in {}: {e}", r.context));
            None
        }
    }
}

/// The scope keys of a rule or of `[exempt]`.
fn parse_scope(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Scope {
    let mut scope = Scope::default();
    let globs = |c: &mut Collector<'_>, key: &'static str, what: &str| -> Vec<Glob> {
        let Some(list) = r.string_list(c, key, what) else {
            return Vec::new();
        };
        if list.value.is_empty() {
            c.error(
                list.span,
                format!(
                    "`{key}` in {} is empty, so it would match nothing; list at least one name or remove the key",
                    r.context
                ),
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for item in list.value {
            if item.value.is_empty() {
                c.error(
                    item.span,
                    format!("an entry of `{key}` in {} is empty", r.context),
                );
            } else {
                out.push(Glob::new(&item.value));
            }
        }
        out
    };
    scope.roles = globs(c, "roles", "role names or patterns (\"analyst_*\")");
    scope.member_of = globs(c, "member_of", "role names or patterns");
    scope.databases = globs(c, "databases", "database names or patterns");
    scope.applications = globs(
        c,
        "applications",
        "application names or patterns (\"batch-*\")",
    );
    if let Some(list) = r.string_list(c, "addresses", "address blocks like \"10.20.0.0/16\"") {
        if list.value.is_empty() {
            c.error(
                list.span,
                format!(
                    "`addresses` in {} is empty, so it would match nothing; list at least one block or remove the key",
                    r.context
                ),
            );
        }
        for item in list.value {
            match item.value.parse::<AddressBlock>() {
                Ok(block) => scope.addresses.push(block),
                Err(e) => c.error(item.span, format!("`addresses` in {}: {e}", r.context)),
            }
        }
    }
    scope
}

#[cfg(test)]
mod reference_tests {
    /// `docs/policy.md` is the reference of the file (and the source of `curfew.toml(5)`): it
    /// names every key the parser accepts, in code, so no key goes undocumented.
    #[test]
    fn the_reference_names_every_key() {
        let reference = include_str!("../../../../docs/policy.md");
        // The code spans of the text (between backticks), where keys are written.
        let spans: Vec<&str> = reference.split('`').skip(1).step_by(2).collect();
        // Whether a span holds the key as a whole word (`[agent]`, `{ sqlstates = [...] }`).
        let names = |span: &str, key: &str| {
            span.match_indices(key).any(|(at, _)| {
                let word =
                    |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                !word(span[..at].chars().next_back())
                    && !word(span[at + key.len()..].chars().next())
            })
        };
        let lists: [&[&str]; 10] = [
            super::gateway::GATEWAY_KEYS,
            super::TOP_KEYS,
            super::AGENT_KEYS,
            super::TARGET_KEYS,
            super::SCOPE_KEYS,
            super::VERIFY_KEYS,
            super::rule::RULE_KEYS,
            super::violations::VIOLATION_KEYS,
            super::sections::META_KEYS,
            super::sections::AUDIT_KEYS,
        ];
        let missing: Vec<&str> = lists
            .iter()
            .flat_map(|l| l.iter())
            .chain(super::sections::NOTIFY_KEYS)
            .copied()
            .filter(|key| !spans.iter().any(|span| names(span, key)))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/policy.md does not name {missing:?}"
        );
    }
}
