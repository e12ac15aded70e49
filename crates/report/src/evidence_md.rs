//! The evidence sections in Markdown: the coverage headline, then (after the audit chain)
//! coverage, completeness, compensating controls, policy metadata, control mapping, sign-off.

use std::fmt::Write as _;

use crate::escaping::{esc, time};
use crate::evidence_model::{Evidence, Item, Listed};
use crate::model::Report;

/// A duration in milliseconds as `1m02s`.
pub(crate) fn age(ms: i64) -> String {
    curfew_policy::format_age(jiff::SignedDuration::from_millis(ms))
}

/// The coverage headline, one line per target, for the top of the document.
pub(crate) fn headline_lines(e: &Evidence) -> Vec<String> {
    if e.coverage.targets.is_empty() {
        return vec!["no target is named in the policy or the log".to_owned()];
    }
    e.coverage
        .targets
        .iter()
        .map(|t| {
            let gaps: i64 = t.gaps.iter().map(|g| g.duration_ms).sum();
            let offset = t
                .max_clock_offset_ms
                .map_or_else(String::new, |o| format!("; max clock offset {o:+} ms"));
            format!(
                "target {} enforced {:.1}% of the period ({} gap(s), {} in all{offset})",
                t.target,
                t.share_percent,
                t.gaps.len(),
                age(gaps)
            )
        })
        .collect()
}

/// The headline.
pub(crate) fn headline(out: &mut String, r: &Report) {
    for line in headline_lines(&r.evidence) {
        let _ = writeln!(out, "- **Coverage:** {}", esc(&line));
    }
    if r.evidence.coverage.heartbeats == 0 {
        let _ = writeln!(
            out,
            "- **Coverage:** the log holds no heartbeat: continuity rests on start, stop and leadership records alone"
        );
    }
    let _ = writeln!(out);
}

fn table(out: &mut String, columns: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let _ = writeln!(out);
}

fn opt(text: &Option<String>) -> String {
    match text.as_deref() {
        Some(t) if !t.is_empty() => esc(t),
        _ => "—".to_owned(),
    }
}

/// The sections after the audit chain.
pub(crate) fn sections(out: &mut String, r: &Report) {
    let e = &r.evidence;
    coverage(out, e);
    completeness(out, e);
    compensating(out, e);
    metadata(out, e);
    mapping(out, e);
    sign_off(out, e);
}

fn coverage(out: &mut String, e: &Evidence) {
    let _ = writeln!(out, "## 8. Coverage\n");
    let _ = writeln!(
        out,
        "When each target was enforced, from the agent's heartbeats (one per target every heartbeat interval and at every change of state) and its start, stop, leadership and failure records. A silence longer than {} heartbeat intervals counts as a gap: nothing shows enforcement went on.\n",
        crate::coverage::SILENCE_FACTOR
    );
    for t in &e.coverage.targets {
        let _ = writeln!(
            out,
            "### Target {}: enforced {:.1}% of the period\n",
            esc(&t.target),
            t.share_percent
        );
        let _ = writeln!(
            out,
            "Enforced {} of {}; heartbeat interval {}; max clock offset (server minus agent): {}.\n",
            age(t.enforced_ms),
            age(t.period_ms),
            age(t.heartbeat_interval_ms),
            t.max_clock_offset_ms
                .map_or_else(|| "not measured".to_owned(), |o| format!("{o:+} ms"))
        );
        if t.gaps.is_empty() {
            let _ = writeln!(out, "No gap in the period.\n");
            continue;
        }
        table(
            out,
            &["From", "To", "Duration", "Cause", "Why"],
            t.gaps.iter().map(|g| {
                vec![
                    time(g.from),
                    time(g.to),
                    age(g.duration_ms),
                    esc(crate::timeline::label(&g.cause)),
                    esc(&g.why),
                ]
            }),
        );
    }
}

fn listed(out: &mut String, title: &str, what: &str, l: &Listed) {
    let _ = writeln!(out, "### {title}: {}\n", l.total);
    if l.total == 0 {
        let _ = writeln!(out, "None in the period ({what}).\n");
        return;
    }
    table(
        out,
        &Item::COLUMNS,
        l.latest.iter().map(|i| i.row(time, opt)),
    );
}

