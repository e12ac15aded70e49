//! The coverage timeline as an inline SVG: one row per target, enforced stretches green,
//! gaps coloured by cause and drawn as outlined notches half as tall (so that the chart reads
//! on paper in black and white); no script, no external asset, every text from the log
//! escaped.

use std::fmt::Write as _;

use crate::coverage::{Segment, TargetCoverage};
use crate::escaping::{escape, time};

const WIDTH: f64 = 760.0;
const LEFT: f64 = 130.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const ROW: f64 = 26.0;
const BAR: f64 = 16.0;
const AXIS: f64 = 30.0;
const LEGEND: f64 = 22.0;

/// The colour of a state (enforced: green; each cause of a gap its own).
pub(crate) fn colour(state: &str) -> &'static str {
    match state {
        "enforcing" => "#17803d",
        "standing_by" => "#6fbf73",
        "unreachable" => "#b42318",
        "agent_stopped" | "silence" => "#4d4d4d",
        "dry_run" => "#e69f00",
        "not_enforced" | "leadership_lost" => "#d55e00",
        "worker_failed" => "#cc79a7",
        "audit_unwritable" => "#7a5195",
        _ => "#9aa4b2",
    }
}

/// A state's name in the legend.
pub(crate) fn label(state: &str) -> &'static str {
    match state {
        "enforcing" => "enforcing",
        "standing_by" => "standing by (enforcement is in the leader's log)",
        "unreachable" => "unreachable",
        "agent_stopped" => "agent stopped",
        "silence" => "no record (stopped or crashed)",
        "dry_run" => "dry run",
        "not_enforced" => "not enforced",
        "leadership_lost" => "leadership lost",
        "worker_failed" => "worker failure",
        "audit_unwritable" => "audit log unwritable",
        "starting" => "agent starting",
        _ => "no record",
    }
}

/// The chart for `targets` (all over the same period).
pub(crate) fn chart(targets: &[TargetCoverage]) -> String {
    let (Some(from), Some(to)) = (
        targets
            .iter()
            .filter_map(|t| t.segments.first())
            .map(|s| s.from)
            .min(),
        targets
            .iter()
            .filter_map(|t| t.segments.last())
            .map(|s| s.to)
            .max(),
    ) else {
        return String::new();
    };
    let span = to.duration_since(from).as_secs_f64().max(1e-3);
    let plot = WIDTH - LEFT - RIGHT;
    let x = |t: jiff::Timestamp| LEFT + t.duration_since(from).as_secs_f64() / span * plot;
    let mut states: Vec<&str> = Vec::new();
    for s in targets.iter().flat_map(|t| &t.segments) {
        if !states.contains(&s.state.as_str()) {
            states.push(&s.state);
        }
    }
    let legend_rows = states.len().div_ceil(3).max(1);
    let height = TOP + ROW * targets.len() as f64 + AXIS + LEGEND * legend_rows as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Coverage timeline" font-family="sans-serif" font-size="11">"##
    );
    for (i, t) in targets.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{} ({:.1}%)</text>"#,
            LEFT - 6.0,
            y + BAR - 4.0,
            escape(&shorten(&t.target)),
            t.share_percent
        );
        for s in &t.segments {
            bar(&mut svg, s, x(s.from), x(s.to), y);
        }
    }
    let axis_y = TOP + ROW * targets.len() as f64;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#4f5a6b"/><text x="{LEFT}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        LEFT + plot,
        axis_y + 14.0,
        time(from),
        LEFT + plot,
        axis_y + 14.0,
        time(to)
    );
    for (i, state) in states.iter().enumerate() {
        let lx = 8.0 + (i % 3) as f64 * 250.0;
        let ly = axis_y + AXIS + (i / 3) as f64 * LEGEND;
        let (top, tall, outline) = if *state == "enforcing" {
            (ly - 10.0, 12.0, "none")
        } else {
            (ly - 4.0, 6.0, "#000")
        };
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{top}" width="12" height="{tall}" fill="{}" stroke="{outline}" stroke-width="0.8"/><text x="{}" y="{ly}">{}</text>"#,
            colour(state),
            lx + 16.0,
            label(state)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One segment as a rect, at least a pixel wide so a short gap stays visible.
fn bar(svg: &mut String, s: &Segment, x0: f64, x1: f64, y: f64) {
    let width = (x1 - x0).max(1.0);
    let title = if s.why.is_empty() {
        format!("{} to {}: {}", time(s.from), time(s.to), label(&s.state))
    } else {
        format!("{} to {}: {}", time(s.from), time(s.to), s.why)
    };
    let (top, tall, outline) = if s.enforced {
        (y, BAR, "none")
    } else {
        (y + BAR / 2.0, BAR / 2.0, "#000")
    };
    let _ = write!(
        svg,
        r#"<rect x="{x0:.2}" y="{top}" width="{width:.2}" height="{tall}" fill="{}" stroke="{outline}" stroke-width="0.8"><title>{}</title></rect>"#,
        colour(&s.state),
        escape(&title)
    );
}

/// A target name short enough for the left margin.
fn shorten(name: &str) -> String {
    if name.chars().count() <= 14 {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(13).collect();
        s.push('…');
        s
    }
}
