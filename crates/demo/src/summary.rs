//! The demo's end: the summary table (with the path each session took), what each user saw,
//! the audit log's verification, and the files kept on request.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::Narrator;
use crate::cast::{Actor, Route};
use crate::error::DemoError;
use crate::live::{Outcome, since};

/// The summary table, the audit verification and what each user saw. True if everything went
/// as the policy says.
pub(super) async fn report(
    n: &Narrator<'_>,
    actors: &mut [Actor],
    outcomes: &[Outcome],
    t0: Instant,
    verification: &curfew_audit::Verification,
    audit_path: &Path,
    gateway: &GatewayAudit,
) -> bool {
    let mut all_ok = true;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut marks = Vec::new();
    for a in actors.iter_mut() {
        let outcome = outcomes.iter().find(|o| o.pid == i64::from(a.pid));
        // A survivor must still answer.
        let alive = !a.check_ended()
            && match &a.running {
                Some(task) => !task.is_finished(),
                None => a.client.simple_query("SELECT 1").await.is_ok(),
            };
        let (what, late, ok) = match (a.expected, outcome) {
            (Some(rule), Some(o)) => (
                format!(
                    "ended by {} ({}) at {}",
                    o.rule,
                    if o.by_gateway { "gateway" } else { "agent" },
                    since(t0, o.at)
                ),
                o.lateness
                    .or_else(|| gateway.lateness(a.pid))
                    .map_or("-".to_owned(), curfew_policy::format_age),
                o.rule == rule && !alive && (!o.by_gateway || gateway.recorded(a.pid, rule)),
            ),
            (Some(_), None) => ("NOT ENDED".to_owned(), "-".to_owned(), false),
            (None, Some(o)) => (format!("ENDED by {}", o.rule), "-".to_owned(), false),
            (None, None) => (
                if alive {
                    "alive".to_owned()
                } else {
                    "GONE".to_owned()
                },
                "-".to_owned(),
                alive,
            ),
        };
        // The path is part of the story: a human who reached the server directly would have
        // bypassed the gateway.
        let ok = ok && a.came_as_meant();
        all_ok &= ok;
        let expected = a
            .expected
            .map_or("survives".to_owned(), |r| format!("ended by {r}"));
        rows.push(vec![
            a.pid.to_string(),
            a.role.to_owned(),
            a.label.to_owned(),
            path_shown(a),
            expected,
            what,
            late,
        ]);
        marks.push(ok);
    }
    let flags: Vec<&str> = marks
        .iter()
        .map(|ok| if *ok { "" } else { "  <-- unexpected" })
        .collect();
    n.say("\nSummary:");
    (n.table)(
        &[
            "PID", "ROLE", "SESSION", "PATH", "EXPECTED", "OUTCOME", "LATE",
        ],
        &rows,
        &flags,
    );
    let through = actors
        .iter()
        .filter(|a| a.route == Route::Gateway && a.came_as_meant())
        .count();
    let direct = actors
        .iter()
        .filter(|a| a.route == Route::Direct && a.came_as_meant())
        .count();
    n.say(format!(
        "\nPaths: {through} sessions came through the gateway (the gateway registered each in curfew.gateway_sessions at login, with its client's address); {direct} connected directly."
    ));
    n.say("\nWhat the users saw (the warnings and the error their client library received, as it received them):");
    for a in actors.iter() {
        let notices = a
            .notices
            .lock()
            .map(|n| n.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        if a.saw.is_none() && notices.is_empty() {
            continue;
        }
        n.say(format!(
            "  {} ({}, {}):",
            a.role,
            a.label,
            match a.route {
                Route::Gateway => "through the gateway",
                Route::Direct => "direct",
            }
        ));
        for notice in &notices {
            n.say(format!("      {notice}"));
        }
        if let Some((_, saw)) = &a.saw {
            n.say(format!("      {saw}"));
        }
    }
    if outcomes.iter().any(|o| o.by_gateway) {
        n.say(
            "  Through the gateway a user is warned before the end (a client shows the notice when it next talks to \
             the server; psql, at the user's next command) and told which rule ended the session and why.",
        );
    }
    if outcomes.iter().any(|o| {
        !o.by_gateway
            && actors
                .iter()
                .any(|a| i64::from(a.pid) == o.pid && a.route == Route::Gateway)
    }) {
        n.say(
            "  A gateway session the agent ended (by a rule the gateway does not enforce itself) reads the server's message.",
        );
    }
    n.say(
        "  A session on the server directly can only be ended by the agent, and its user reads PostgreSQL's own \
         `terminating connection due to administrator command`: no rule, no reason, no warning.",
    );
    all_ok &= intact(n, "Audit log (the agent's)", verification, audit_path);
    all_ok &= intact(
        n,
        "Audit log (the gateway's)",
        &gateway.verification,
        &gateway.path,
    );
    if all_ok {
        n.say(format!(
            "All {} sessions were treated as the policy says.",
            actors.len()
        ));
    }
    all_ok
}

/// Says whether an audit log verified; false if it did not.
fn intact(
    n: &Narrator<'_>,
    which: &str,
    verification: &curfew_audit::Verification,
    path: &Path,
) -> bool {
    if verification.is_intact() {
        n.say(format!(
            "\n{which}: {} records, hash chain and sequence intact, every termination intent has its outcome.",
            verification.records
        ));
        return true;
    }
    n.say(format!("\n{which}: NOT intact:"));
    for p in &verification.problems {
        n.say(format!("  {}:{}: {}", path.display(), p.line, p.message));
    }
    false
}

/// The gateway's audit log, verified, with the sessions it ended.
pub(super) struct GatewayAudit {
    pub(super) path: PathBuf,
    pub(super) verification: curfew_audit::Verification,
    /// `session_terminated` records: the server pid, the rule and, for a timed rule, how
    /// late after the deadline the gateway ended it.
    pub(super) ended: Vec<(i64, String, Option<jiff::SignedDuration>)>,
}

impl GatewayAudit {
    /// Verify the log at `path` and collect its `session_terminated` records, reading it
    /// again for up to 3 s until it holds `expected` of them (the gateway's writer thread
    /// appends a moment after the session ended).
    pub(super) async fn read(path: &Path, expected: usize) -> Result<GatewayAudit, DemoError> {
        let give_up = Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let read = GatewayAudit::read_once(path)?;
            if read.ended.len() >= expected || Instant::now() >= give_up {
                return Ok(read);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    fn read_once(path: &Path) -> Result<GatewayAudit, DemoError> {
        let mut ended = Vec::new();
        let verification = curfew_audit::verify_each(path, |entry| {
            if entry.event == "session_terminated"
                && let (Some(session), Some(rule)) = (&entry.session, &entry.rule)
            {
                let late = entry
                    .detail
                    .as_ref()
                    .and_then(|d| d.get("lateness_ms"))
                    .and_then(|v| v.as_f64())
                    .map(|ms| jiff::SignedDuration::from_secs_f64(ms / 1000.0));
                ended.push((session.pid, rule.clone(), late));
            }
        })
        .map_err(|source| DemoError::Audit {
            what: "verifying the gateway's audit log",
            source,
        })?;
        Ok(GatewayAudit {
            path: path.to_owned(),
            verification,
            ended,
        })
    }

    /// Whether the gateway recorded ending server session `pid` by `rule`.
    fn recorded(&self, pid: i32, rule: &str) -> bool {
        self.ended
            .iter()
            .any(|(p, r, _)| *p == i64::from(pid) && r == rule)
    }

    /// How late after its deadline the gateway ended server session `pid`, as it recorded.
    fn lateness(&self, pid: i32) -> Option<jiff::SignedDuration> {
        self.ended
            .iter()
            .find(|(p, _, _)| *p == i64::from(pid))
            .and_then(|(_, _, late)| *late)
    }
}

pub(super) fn keep_files(
    n: &Narrator<'_>,
    keep: &Path,
    policy: &Path,
    audit: &Path,
) -> Result<(), DemoError> {
    let io = |what: String| move |source| DemoError::Io { what, source };
    std::fs::create_dir_all(keep).map_err(io(format!("creating {}", keep.display())))?;
    std::fs::copy(policy, keep.join("curfew.toml")).map_err(io("keeping the policy".to_owned()))?;
    std::fs::copy(audit, keep.join("audit.jsonl"))
        .map_err(io("keeping the audit log".to_owned()))?;
    n.say(format!(
        "\nKept the policy and the audit log in {}: try `curfew audit show {}/audit.jsonl`.",
        keep.display(),
        keep.display()
    ));
    Ok(())
}

/// The path column: `gateway` or `direct`, and what the server session says when it does not
/// match.
fn path_shown(a: &Actor) -> String {
    match (a.route, &a.client_addr) {
        (Route::Gateway, Some(_)) | (Route::Direct, None) => a.route.name().to_owned(),
        (Route::Gateway, None) => "gateway? (not in the session registry)".to_owned(),
        (Route::Direct, Some(addr)) => {
            format!("direct? (registered as the gateway's, client {addr})")
        }
    }
}
