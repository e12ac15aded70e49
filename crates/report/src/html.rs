//! The report as one self-contained HTML page (templates/report.html): inline CSS, an inline SVG
//! chart, no script, no external asset. Askama escapes every value; the chart escapes its own.

use askama::Template;
use jiff::Timestamp;

use crate::chart;
use crate::escaping::{prose, time};
use crate::model::Report;

/// How many chain problems the banner at the top quotes (the chain section lists them all).
const BANNER_PROBLEMS: usize = 5;

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
    /// The chart, already escaped.
    chart: String,
    /// Colour swatch per rule (same order as `r.terminations.rules`).
    colours: Vec<&'static str>,
    /// Days with terminations, for the table under the chart.
    busy_days: Vec<&'a crate::model::DayCounts>,
    banner_problems: &'a [crate::model::ChainProblem],
    more_problems: usize,
    /// The coverage headline (escaped HTML).
    evidence_head: String,
    /// The evidence sections after the audit chain (escaped HTML).
    evidence: String,
}

impl Page<'_> {
    /// "2026-03-01 14:05:09 UTC".
    fn time(&self, ts: &Timestamp) -> String {
        time(*ts)
    }

    /// An optional text, or a dash.
    fn or_dash<'s>(&self, text: &'s Option<String>) -> &'s str {
        match text.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => "—",
        }
    }

    /// Whether a hash is the policy file's.
    fn is_current(&self, sha256: &str) -> bool {
        sha256 == self.r.policy.sha256
    }

    /// The first 12 characters of a hash.
    fn short<'s>(&self, hash: &'s str) -> &'s str {
        hash.get(..12).unwrap_or(hash)
    }

    /// A day's count for a rule, blank for none.
    fn cell(&self, day: &crate::model::DayCounts, rule: &str) -> String {
        day.by_rule
            .get(rule)
            .map(u64::to_string)
            .unwrap_or_default()
    }

    /// A CSS class for a result or status word.
    fn tone(&self, word: &Option<String>) -> &'static str {
        tone(word.as_deref().unwrap_or(""))
    }

    /// Prose from `curfew explain`, which marks names as Markdown code spans: escaped, with each
    /// `name` shown as code (the result is safe to insert as HTML).
    fn prose(&self, text: &str) -> String {
        prose(text)
    }

    /// A CSS class for a status word.
    fn tone_of(&self, word: &str) -> &'static str {
        tone(word)
    }
}

fn tone(word: &str) -> &'static str {
    match word.to_ascii_lowercase().as_str() {
        "pass" | "passed" | "ok" | "live_pass" => "good",
        "fail" | "failed" => "bad",
        "unknown" | "skipped" | "evaluated" | "not_tested" => "warn",
        _ => "plain",
    }
}

/// Render the page.
pub(crate) fn render(r: &Report) -> Result<String, askama::Error> {
    let t = &r.terminations;
    let problems = &r.chain.problems;
    Page {
        r,
        chart: chart::stacked_bars(&t.by_day, &t.rules),
        colours: (0..t.rules.len()).map(chart::colour).collect(),
        busy_days: t.by_day.iter().filter(|d| d.total > 0).collect(),
        banner_problems: &problems[..problems.len().min(BANNER_PROBLEMS)],
        more_problems: problems.len().saturating_sub(BANNER_PROBLEMS),
        evidence_head: crate::evidence_html::headline(&r.evidence),
        evidence: crate::evidence_html::sections(&r.evidence),
    }
    .render()
}
