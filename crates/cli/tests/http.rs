//! The agent's HTTP endpoint against a real server: `/metrics` is valid exposition text and
//! its counters match the audit log; `/healthz` follows the server (and the audit log) down
//! and back up; `/status` and the page describe the live sessions.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Response, agent, assert_audit_verifies, cluster, dir, http_get, lines_of, session};

/// One sample of the exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse OpenMetrics / Prometheus text strictly: every line is a known comment or a sample of
/// a family declared before it; label values are quoted with valid escapes; values are
/// numbers; the text ends with `# EOF`. Panics with the offending line otherwise.
fn parse_exposition(text: &str) -> Vec<Sample> {
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
fn counters(samples: &[Sample], name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, u64> {
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
fn audit_counts(audit: &Path) -> (BTreeMap<Vec<String>, u64>, BTreeMap<Vec<String>, u64>) {
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
fn poll(address: &str, path: &str, limit: Duration, done: impl Fn(&Response) -> bool) -> Response {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_audit_log_and_health_follows_the_server() {
    let mut cluster = cluster();
    cluster.psql("CREATE ROLE lee LOGIN;").unwrap();
    let d = dir("http");
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\nlisten = \"127.0.0.1:0\"\n\n\
             [[target]]\nname = \"db\"\nurl = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n\n\
             [[rule]]\nname = \"lifetime-watch\"\nlifetime = \"1s\"\naction = \"report\"\nroles = [\"lee\"]\n",
            cluster.url("curfew_agent", "postgres")
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    let address = common::listen_address(&lines);
    common::wait_for(&lines, "this agent leads", Duration::from_secs(20));

    // Two sessions the idle rule ends, one a report-only rule records.
    let (_k1, _, k1_ended) = session(&cluster, "kim").await;
    let (_k2, _, k2_ended) = session(&cluster, "kim").await;
    let (lee, lee_pid, _) = session(&cluster, "lee").await;
    k1_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    k2_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    lee.simple_query("SELECT 1").await.unwrap();

    // /status and the page show the surviving session and the terminations.
    let status = poll(&address, "/status", Duration::from_secs(10), |r| {
        serde_json::from_str::<serde_json::Value>(&r.body).is_ok_and(|j| {
            j["recent_terminations"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
    });
    assert_eq!(status.code, 200);
    assert!(
        status.content_type.starts_with("application/json"),
        "{}",
        status.content_type
    );
    let json: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let target = &json["targets"][0];
    assert_eq!(target["name"], "db");
    assert_eq!(target["role"], "leading");
    let lee_row = target["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["pid"] == lee_pid)
        .unwrap_or_else(|| panic!("lee's session is not in {target:#}"));
    assert_eq!(lee_row["fate"], "reported");
    assert_eq!(lee_row["rule"], "lifetime-watch");
    assert_eq!(json["recent_terminations"].as_array().unwrap().len(), 2);
    let page = http_get(&address, "/").unwrap();
    assert_eq!(page.code, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.body.contains("http-equiv=\"refresh\""),
        "the page does not refresh itself"
    );
    assert!(
        !page.body.contains("<script"),
        "the page must not need scripts"
    );
    assert!(
        page.body
            .contains(&format!("<td class=\"num\">{lee_pid}</td>"))
    );
    assert!(page.body.contains("lifetime-watch") && page.body.contains("idle for"));

    // The counters equal the audit log's counts, once the log stopped growing.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = audit_counts(&audit);
        let metrics = http_get(&address, "/metrics").unwrap();
        let after = audit_counts(&audit);
        assert_eq!(metrics.code, 200);
        assert!(
            metrics
                .content_type
                .starts_with("application/openmetrics-text")
        );
        let samples = parse_exposition(&metrics.body);
        let outcomes = counters(
            &samples,
            "curfew_terminations_total",
            &["target", "rule", "result"],
        );
        let records = counters(&samples, "curfew_audit_records_total", &["event"]);
        let matches = before == after && outcomes == after.1 && records == after.0;
        let ended = outcomes
            .get(&vec![
                "db".to_owned(),
                "idle".to_owned(),
                "ended".to_owned(),
            ])
            .copied();
        let reported = outcomes
            .get(&vec![
                "db".to_owned(),
                "lifetime-watch".to_owned(),
                "report_only".to_owned(),
            ])
            .copied();
        // Sessions are counted per snapshot: the kims' ends show at the next one.
        let idle_now = samples
            .iter()
            .find(|s| {
                s.name == "curfew_sessions" && s.labels.get("state").is_some_and(|s| s == "idle")
            })
            .map(|s| s.value);
        if matches && ended == Some(2) && reported == Some(1) && idle_now == Some(1.0) {
            let value = |name: &str| {
                samples
                    .iter()
                    .find(|s| s.name == name && s.labels.get("target").is_some_and(|t| t == "db"))
                    .map(|s| s.value)
            };
            assert_eq!(value("curfew_leader"), Some(1.0));
            assert_eq!(value("curfew_connected"), Some(1.0));
            assert_eq!(
                value("curfew_termination_lateness_seconds_count"),
                Some(2.0)
            );
            assert!(value("curfew_snapshot_duration_seconds_count").unwrap() >= 1.0);
            assert!(value("curfew_last_snapshot_age_seconds").unwrap() < 5.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched the audit log (or lee's idle session, {idle_now:?}):\nmetrics outcomes {outcomes:?}\naudit outcomes {:?}\nmetrics records {records:?}\naudit records {:?}",
            after.1,
            after.0
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Healthy now; unhealthy while the audit log is moved away, and again after it is back.
    let healthy = |r: &Response| r.code == 200;
    let unhealthy = |r: &Response| r.code == 503;
    poll(&address, "/healthz", Duration::from_secs(5), healthy);
    let moved = d.0.join("audit.jsonl.moved");
    std::fs::rename(&audit, &moved).unwrap();
    let r = poll(&address, "/healthz", Duration::from_secs(5), unhealthy);
    assert!(r.body.contains("FAIL audit log"), "{}", r.body);
    std::fs::rename(&moved, &audit).unwrap();
    poll(&address, "/healthz", Duration::from_secs(5), healthy);

    // The server stops: unhealthy, naming the target; it comes back: healthy again.
    cluster.stop().unwrap();
    let r = poll(&address, "/healthz", Duration::from_secs(20), unhealthy);
    assert!(r.body.contains("FAIL target \"db\""), "{}", r.body);
    let metrics = http_get(&address, "/metrics").unwrap();
    let samples = parse_exposition(&metrics.body);
    assert!(
        samples
            .iter()
            .any(|s| s.name == "curfew_connected" && s.value == 0.0)
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "curfew_healthy" && s.value == 0.0)
    );
    cluster.restart().unwrap();
    poll(&address, "/healthz", Duration::from_secs(45), healthy);
    let r = http_get(&address, "/no-such-page").unwrap();
    assert_eq!(r.code, 404);

    common::signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_audit_verifies(&audit);
}
