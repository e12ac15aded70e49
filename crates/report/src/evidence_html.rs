//! The evidence sections in HTML, as escaped fragments the page template inserts: the coverage
//! headline at the top, then (after the audit chain) coverage with its timeline, completeness,
//! compensating controls, policy metadata, control mapping and sign-off.

use std::fmt::Write as _;

use crate::evidence_md::{age, headline_lines};
use crate::evidence_model::{Evidence, Item, Listed};

use crate::escaping::{escape as h, time};

fn opt(text: &Option<String>) -> String {
    match text.as_deref() {
        Some(t) if !t.is_empty() => h(t),
        _ => "—".to_owned(),
    }
}

/// The coverage headline: one `<dt>`/`<dd>` pair per target, for the header's list.
pub(crate) fn headline(e: &Evidence) -> String {
    let mut out = String::new();
    for (line, t) in headline_lines(e).iter().zip(
        e.coverage
            .targets
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None)),
    ) {
        let tone = match t {
            Some(t) if t.gaps.is_empty() => "good",
            Some(_) => "bad",
            None => "warn",
        };
        let _ = write!(
            out,
            r#"<dt>Coverage</dt><dd><strong style="color:var(--{tone})">{}</strong></dd>"#,
            h(line)
        );
    }
    out
}

fn table(out: &mut String, columns: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    out.push_str("<table><thead><tr>");
    for c in columns {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

/// The sections after the audit chain.
pub(crate) fn sections(e: &Evidence) -> String {
    let mut out = String::new();
    coverage(&mut out, e);
    completeness(&mut out, e);
    compensating(&mut out, e);
    metadata(&mut out, e);
    mapping(&mut out, e);
    sign_off(&mut out, e);
    out
}

fn coverage(out: &mut String, e: &Evidence) {
    let _ = write!(
        out,
        "<section id=\"coverage\">\n<h2>8. Coverage</h2>\n<p>When each target was enforced, from the agent's heartbeats (one per target every heartbeat interval and at every change of state) and its start, stop, leadership and failure records. A silence longer than {} heartbeat intervals counts as a gap: nothing shows enforcement went on. Gaps are drawn as outlined notches.</p>\n",
        crate::coverage::SILENCE_FACTOR
    );
    let chart = crate::timeline::chart(&e.coverage.targets);
    if !chart.is_empty() {
        let _ = writeln!(
            out,
            "<figure>{chart}<figcaption>Coverage per target over the period (hover a stretch for its cause).</figcaption></figure>"
        );
    }
    for t in &e.coverage.targets {
        let _ = write!(
            out,
            "<h3>Target {}: enforced {:.1}% of the period</h3>\n<p>Enforced {} of {}; heartbeat interval {}; max clock offset (server minus agent): {}.</p>\n",
            h(&t.target),
            t.share_percent,
            age(t.enforced_ms),
            age(t.period_ms),
            age(t.heartbeat_interval_ms),
            t.max_clock_offset_ms
                .map_or_else(|| "not measured".to_owned(), |o| format!("{o:+} ms"))
        );
        if t.gaps.is_empty() {
            out.push_str("<p>No gap in the period.</p>\n");
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
                    format!(
                        r#"<span style="display:inline-block;width:10px;height:10px;background:{}"></span> {}"#,
                        crate::timeline::colour(&g.cause),
                        h(crate::timeline::label(&g.cause))
                    ),
                    h(&g.why),
                ]
            }),
        );
    }
    out.push_str("</section>\n");
}

