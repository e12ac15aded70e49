//! The demo's end: the summary table (with the path each session took), what each user saw,
//! the audit log's verification, and the files kept on request.

use std::path::Path;
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
                format!("ended by {} at {}", o.rule, since(t0, o.at)),
                curfew_policy::format_age(o.lateness),
                o.rule == rule && !alive,
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
        "\nPaths: {through} sessions came through the gateway (the gateway registered each in curfew.sessions at login, with its client's address); {direct} connected directly."
    ));
    n.say("\nWhat the users saw (the error their client library received when the session ended):");
    for a in actors.iter() {
        if let Some((_, saw)) = &a.saw {
            n.say(format!(
                "  {} ({}, {}): {saw}",
                a.role,
                a.label,
                match a.route {
                    Route::Gateway => "through the gateway",
                    Route::Direct => "direct",
                }
            ));
        }
    }
    if actors
        .iter()
        .any(|a| a.route == Route::Gateway && a.saw.is_some())
    {
        n.say(
            "  Through the gateway a user gets the server's own message, relayed unchanged: it names no rule. \
             A warning before the end and a message saying which rule ended the session are the gateway's next step, not built yet.",
        );
    }
    if verification.is_intact() {
        n.say(format!(
            "\nAudit log: {} records, hash chain and sequence intact, every termination intent has its outcome.",
            verification.records
        ));
    } else {
        all_ok = false;
        n.say("\nAudit log: NOT intact:");
        for p in &verification.problems {
            n.say(format!(
                "  {}:{}: {}",
                audit_path.display(),
                p.line,
                p.message
            ));
        }
    }
    if all_ok {
        n.say(format!(
            "All {} sessions were treated as the policy says.",
            actors.len()
        ));
    }
    all_ok
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
