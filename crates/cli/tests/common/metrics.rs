//! The agent's HTTP endpoint as the tests read it: the OpenMetrics text parsed strictly, its
//! counters next to the audit log's, an endpoint polled until it answers as expected.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Response, http_get};

/// One sample of the exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse OpenMetrics / Prometheus text strictly: every line is a known comment or a sample of
/// a family declared before it; label values are quoted with valid escapes; values are
/// numbers; the text ends with `# EOF`. Panics with the offending line otherwise.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "no # EOF at the end");
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("bad comment line {line:?}"));
            assert!(name_ok(name), "bad metric name in {line:?}");
            match kind {
                Some("TYPE") => {
                    let kind = rest.unwrap_or_default();
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "summary",
                            "unknown"
                        ]
                        .contains(&kind),
                        "bad type in {line:?}"
                    );
                    families.insert(name.to_owned(), kind.to_owned());
                }
                Some("HELP" | "UNIT") => {}
                _ => panic!("unknown comment line {line:?}"),
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value in {line:?}"),
        };
        assert!(name_ok(name), "bad sample name in {line:?}");
        let family = families
            .keys()
            .filter(|f| name.starts_with(f.as_str()))
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"));
        let suffix = &name[family.len()..];
        let allowed: &[&str] = match families[family].as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        assert!(
            allowed.contains(&suffix),
            "{name} is not a sample of {family}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let end = loop {
                let Some((start, _)) = chars.peek().copied() else {
                    panic!("unterminated labels in {line:?}")
                };
                if after[start..].starts_with('}') {
                    break start + 1;
                }
                let eq = after[start..]
                    .find("=\"")
                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                let key = &after[start..start + eq];
                assert!(name_ok(key), "bad label name in {line:?}");
                // Skip to the opening quote, then read the escaped value.
                while chars.next_if(|(i, _)| *i < start + eq + 2).is_some() {}
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("bad escape {other:?} in {line:?}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) | None => panic!("unterminated label value in {line:?}"),
                        Some((_, c)) => value.push(c),
                    }
                }
                labels.insert(key.to_owned(), value);
                if chars.next_if(|(_, c)| *c == ',').is_none() {
                    let (i, c) = chars
                        .next()
                        .unwrap_or_else(|| panic!("labels not closed in {line:?}"));
                    assert_eq!(c, '}', "expected , or }} in {line:?}");
                    break i + 1;
                }
            };
            rest = &after[end..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Histograms: cumulative buckets ending with +Inf equal to _count.
    for (family, kind) in &families {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key = s.labels.clone();
            let le = key.remove("le").expect("a bucket without le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            series
                .entry(format!("{key:?}"))
                .or_default()
                .push((le, s.value));
        }
        for (key, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{key}: buckets not cumulative"
            );
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && format!("{:?}", s.labels) == key)
                .unwrap_or_else(|| panic!("{family}{key}: no _count"));
            assert_eq!(
                buckets.last().map(|b| b.0),
                Some(f64::INFINITY),
                "{family}{key}: no +Inf bucket"
            );
            assert_eq!(
                buckets.last().map(|b| b.1),
                Some(count.value),
                "{family}{key}: +Inf != _count"
            );
        }
    }
    samples
}

/// The counters of one metric, keyed by the values of the given labels.
pub fn counters(samples: &[Sample], name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, u64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let key = keys
                .iter()
                .map(|k| s.labels.get(*k).cloned().unwrap_or_default())
                .collect();
            (key, s.value as u64)
        })
        .collect()
}

/// What the audit log says: records by event, and termination outcomes by target, rule, result.
pub fn audit_counts(audit: &Path) -> (BTreeMap<Vec<String>, u64>, BTreeMap<Vec<String>, u64>) {
    let mut by_event = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for entry in curfew_audit::read(audit).unwrap() {
        let e = entry.unwrap();
        *by_event.entry(vec![e.event.clone()]).or_insert(0) += 1;
        if [
            "session_terminated",
            "termination_skipped",
            "termination_failed",
            "session_reported",
        ]
        .contains(&e.event.as_str())
        {
            let key = vec![
                e.target.clone().unwrap_or_default(),
                e.rule.clone().unwrap_or_default(),
                e.result.clone().unwrap_or_default(),
            ];
            *outcomes.entry(key).or_insert(0) += 1;
        }
    }
    (by_event, outcomes)
}

/// Ask until `done` holds for the response, or panic after `limit` with the last one.
pub fn poll(
    address: &str,
    path: &str,
    limit: Duration,
    done: impl Fn(&Response) -> bool,
) -> Response {
    let deadline = Instant::now() + limit;
    loop {
        let response = http_get(address, path);
        match response {
            Ok(r) if done(&r) => return r,
            Ok(r) if Instant::now() > deadline => {
                panic!("GET {path}: still {} after {limit:?}:\n{}", r.code, r.body)
            }
            Err(e) if Instant::now() > deadline => panic!("GET {path}: {e}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `/metrics` at `address` once its termination and record counters equal the audit log's at
/// `audit` (read before and after, so the log was not growing) and `done` holds for the samples
/// and the termination outcomes (target, rule, result). Panics after `limit`, showing both.
pub fn matching_audit(
    address: &str,
    audit: &Path,
    limit: Duration,
    done: impl Fn(&[Sample], &BTreeMap<Vec<String>, u64>) -> bool,
) -> (Response, Vec<Sample>) {
    let deadline = Instant::now() + limit;
    loop {
        let before = audit_counts(audit);
        let metrics = http_get(address, "/metrics").unwrap();
        let after = audit_counts(audit);
        assert_eq!(metrics.code, 200);
        let samples = parse_exposition(&metrics.body);
        let outcomes = counters(
            &samples,
            "curfew_terminations_total",
            &["target", "rule", "result"],
        );
        let records = counters(&samples, "curfew_audit_records_total", &["event"]);
        if before == after && outcomes == after.1 && records == after.0 && done(&samples, &outcomes)
        {
            return (metrics, samples);
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched the audit log:\nmetrics outcomes {outcomes:?}\naudit outcomes {:?}\nmetrics records {records:?}\naudit records {:?}",
            after.1,
            after.0
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The value of metric `name` for target `target`, if it is exposed.
pub fn target_value(samples: &[Sample], name: &str, target: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("target").is_some_and(|t| t == target))
        .map(|s| s.value)
}

/// The termination outcome key (target, rule, result).
pub fn outcome(target: &str, rule: &str, result: &str) -> Vec<String> {
    vec![target.to_owned(), rule.to_owned(), result.to_owned()]
}
