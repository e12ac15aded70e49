//! The small tables: `[policy]` (metadata), `[audit]` (anchoring and signing), `[notify]`
//! (hooks for warnings).

use crate::diagnostic::Collector;
use crate::model::{AuditSettings, NotifySettings, PolicyMeta};

use super::reader::TableReader;

pub(super) const META_KEYS: &[&str] = &[
    "owner",
    "approved_by",
    "version",
    "effective",
    "review_by",
    "implements",
];
pub(super) const AUDIT_KEYS: &[&str] = &["signing_key", "syslog", "include_statement"];
pub(super) const NOTIFY_KEYS: &[&str] = &["command", "webhook"];

/// A non-empty string key of a table.
fn text(c: &mut Collector<'_>, r: &TableReader<'_, '_>, key: &'static str) -> Option<String> {
    let value = r.string(c, key, "a string")?;
    if value.value.trim().is_empty() {
        c.error(
            value.span,
            format!("`{key}` in {} must not be empty", r.context),
        );
        return None;
    }
    Some(value.value)
}

/// A date key: exactly `YYYY-MM-DD`, a real calendar date.
fn date(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    key: &'static str,
) -> Option<(jiff::civil::Date, std::ops::Range<usize>)> {
    // A bare TOML date (`effective = 2026-01-31`) is as good as a string.
    let value = match r.get(key).map(|v| (v.get_ref(), v.span())) {
        Some((toml::de::DeValue::Datetime(d), span)) => super::reader::Located {
            value: d.to_string(),
            span,
        },
        _ => r.string(c, key, "a date like 2026-01-31")?,
    };
    let text = value.value.trim();
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let parsed = shaped
        .then(|| text.parse::<jiff::civil::Date>().ok())
        .flatten();
    match parsed {
        Some(d) => Some((d, value.span)),
        None => {
            c.error(
                value.span,
                format!(
                    "`{key}` in {} is \"{}\", not a date; write it as YYYY-MM-DD, e.g. \"2026-01-31\"",
                    r.context, value.value
                ),
            );
            None
        }
    }
}

/// `[policy]`: who owns and approved the policy, its version, dates, the document it implements.
pub(super) fn parse_meta(c: &mut Collector<'_>, top: &TableReader<'_, '_>) -> PolicyMeta {
    let mut meta = PolicyMeta::default();
    let Some((table, _)) = top.table(c, "policy", "a table: [policy]") else {
        return meta;
    };
    let r = TableReader::new(table, "[policy]", META_KEYS);
    meta.owner = text(c, &r, "owner");
    meta.approved_by = text(c, &r, "approved_by");
    meta.version = text(c, &r, "version");
    let effective = date(c, &r, "effective");
    let review_by = date(c, &r, "review_by");
    if let (Some((start, _)), Some((end, span))) = (&effective, &review_by)
        && end < start
    {
        c.error(
            span.clone(),
            format!(
                "`review_by` in [policy] is {end}, before `effective` {start}; a policy is reviewed after it takes effect"
            ),
        );
    }
    meta.effective = effective.map(|(d, _)| d.to_string());
    meta.review_by = review_by.map(|(d, _)| d.to_string());
    meta.implements = text(c, &r, "implements");
    r.finish(c);
    meta
}

/// `[audit]`: `signing_key` (an Ed25519 key file), `syslog` (anchors to syslog too) and
/// `include_statement` (the gateway quotes the statements a violation counted).
pub(super) fn parse_audit(c: &mut Collector<'_>, top: &TableReader<'_, '_>) -> AuditSettings {
    let mut settings = AuditSettings::default();
    let Some((table, _)) = top.table(c, "audit", "a table: [audit]") else {
        return settings;
    };
    let r = TableReader::new(table, "[audit]", AUDIT_KEYS);
    settings.signing_key = text(c, &r, "signing_key");
    settings.syslog = r.boolean(c, "syslog").is_some_and(|b| b.value);
    settings.include_statement = r.boolean(c, "include_statement").is_some_and(|b| b.value);
    r.finish(c);
    settings
}

/// `[notify]`: a `command` and/or a `webhook` URL.
pub(super) fn parse_notify(c: &mut Collector<'_>, top: &TableReader<'_, '_>) -> NotifySettings {
    let mut settings = NotifySettings::default();
    let Some((table, _)) = top.table(c, "notify", "a table: [notify]") else {
        return settings;
    };
    let r = TableReader::new(table, "[notify]", NOTIFY_KEYS);
    settings.command = text(c, &r, "command");
    if let Some(command) = &settings.command
        && shlex::split(command).is_none()
        && let Some(value) = r.string(c, "command", "a string")
    {
        // The agent splits it the same way (no shell runs it): see docs/policy.md.
        c.error(
            value.span,
            "`command` in [notify] cannot be split into words: a quote is not closed, or it ends with a backslash",
        );
        settings.command = None;
    }
    if let Some(url) = r.string(c, "webhook", "a URL string") {
        let lower = url.value.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            c.error(
                url.span,
                "`webhook` in [notify] must be an http:// or https:// URL",
            );
        } else if url
            .value
            .split_once("://")
            .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
            .is_some_and(|authority| authority.contains('@'))
        {
            // Not echoed: it would show the password.
            c.error(
                url.span,
                "`webhook` in [notify] must not hold a user name or password; put a token in its path or query",
            );
        } else {
            settings.webhook = Some(url.value);
        }
    }
    r.finish(c);
    settings
}
