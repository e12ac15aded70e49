//! The report as Markdown: the same sections as the HTML, as tables. Text from the log is
//! escaped so that it cannot break a table or turn into markup (application names are chosen
//! by clients).

use std::fmt::Write as _;

use crate::escaping::{esc, time};
use crate::model::{CheckRun, Report, RunRecord, VerifyRun};

use Align::{Left, Right};

/// Render the document.
pub(crate) fn render(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    crate::evidence_md::headline(&mut out, r);
    conditions(&mut out, r);
    policy_history(&mut out, r);
    terminations(&mut out, r);
    locks(&mut out, r);
    checks(&mut out, &r.checks);
    verifications(&mut out, &r.verifications);
    chain(&mut out, r);
    crate::evidence_md::sections(&mut out, r);
    out
}

fn header(out: &mut String, r: &Report) {
    let _ = writeln!(out, "# Session termination evidence\n");
    let _ = writeln!(
        out,
        "NIST SP 800-171 3.1.11 / SP 800-53 AC-12 — DISA STIG V-261910 (PostgreSQL). Produced by `curfew report`.\n"
    );
    let period = match (r.period.since, r.period.from) {
        (Some(since), _) => format!("{} to {}", time(since), time(r.period.to)),
        (None, Some(from)) => format!(
            "the whole log: {} (first record) to {}",
            time(from),
            time(r.period.to)
        ),
        (None, None) => "the whole log (it has no records)".to_owned(),
    };
    let _ = writeln!(out, "- **Generated:** {}", time(r.generated_at));
    let _ = writeln!(out, "- **Period:** {period}");
    let _ = writeln!(
        out,
        "- **Policy file:** {}, SHA-256 `{}`",
        code(&r.policy.source),
        r.policy.sha256
    );
    let _ = writeln!(
        out,
        "- **Audit log:** {}: {} records, {} in the period",
        code(&r.audit_log.path),
        r.audit_log.records,
        r.audit_log.records_in_period
    );
    let _ = writeln!(
        out,
        "- **Audit chain:** {}\n",
        if r.chain.intact {
            r.chain.headline()
        } else {
            format!("**{}**", r.chain.headline())
        }
    );
    if !r.chain.intact {
        let _ = writeln!(
            out,
            "> **The audit chain is BROKEN.** Verification of {} found {} problem(s): records were altered, removed, inserted or lost, or an action has no recorded outcome. The records in this report cannot be relied on as complete and unaltered.\n>",
            code(&r.audit_log.path),
            r.chain.problems.len()
        );
        for p in &r.chain.problems {
            let _ = writeln!(out, "> - line {} ({}): {}", p.line, p.kind, esc(&p.message));
        }
        let _ = writeln!(out);
    }
    match r.policy.matches_latest_loaded {
        Some(false) => {
            let last = r
                .policy_history
                .last()
                .map(|l| {
                    format!(
                        ", but the last policy the agent recorded as loaded ({}) has SHA-256 {}",
                        time(l.ts),
                        code(&l.sha256)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "> **The policy file is not the policy in force.** {} has SHA-256 `{}`{last}. The conditions below are those of the file, not necessarily those enforced.\n",
                code(&r.policy.source),
                r.policy.sha256
            );
        }
        None => {
            let _ = writeln!(
                out,
                "> **No policy load is recorded in this log.** Nothing shows that an agent enforced the policy below while this log was written.\n"
            );
        }
        Some(true) => {}
    }
}

fn conditions(out: &mut String, r: &Report) {
    let c = &r.conditions;
    let _ = writeln!(out, "## 1. Conditions\n");
    let _ = writeln!(
        out,
        "The conditions under which user sessions are terminated automatically, as defined in {}.\n",
        code(&r.policy.source)
    );
    if c.rules.is_empty() {
        let _ = writeln!(out, "**No conditions are defined: no session is ended.**\n");
    }
    // The explanation comes from the policy file, not the log, and uses code spans on purpose.
    for (i, rule) in c.rules.iter().enumerate() {
        let _ = writeln!(out, "### 1.{} {}\n", i + 1, esc(&rule.name));
        if let Some(d) = &rule.description {
            let _ = writeln!(out, "> {}\n", d.replace('\n', " "));
        }
        let _ = writeln!(out, "- **Condition:** {}", rule.statement);
        let _ = writeln!(out, "- **Applies to:** {}", rule.applies_to);
        if let Some(tz) = &rule.timezone {
            let _ = writeln!(out, "- **Time zone:** {tz}");
        }
        if let Some(w) = &rule.warning {
            let _ = writeln!(out, "- **Warning:** {w}");
        }
        if rule.enforced {
            let _ = writeln!(out, "- **Action:** {}", rule.action_text);
        }
        let _ = writeln!(out, "- **Enforced by:** {}", rule.enforcement);
        if !rule.controls.is_empty() {
            let list: Vec<String> = rule
                .controls
                .iter()
                .map(|c| format!("{} ({})", code(&c.id), esc(&c.title)))
                .collect();
            let _ = writeln!(out, "- **Controls:** {}", list.join("; "));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "### Exemptions\n\n{}\n", c.exemptions);
    let _ = writeln!(out, "### Enforcement\n\n{}\n", c.enforcement);
    if !c.targets.is_empty() {
        let _ = writeln!(out, "Servers: {}.\n", esc(&c.targets.join(", ")));
    }
}

fn policy_history(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## 2. Policy history\n");
    if r.policy.matches_latest_loaded == Some(true) {
        let _ = writeln!(
            out,
            "The policy file {} is the policy the agent last recorded as loaded.\n",
            code(&r.policy.source)
        );
    }
    if r.policy_history.is_empty() {
        let _ = writeln!(
            out,
            "No `policy_loaded` record in the period, and none before it.\n"
        );
        return;
    }
    head(
        out,
        &[
            ("Loaded", Left),
            ("Seq", Right),
            ("SHA-256", Left),
            ("File", Left),
            ("Rules", Right),
            ("Note", Left),
        ],
    );
    for l in &r.policy_history {
        let mut note = Vec::new();
        if l.before_period {
            note.push("in force when the period began");
        }
        if l.sha256 == r.policy.sha256 {
            note.push("same as the policy file");
        }
        row(
            out,
            [
                time(l.ts),
                l.seq.to_string(),
                cell_code(&l.sha256),
                opt(&l.source),
                l.rules.map_or("—".to_owned(), |n| n.to_string()),
                note.join("; "),
            ],
        );
    }
    let _ = writeln!(out);
}

fn terminations(out: &mut String, r: &Report) {
    let t = &r.terminations;
    let _ = writeln!(out, "## 3. Terminations\n");
    let _ = writeln!(
        out,
        "**{}** session(s) ended in the period; **{}** termination(s) failed; **{}** session(s) reported without being ended (report-only rules or dry runs).\n",
        t.total, t.failed, t.reported
    );
    let _ = writeln!(out, "### By rule\n");
    head(
        out,
        &[
            ("Rule", Left),
            ("Ended", Right),
            ("Failed", Right),
            ("Reported only", Right),
        ],
    );
    for c in &t.by_rule {
        row(
            out,
            [
                esc(&c.rule),
                c.terminated.to_string(),
                c.failed.to_string(),
                c.reported.to_string(),
            ],
        );
    }
    let _ = writeln!(out);
    if t.total == 0 {
        let _ = writeln!(out, "No session was ended in the period.\n");
        return;
    }
    let columns: Vec<&String> = t
        .by_rule
        .iter()
        .filter(|c| c.terminated > 0)
        .map(|c| &c.rule)
        .collect();
    let _ = writeln!(out, "### By day (UTC)\n");
    let mut day_columns = vec![("Day".to_owned(), Left), ("Total".to_owned(), Right)];
    day_columns.extend(columns.iter().map(|c| (esc(c), Right)));
    head(out, &day_columns);
    for d in t.by_day.iter().filter(|d| d.total > 0) {
        let counts = columns
            .iter()
            .map(|c| d.by_rule.get(*c).map(u64::to_string).unwrap_or_default());
        row(
            out,
            [d.date.to_string(), d.total.to_string()]
                .into_iter()
                .chain(counts),
        );
    }
    let _ = writeln!(out, "\nDays not listed had no terminations.\n");
    let _ = writeln!(out, "### By target\n");
    head(out, &[("Target", Left), ("Ended", Right)]);
    for c in &t.by_target {
        row(out, [esc(&c.target), c.terminated.to_string()]);
    }
    let _ = writeln!(out, "\n### Latest terminations\n");
    head(
        out,
        &[
            ("Time", Left),
            ("Target", Left),
            ("Rule", Left),
            ("Role", Left),
            ("Database", Left),
            ("Application", Left),
            ("Reason", Left),
        ],
    );
    for e in &t.latest {
        row(
            out,
            [
                time(e.ts),
                opt(&e.target),
                opt(&e.rule),
                opt(&e.role),
                opt(&e.database),
                opt(&e.application),
                opt(&e.reason),
            ],
        );
    }
    let _ = writeln!(out);
}

fn locks(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## 4. Locks\n");
    if r.locks.is_empty() {
        let _ = writeln!(
            out,
            "No lock was created or released, and no login was locked or restored, in the period.\n"
        );
        return;
    }
    head(
        out,
        &[
            ("Time", Left),
            ("Event", Left),
            ("Target", Left),
            ("Role", Left),
            ("Kind", Left),
            ("Reason", Left),
            ("Created by", Left),
            ("Expires", Left),
            ("Released", Left),
            ("By", Left),
        ],
    );
    for l in &r.locks {
        let kind = match &l.rule {
            Some(rule) => format!("{} ({})", opt(&l.kind), esc(rule)),
            None => opt(&l.kind),
        };
        let released = if l.released_by.is_some() || l.released_at.is_some() {
            format!("{}, {}", opt(&l.released_by), opt(&l.released_at))
        } else {
            "—".to_owned()
        };
        row(
            out,
            [
                time(l.ts),
                esc(&l.event),
                opt(&l.target),
                opt(&l.role),
                kind,
                opt(&l.reason),
                opt(&l.created_by),
                opt(&l.expires_at),
                released,
                opt(&l.actor),
            ],
        );
    }
    let _ = writeln!(out);
}

fn checks(out: &mut String, runs: &[CheckRun]) {
    let _ = writeln!(out, "## 5. Configuration check\n");
    if runs.is_empty() {
        let _ = writeln!(out, "**No `curfew check` run was recorded in this log.**\n");
        return;
    }
    for c in runs {
        let server = c
            .server
            .as_deref()
            .map(|s| format!(", server {}", esc(s)))
            .unwrap_or_default();
        let policy = c
            .policy_sha256
            .as_deref()
            .map(|h| format!(" Policy SHA-256 {}.", code(h)))
            .unwrap_or_default();
        let rest = format!("{server}. {}.{policy}", opt(&c.run.reason));
        run_header(out, &c.run, "Checked", &rest);
        if c.findings.is_empty() {
            let _ = writeln!(out, "The record lists no findings.\n");
            continue;
        }
        head(
            out,
            &[
                ("Status", Left),
                ("ID", Left),
                ("Title", Left),
                ("Observed", Left),
                ("Expected", Left),
            ],
        );
        for f in &c.findings {
            row(
                out,
                [&f.status, &f.id, &f.title, &f.observed, &f.expected].map(|t| esc(t)),
            );
        }
        let _ = writeln!(out);
    }
}

fn verifications(out: &mut String, runs: &[VerifyRun]) {
    let _ = writeln!(out, "## 6. Control verification\n");
    if runs.is_empty() {
        let _ = writeln!(
            out,
            "**No `curfew verify` run was recorded in this log.**\n"
        );
        return;
    }
    for v in runs {
        run_header(
            out,
            &v.run,
            "Verified",
            &format!(". {}", opt(&v.run.reason)),
        );
        if v.rules.is_empty() {
            continue;
        }
        head(
            out,
            &[
                ("Rule", Left),
                ("Method", Left),
                ("Status", Left),
                ("Evidence", Left),
            ],
        );
        for x in &v.rules {
            row(
                out,
                [&x.rule, &x.method, &x.status, &x.evidence].map(|t| esc(t)),
            );
        }
        let _ = writeln!(out);
    }
}

fn chain(out: &mut String, r: &Report) {
    let c = &r.chain;
    let _ = writeln!(out, "## 7. Audit chain\n");
    let _ = writeln!(out, "Audit log: {}.\n", code(&r.audit_log.path));
    let lead = if c.integrity.contradicted {
        "**CONTRADICTED.** "
    } else if c.intact {
        ""
    } else {
        "**BROKEN.** "
    };
    let _ = writeln!(out, "{lead}{}\n", esc(&c.statement));
    if !c.integrity.checked.is_empty() {
        let _ = writeln!(out, "What was checked:\n");
        for line in &c.integrity.checked {
            let _ = writeln!(out, "- {}", esc(line));
        }
        let _ = writeln!(out);
    }
    if !c.intact {
        head(
            out,
            &[
                ("Line", Right),
                ("Seq", Right),
                ("Kind", Left),
                ("Problem", Left),
            ],
        );
        for p in &c.problems {
            row(
                out,
                [
                    p.line.to_string(),
                    p.seq.map_or("—".to_owned(), |s| s.to_string()),
                    esc(&p.kind),
                    esc(&p.message),
                ],
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Last record's hash: {}.",
        c.last_hash
            .as_deref()
            .map_or("none (empty log)".to_owned(), code)
    );
}

/// The heading and first paragraph of a recorded run: "Checked <time>" (with `verb`
/// "Checked"), a note if it ran before the period, then `rest` (already escaped).
fn run_header(out: &mut String, run: &RunRecord, verb: &str, rest: &str) {
    let _ = writeln!(
        out,
        "### Target {}: {}\n",
        opt(&run.target),
        opt(&run.result)
    );
    let before = if run.before_period {
        " (before the period; still the latest)"
    } else {
        ""
    };
    let _ = writeln!(out, "{verb} {}{before}{rest}\n", time(run.ts));
}

/// How a table column is aligned.
#[derive(Clone, Copy)]
enum Align {
    Left,
    /// Numbers.
    Right,
}

/// A table's header row and its alignment row; `columns` are already escaped.
fn head<S: AsRef<str>>(out: &mut String, columns: &[(S, Align)]) {
    row(out, columns.iter().map(|(name, _)| name));
    out.push('|');
    for (_, align) in columns {
        out.push_str(match align {
            Left => "---|",
            Right => "--:|",
        });
    }
    out.push('\n');
}

/// One table row; `cells` are already escaped.
fn row<S: AsRef<str>>(out: &mut String, cells: impl IntoIterator<Item = S>) {
    out.push('|');
    for cell in cells {
        out.push(' ');
        out.push_str(cell.as_ref());
        out.push_str(" |");
    }
    out.push('\n');
}

/// An optional text, escaped, or a dash.
fn opt(text: &Option<String>) -> String {
    match text.as_deref() {
        Some(t) if !t.is_empty() => esc(t),
        _ => "—".to_owned(),
    }
}

/// Text as a code span (backticks inside are replaced: a path or file name rarely has one).
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace(['\n', '\r'], " "))
}

/// Text as a code span in a table cell (GitHub-flavoured tables need `\|` even there).
fn cell_code(text: &str) -> String {
    code(text).replace('|', "\\|")
}