fn completeness(out: &mut String, e: &Evidence) {
    let c = &e.completeness;
    let _ = writeln!(out, "## 9. Completeness\n");
    let _ = writeln!(
        out,
        "Everything else the log records that bears on whether sessions were ended as the policy says. `curfew verify` canary sessions are counted apart: {} ended, {} reported or failed (not counted in section 3).\n",
        c.canary_terminated, c.canary_other
    );
    listed(
        out,
        "Login-lock drift corrected",
        "`lock_drift_corrected`",
        &c.drift_corrections,
    );
    listed(
        out,
        "Policies rejected",
        "`policy_rejected`",
        &c.rejected_policies,
    );
    listed(
        out,
        "Terminations skipped",
        "`termination_skipped`: the session changed first",
        &c.skipped_terminations,
    );
    listed(
        out,
        "Worker failures",
        "`worker_failed`",
        &c.worker_failures,
    );
    listed(
        out,
        "Leader-lock squatters",
        "`leader_squatted`",
        &c.squatters,
    );
    listed(out, "Warnings recorded", "`session_warned`", &c.warnings);
    // Fixed text of this crate (its code spans are meant as such).
    let _ = writeln!(out, "{}\n", c.warnings_statement);
}

fn compensating(out: &mut String, e: &Evidence) {
    let c = &e.compensating;
    let _ = writeln!(out, "## 10. Compensating controls\n");
    let _ = writeln!(out, "{}\n", esc(&c.statement));
    for m in &c.measures {
        // Fixed text of this crate (its code spans are meant as such).
        let _ = writeln!(out, "- {m}");
    }
    let _ = writeln!(out, "\nExemptions: {}\n", esc(&c.exemptions));
    if c.superuser_refusals.total > 0 {
        listed(
            out,
            "Sessions only a superuser may end",
            "`termination_failed`",
            &c.superuser_refusals,
        );
    }
}

fn metadata(out: &mut String, e: &Evidence) {
    let m = &e.metadata;
    let _ = writeln!(out, "## 11. Policy metadata\n");
    for (k, v) in [
        ("Owner", &m.owner),
        ("Approved by", &m.approved_by),
        ("Version", &m.version),
        ("Effective", &m.effective),
        ("Review by", &m.review_by),
        ("Implements", &m.implements),
    ] {
        let _ = writeln!(
            out,
            "- **{k}:** {}",
            if v.is_some() {
                opt(v)
            } else {
                "not stated in [policy]".to_owned()
            }
        );
    }
    let _ = writeln!(out);
    table(
        out,
        &["Rule", "Controls"],
        m.rule_controls.iter().map(|r| {
            vec![
                esc(&r.rule),
                if r.controls.is_empty() {
                    "—".to_owned()
                } else {
                    esc(&r.controls.join(", "))
                },
            ]
        }),
    );
    let _ = writeln!(out, "Latest verification against the policy in force:\n");
    for v in &e.verify_currency {
        let _ = writeln!(
            out,
            "- {}**{}**: {}",
            v.target
                .as_ref()
                .map_or_else(String::new, |t| format!("target {}: ", esc(t))),
            esc(&v.status.replace('_', " ").to_uppercase()),
            esc(&v.message)
        );
    }
    let _ = writeln!(out);
}

fn mapping(out: &mut String, e: &Evidence) {
    let _ = writeln!(out, "## 12. Control mapping\n");
    table(
        out,
        &[
            "Requirement",
            "Statement",
            "Evidence in this report",
            "Rules",
            "Status",
            "Missing",
        ],
        e.control_mapping.iter().map(|c| {
            vec![
                esc(&c.control),
                esc(&c.statement),
                esc(&c.evidence),
                if c.rules.is_empty() {
                    "—".to_owned()
                } else {
                    esc(&c.rules.join(", "))
                },
                format!("**{}**", esc(&c.status.to_uppercase())),
                if c.missing.is_empty() {
                    "—".to_owned()
                } else {
                    esc(&c.missing)
                },
            ]
        }),
    );
}

fn sign_off(out: &mut String, e: &Evidence) {
    let s = &e.sign_off;
    let _ = writeln!(out, "## 13. Sign-off\n");
    let _ = writeln!(
        out,
        "Policy approved by: {}; owner: {}; version: {}.\n",
        opt(&s.policy_approved_by),
        opt(&s.policy_owner),
        opt(&s.policy_version)
    );
    for line in &s.lines {
        let _ = writeln!(out, "{line}: ______________________________\n");
    }
}
