//! Terminations per day as an inline SVG stacked bar chart: no script, no external asset, every
//! text from the log escaped.

use std::fmt::Write as _;

use crate::model::DayCounts;

/// One colour per rule, in rule order (Okabe–Ito, without yellow, which vanishes on paper;
/// then a few more); repeats after the last.
const PALETTE: [&str; 10] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#7a5195", "#8c6d31",
    "#4d4d4d", "#b22222",
];

const WIDTH: f64 = 760.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const PLOT_HEIGHT: f64 = 200.0;
/// Room under the plot for the day labels and the axis caption.
const AXIS_HEIGHT: f64 = 44.0;
const LEGEND_COLUMNS: usize = 3;
const LEGEND_ROW: f64 = 18.0;
/// At most this many day labels under the axis.
const MAX_LABELS: usize = 12;
/// Legend names longer than this are shortened (the full name is in the tooltip).
const LEGEND_CHARS: usize = 32;

/// The colour of the rule at `index` in the rule order.
pub(crate) fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// The chart: one slot per day (days without terminations stay empty), one stacked `<rect>`
/// per (day, rule) with terminations, coloured by the rule's position in `rules`, with a
/// `<title>` naming the day, the rule and the count.
pub(crate) fn stacked_bars(days: &[DayCounts], rules: &[String]) -> String {
    let plot_width = WIDTH - LEFT - RIGHT;
    // The legend names the rules that ended sessions in the period, in rule order.
    let shown: Vec<(usize, &String)> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            days.iter()
                .any(|d| d.by_rule.get(*r).is_some_and(|n| *n > 0))
        })
        .collect();
    let legend_rows = shown.len().div_ceil(LEGEND_COLUMNS).max(1);
    let height = TOP + PLOT_HEIGHT + AXIS_HEIGHT + legend_rows as f64 * LEGEND_ROW + 8.0;
    let max = days.iter().map(|d| d.total).max().unwrap_or(0);
    let (step, top) = scale(max);
    let y = |v: u64| TOP + PLOT_HEIGHT - v as f64 / top as f64 * PLOT_HEIGHT;
    let slot = plot_width / days.len().max(1) as f64;
    let bar = if slot >= 4.0 { slot * 0.8 } else { slot };
    let total: u64 = days.iter().map(|d| d.total).sum();

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title" font-family="sans-serif" font-size="11">"#
    );
    let span = match (days.first(), days.last()) {
        (Some(a), Some(b)) if a.date != b.date => format!("{} to {}", a.date, b.date),
        (Some(a), _) => a.date.to_string(),
        _ => "no days".to_owned(),
    };
    let _ = write!(
        svg,
        r#"<title id="chart-title">Sessions terminated per day (UTC), {span}: {total} in all</title>"#
    );

    // Grid lines and the count axis.
    svg.push_str(r##"<g class="axis" stroke="#999" stroke-width="1">"##);
    let mut v = 0;
    while v <= top {
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}"{dash}/>"#,
            y = y(v),
            x2 = WIDTH - RIGHT,
            dash = if v == 0 {
                ""
            } else {
                r#" stroke-dasharray="2,3""#
            },
        );
        v += step;
    }
    svg.push_str("</g>");
    svg.push_str(r##"<g class="ticks" fill="#000" text-anchor="end">"##);
    let mut v = 0;
    while v <= top {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y:.1}">{v}</text>"#,
            x = LEFT - 6.0,
            y = y(v) + 4.0
        );
        v += step;
    }
    svg.push_str("</g>");
    let _ = write!(
        svg,
        r##"<text x="12" y="{cy:.1}" fill="#000" text-anchor="middle" transform="rotate(-90 12 {cy:.1})">sessions terminated</text>"##,
        cy = TOP + PLOT_HEIGHT / 2.0
    );

    // The bars.
    svg.push_str(r#"<g class="bars">"#);
    for (i, day) in days.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let mut stacked = 0;
        for (r, rule) in rules.iter().enumerate() {
            let Some(&n) = day.by_rule.get(rule).filter(|n| **n > 0) else {
                continue;
            };
            let (y0, y1) = (y(stacked), y(stacked + n));
            stacked += n;
            let _ = write!(
                svg,
                r#"<rect x="{x:.2}" y="{y1:.2}" width="{bar:.2}" height="{h:.2}" fill="{c}"><title>{date} · {rule}: {n}</title></rect>"#,
                h = y0 - y1,
                c = colour(r),
                date = day.date,
                rule = escape(rule),
            );
        }
    }
    svg.push_str("</g>");

    // Day labels: every `every`-th day, at most MAX_LABELS.
    let every = days.len().div_ceil(MAX_LABELS).max(1);
    svg.push_str(r##"<g class="days" fill="#000" text-anchor="middle">"##);
    for (i, day) in days.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let label = if days.len() == 1 {
            day.date.to_string()
        } else {
            day.date.strftime("%m-%d").to_string()
        };
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y:.1}">{label}</text>"#,
            x = LEFT + (i as f64 + 0.5) * slot,
            y = TOP + PLOT_HEIGHT + 16.0
        );
    }
    svg.push_str("</g>");
    let _ = write!(
        svg,
        r##"<text x="{x:.1}" y="{y:.1}" fill="#000" text-anchor="middle">day (UTC), {span}</text>"##,
        x = LEFT + plot_width / 2.0,
        y = TOP + PLOT_HEIGHT + 34.0
    );

    // The legend.
    svg.push_str(r##"<g class="legend" fill="#000">"##);
    let column = plot_width / LEGEND_COLUMNS as f64;
    for (place, (r, rule)) in shown.iter().enumerate() {
        let x = LEFT + (place % LEGEND_COLUMNS) as f64 * column;
        let y = TOP + PLOT_HEIGHT + AXIS_HEIGHT + (place / LEGEND_COLUMNS) as f64 * LEGEND_ROW;
        let _ = write!(
            svg,
            r#"<g><title>{full}</title><rect x="{x:.1}" y="{y:.1}" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="{ty:.1}">{short}</text></g>"#,
            full = escape(rule),
            c = colour(*r),
            tx = x + 14.0,
            ty = y + 9.0,
            short = escape(&shorten(rule, LEGEND_CHARS)),
        );
    }
    svg.push_str("</g></svg>");
    svg
}

