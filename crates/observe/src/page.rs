//! `/`: the status as a small HTML page. Rendered on the server, refreshed by the browser
//! itself (a `meta refresh`), no scripts: it works in any browser, a text browser included.

use askama::Template;
use jiff::Timestamp;

use crate::status::{Fate, LockStatus, SessionStatus, Status};

/// How many sessions a target's table shows (the rest are counted; `/status` has them all).
const ROWS: usize = 200;

#[derive(Template)]
#[template(path = "status.html")]
struct Page<'a> {
    status: &'a Status,
    refresh: u32,
    generated: String,
    policy_hash: &'a str,
    targets: Vec<PageTarget<'a>>,
    ended: Vec<PageEnded<'a>>,
}

struct PageTarget<'a> {
    name: &'a str,
    role: &'static str,
    role_class: &'static str,
    server: &'a str,
    error: Option<&'a str>,
    summary: String,
    rows: Vec<Row<'a>>,
    more: usize,
    locks: Vec<PageLock<'a>>,
}

struct PageLock<'a> {
    role: &'a str,
    /// "rule working-hours" or "incident lock by alice".
    by: String,
    reason: &'a str,
    since: String,
    until: String,
}

struct Row<'a> {
    pid: i64,
    role: &'a str,
    database: &'a str,
    application: &'a str,
    client: &'a str,
    state: &'static str,
    state_for: String,
    fate_class: &'static str,
    fate: &'static str,
    rule: &'a str,
    countdown: String,
    reason: &'a str,
    warning: &'a str,
}

struct PageEnded<'a> {
    at: String,
    target: &'a str,
    pid: i64,
    role: &'a str,
    database: &'a str,
    application: &'a str,
    /// `via gateway from ADDR:PORT`, or empty for a direct session.
    via: &'a str,
    rule: &'a str,
    reason: &'a str,
    late: String,
}

/// Render the page; `refresh` is the reload period in seconds (0: none).
pub(crate) fn render(status: &Status, refresh: u32) -> Result<String, askama::Error> {
    let targets = status
        .targets
        .iter()
        .map(|t| PageTarget {
            name: &t.name,
            role: t.role.label(),
            role_class: match t.role {
                crate::status::Role::Leading => "good",
                crate::status::Role::StandingBy | crate::status::Role::Connecting => "calm",
                crate::status::Role::Starting | crate::status::Role::Disconnected => "bad",
            },
            server: t.server.as_deref().unwrap_or(""),
            error: t.error.as_deref(),
            summary: t.snapshot.as_ref().map_or_else(
                || match t.role {
                    crate::status::Role::StandingBy => {
                        "This agent stands by: another replica leads this target (or, for a standby target, this agent does not lead its primary)."
                            .to_owned()
                    }
                    _ => "No snapshot.".to_owned(),
                },
                |s| {
                    format!(
                        "{} client sessions, {} to be ended, {} exempt. Snapshot {} ago (read in {:.1} ms, evaluated in {:.2} ms).",
                        s.sessions,
                        s.to_end,
                        s.exempt,
                        age(s.age_seconds),
                        s.snapshot_ms,
                        s.evaluation_ms
                    )
                },
            ),
            rows: t.sessions.iter().take(ROWS).map(row).collect(),
            more: t.sessions.len().saturating_sub(ROWS),
            locks: t.login_locks.iter().map(lock).collect(),
        })
        .collect();
    let ended = status
        .recent_terminations
        .iter()
        .map(|e| PageEnded {
            at: time(e.at),
            target: &e.target,
            pid: e.pid,
            role: &e.role,
            database: &e.database,
            application: &e.application,
            via: e.via_gateway.as_deref().unwrap_or(""),
            rule: &e.rule,
            reason: &e.reason,
            late: age(e.lateness_ms / 1e3),
        })
        .collect();
    Page {
        status,
        refresh,
        generated: time(status.generated_at),
        policy_hash: status
            .policy
            .sha256
            .get(..12)
            .unwrap_or(&status.policy.sha256),
        targets,
        ended,
    }
    .render()
}

fn row(s: &SessionStatus) -> Row<'_> {
    let (fate_class, fate) = match s.fate {
        Fate::EndsNow => ("bad", "ending now"),
        Fate::Scheduled => ("warn", "ends"),
        Fate::Reported => ("calm", "reported"),
        Fate::Untouched => ("quiet", "no rule fires"),
        Fate::Exempt => ("quiet", "exempt"),
    };
    let countdown = match (s.fate, s.ends_in_seconds) {
        (Fate::Exempt | Fate::Untouched, _) | (_, None) => String::new(),
        (_, Some(left)) if left <= 0.0 => "now".to_owned(),
        (_, Some(left)) => format!("in {}", age(left)),
    };
    Row {
        pid: s.pid,
        role: &s.role,
        database: &s.database,
        application: &s.application,
        client: &s.client,
        state: s.state,
        state_for: s.state_seconds.map(age).unwrap_or_default(),
        fate_class,
        fate,
        rule: s.rule.as_deref().unwrap_or(""),
        countdown,
        reason: s.reason.as_deref().unwrap_or(""),
        warning: s.warning.as_deref().unwrap_or(""),
    }
}

fn lock(l: &LockStatus) -> PageLock<'_> {
    let by = match (l.kind.as_str(), &l.rule) {
        ("incident", _) => format!("incident lock by {}", l.created_by),
        (_, Some(rule)) => format!("rule {rule}"),
        (kind, None) => kind.to_owned(),
    };
    PageLock {
        role: &l.role,
        by,
        reason: &l.reason,
        since: time(l.since),
        until: l.until.map_or_else(|| "until released".to_owned(), time),
    }
}

/// Seconds as people read them (`4.2s`, `15m02s`).
fn age(seconds: f64) -> String {
    let d = jiff::SignedDuration::try_from_secs_f64(seconds.max(0.0)).unwrap_or_default();
    curfew_policy::format_age(d)
}

/// `2026-11-23 08:41:07 UTC`.
fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}