fn listed(out: &mut String, title: &str, what: &str, l: &Listed) {
    let _ = writeln!(out, "<h3>{title}: {}</h3>", l.total);
    if l.total == 0 {
        let _ = writeln!(out, "<p class=\"muted\">None in the period ({what}).</p>");
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
    let _ = write!(
        out,
        "<section id=\"completeness\">\n<h2>9. Completeness</h2>\n<p>Everything else the log records that bears on whether sessions were ended as the policy says. <code>curfew verify</code> canary sessions are counted apart: {} ended, {} reported or failed (not counted in section 3).</p>\n",
        c.canary_terminated, c.canary_other
    );
    listed(
        out,
        "Login-lock drift corrected",
        "<code>lock_drift_corrected</code>",
        &c.drift_corrections,
    );
    listed(
        out,
        "Policies rejected",
        "<code>policy_rejected</code>",
        &c.rejected_policies,
    );
    listed(
        out,
        "Terminations skipped",
        "<code>termination_skipped</code>: the session changed first",
        &c.skipped_terminations,
    );
    listed(
        out,
        "Worker failures",
        "<code>worker_failed</code>",
        &c.worker_failures,
    );
    listed(
        out,
        "Leader-lock squatters",
        "<code>leader_squatted</code>",
        &c.squatters,
    );
    listed(
        out,
        "Warnings recorded",
        "<code>session_warned</code>",
        &c.warnings,
    );
    let _ = write!(
        out,
        "<p>{}</p>\n</section>\n",
        crate::escaping::prose(&c.warnings_statement)
    );
}

fn compensating(out: &mut String, e: &Evidence) {
    let c = &e.compensating;
    let _ = write!(
        out,
        "<section id=\"compensating\">\n<h2>10. Compensating controls</h2>\n<p>{}</p>\n<ul>",
        h(&c.statement)
    );
    for m in &c.measures {
        let _ = write!(out, "<li>{}</li>", crate::escaping::prose(m));
    }
    let _ = write!(
        out,
        "</ul>\n<p>Exemptions: {}</p>\n",
        crate::escaping::prose(&c.exemptions)
    );
    if c.superuser_refusals.total > 0 {
        listed(
            out,
            "Sessions only a superuser may end",
            "<code>termination_failed</code>",
            &c.superuser_refusals,
        );
    }
    out.push_str("</section>\n");
}

fn metadata(out: &mut String, e: &Evidence) {
    let m = &e.metadata;
    out.push_str("<section id=\"metadata\">\n<h2>11. Policy metadata</h2>\n<dl class=\"meta\">");
    for (k, v) in [
        ("Owner", &m.owner),
        ("Approved by", &m.approved_by),
        ("Version", &m.version),
        ("Effective", &m.effective),
        ("Review by", &m.review_by),
        ("Implements", &m.implements),
    ] {
        let value = if v.is_some() {
            opt(v)
        } else {
            r#"<span class="word warn">not stated</span> in [policy]"#.to_owned()
        };
        let _ = write!(out, "<dt>{k}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>\n");
    table(
        out,
        &["Rule", "Controls"],
        m.rule_controls.iter().map(|r| {
            vec![
                h(&r.rule),
                if r.controls.is_empty() {
                    "—".to_owned()
                } else {
                    h(&r.controls.join(", "))
                },
            ]
        }),
    );
    out.push_str("<p>Latest verification against the policy in force:</p><ul>");
    for v in &e.verify_currency {
        let tone = if v.status == "current" { "good" } else { "bad" };
        let _ = write!(
            out,
            r#"<li>{}<span class="word {tone}">{}</span>: {}</li>"#,
            v.target
                .as_ref()
                .map_or_else(String::new, |t| format!("target {}: ", h(t))),
            h(&v.status.replace('_', " ")),
            crate::escaping::prose(&v.message)
        );
    }
    out.push_str("</ul>\n</section>\n");
}

fn mapping(out: &mut String, e: &Evidence) {
    out.push_str("<section id=\"mapping\">\n<h2>12. Control mapping</h2>\n<p>Each determining statement and STIG check, and the evidence in this report that answers it.</p>\n");
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
            let tone = match c.status.as_str() {
                "shown" => "good",
                "partly shown" => "warn",
                _ => "bad",
            };
            vec![
                format!("<strong>{}</strong>", h(&c.control)),
                h(&c.statement),
                h(&c.evidence),
                if c.rules.is_empty() {
                    "—".to_owned()
                } else {
                    h(&c.rules.join(", "))
                },
                format!(r#"<span class="word {tone}">{}</span>"#, h(&c.status)),
                if c.missing.is_empty() {
                    "—".to_owned()
                } else {
                    crate::escaping::prose(&c.missing)
                },
            ]
        }),
    );
    out.push_str("</section>\n");
}

fn sign_off(out: &mut String, e: &Evidence) {
    let s = &e.sign_off;
    let _ = write!(
        out,
        "<section id=\"sign-off\">\n<h2>13. Sign-off</h2>\n<p>Policy approved by: <strong>{}</strong>; owner: {}; version: {}.</p>\n<table>",
        opt(&s.policy_approved_by),
        opt(&s.policy_owner),
        opt(&s.policy_version)
    );
    for line in &s.lines {
        let _ = write!(
            out,
            r#"<tr><th style="width:16em">{}</th><td style="height:2.6em"></td></tr>"#,
            h(line)
        );
    }
    out.push_str("</table>\n</section>\n");
}