/// A tick step of 1, 2 or 5 times a power of ten giving at most five steps, and the axis top
/// (a multiple of the step, at least `max`, at least one step).
fn scale(max: u64) -> (u64, u64) {
    let mut power = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * power;
            if max.div_ceil(step) <= 5 {
                return (step, max.div_ceil(step).max(1) * step);
            }
        }
        power = power.saturating_mul(10);
    }
}

/// At most `chars` characters, with an ellipsis when cut.
fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(chars - 1).collect();
        cut.push('…');
        cut
    }
}

/// Text safe inside an XML element or attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use std::collections::BTreeMap;

    use jiff::civil::date;

    use super::*;

    /// Tags opened and closed in order (self-closing tags count as both); the names of the
    /// elements, in order of opening.
    pub(crate) fn balanced(xml: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut opened = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find('<') {
            let end = rest[start..]
                .find('>')
                .ok_or_else(|| "unterminated tag".to_owned())?
                + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                let name: String = tag
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/')
                    .collect();
                opened.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        if stack.is_empty() {
            Ok(opened)
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    fn day(d: i8, counts: &[(&str, u64)]) -> DayCounts {
        let by_rule: BTreeMap<String, u64> =
            counts.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
        DayCounts {
            date: date(2026, 3, d),
            total: by_rule.values().sum(),
            by_rule,
        }
    }

    fn rules(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn bar_rects(svg: &str) -> usize {
        let start = svg.find(r#"<g class="bars">"#).unwrap();
        let end = svg[start..].find("</g>").unwrap() + start;
        svg[start..end].matches("<rect ").count()
    }

    #[test]
    fn one_rect_per_day_and_rule_with_terminations() {
        let days = [
            day(1, &[("idle", 3), ("lifetime", 1)]),
            day(2, &[]),
            day(3, &[("lifetime", 2)]),
        ];
        let svg = stacked_bars(&days, &rules(&["idle", "lifetime", "unused"]));
        let tags = balanced(&svg).unwrap();
        assert_eq!(tags.first().map(String::as_str), Some("svg"));
        assert_eq!(bar_rects(&svg), 3);
        // Two legend swatches: the unused rule is not in the legend.
        assert_eq!(svg.matches("<rect ").count(), 3 + 2);
        assert!(!svg.contains("unused"));
        assert!(svg.contains("<title>2026-03-01 · idle: 3</title>"));
        assert!(svg.contains("<title>2026-03-03 · lifetime: 2</title>"));
        assert!(svg.contains("6 in all"));
        // Every day is labelled (3 < MAX_LABELS).
        assert!(svg.contains(">03-02</text>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_single_day_and_no_termination_at_all() {
        let svg = stacked_bars(&[day(5, &[])], &rules(&["idle"]));
        balanced(&svg).unwrap();
        assert_eq!(bar_rects(&svg), 0);
        assert!(svg.contains(">2026-03-05</text>"));
        assert!(!svg.contains("NaN"));
        let svg = stacked_bars(&[], &[]);
        balanced(&svg).unwrap();
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn ninety_days_get_at_most_twelve_labels() {
        let start = date(2026, 1, 1);
        let days: Vec<DayCounts> = (0..90)
            .map(|i| {
                let date = start.checked_add(jiff::Span::new().days(i)).unwrap();
                let by_rule: BTreeMap<String, u64> = if i % 7 == 0 {
                    [("idle".to_owned(), 1 + i as u64 % 4)].into()
                } else {
                    BTreeMap::new()
                };
                DayCounts {
                    date,
                    total: by_rule.values().sum(),
                    by_rule,
                }
            })
            .collect();
        let svg = stacked_bars(&days, &rules(&["idle"]));
        balanced(&svg).unwrap();
        assert_eq!(bar_rects(&svg), 13);
        let start = svg.find(r#"<g class="days""#).unwrap();
        let end = svg[start..].find("</g>").unwrap() + start;
        let labels = svg[start..end].matches("<text").count();
        assert!((1..=MAX_LABELS).contains(&labels), "{labels}");
    }

    #[test]
    fn hostile_rule_names_are_escaped() {
        let hostile = r#"<script>alert("x")</script>&'"#;
        let svg = stacked_bars(&[day(1, &[(hostile, 2)])], &rules(&[hostile]));
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
        balanced(&svg).unwrap();
    }

    #[test]
    fn scale_steps_are_round() {
        assert_eq!(scale(0), (1, 1));
        assert_eq!(scale(1), (1, 1));
        assert_eq!(scale(5), (1, 5));
        assert_eq!(scale(6), (2, 6));
        assert_eq!(scale(11), (5, 15));
        assert_eq!(scale(37), (10, 40));
        assert_eq!(scale(999), (200, 1000));
    }

    #[test]
    fn colours_repeat_after_the_palette() {
        assert_eq!(colour(0), colour(PALETTE.len()));
        assert_ne!(colour(0), colour(1));
    }
}
