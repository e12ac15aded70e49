//! From the audit records to the report's content.

use std::collections::BTreeMap;

use curfew_audit::{Entry, details};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::Input;
use crate::model::{
    AuditLog, Chain, ChainProblem, DayCounts, LockEvent, Period, PolicyFile, PolicyLoad, Report,
    RuleCounts, TargetCount, Termination, Terminations,
};
use crate::runs::{CheckRun, Finding, RunRecord, VerifiedRule, VerifyRun};

/// How many of the latest terminations the report lists.
pub const LATEST: usize = 20;

/// The label of a record that names no rule.
const NO_RULE: &str = "(no rule)";
/// The label of a record that names no target.
const NO_TARGET: &str = "(no target)";

/// Build the report: pure, the same input gives the same report.
pub fn build(input: &Input<'_>) -> Report {
    let in_period = |e: &Entry| input.since.is_none_or(|s| e.ts >= s);
    let period: Vec<&Entry> = input.entries.iter().filter(|e| in_period(e)).collect();
    // `curfew verify`'s canary sessions are counted apart (see the completeness section).
    let real: Vec<&Entry> = period
        .iter()
        .copied()
        .filter(|e| !crate::evidence::is_canary(e))
        .collect();
    let from = input
        .since
        .or_else(|| input.entries.iter().map(|e| e.ts).min());
    let history = policy_history(input.entries, input.since);
    let latest_loaded = input
        .entries
        .iter()
        .filter(|e| e.event == "policy_loaded")
        .max_by_key(|e| (e.ts, e.seq))
        .map(|e| policy_detail(e).sha256.unwrap_or_default());
    let checks: Vec<CheckRun> = latest_per_target(input.entries, "configuration_checked")
        .into_iter()
        .map(|e| check_run(e, !in_period(e)))
        .collect();
    let verifications: Vec<VerifyRun> = latest_per_target(input.entries, "control_verified")
        .into_iter()
        .map(|e| verify_run(e, !in_period(e)))
        .collect();
    let terminations = terminations(input, &real, from);
    let evidence = crate::evidence::assemble(
        input,
        &period,
        from,
        (&checks, &verifications),
        terminations.total,
        latest_loaded.as_deref(),
    );
    Report {
        generated_at: input.generated_at,
        period: Period {
            since: input.since,
            from,
            to: input.generated_at,
        },
        policy: PolicyFile {
            source: input.policy_source.to_owned(),
            sha256: input.policy_sha256.to_owned(),
            matches_latest_loaded: latest_loaded.map(|h| h == input.policy_sha256),
        },
        audit_log: AuditLog {
            path: input.audit_path.to_owned(),
            records: input.entries.len(),
            records_in_period: period.len(),
        },
        conditions: input.explanation.clone(),
        policy_history: history,
        terminations,
        locks: period.iter().filter_map(|e| lock_event(e)).collect(),
        checks,
        verifications,
        chain: chain(input),
        evidence,
    }
}

/// The chain's section: its problems and anchors' and signatures', and what they establish.
fn chain(input: &Input<'_>) -> Chain {
    let integrity = input.integrity;
    let mut problems: Vec<ChainProblem> = input
        .verification
        .problems
        .iter()
        .map(|p| ChainProblem {
            line: p.line,
            seq: p.seq,
            kind: p.kind.as_str().to_owned(),
            message: p.message.clone(),
        })
        .collect();
    problems.extend(integrity.problems.iter().cloned());
    let intact = problems.is_empty();
    let records = input.verification.records;
    let first = problems.iter().filter_map(|p| p.seq).min();
    let statement = if integrity.contradicted {
        format!(
            "The audit log CONTRADICTS what was kept of it outside the log (anchors on the targets, or signed checkpoints): records were removed, altered, or the chain was cut short or recomputed{}. The records in this report cannot be relied on as complete and unaltered.",
            first
                .map(|s| format!("; the first missing or differing seq is {s}"))
                .unwrap_or_default()
        )
    } else if !intact {
        format!(
            "The hash chain is BROKEN: {records} records checked, {} problem(s){}.",
            problems.len(),
            first
                .map(|s| format!("; the first seq concerned is {s}"))
                .unwrap_or_default()
        )
    } else {
        let range = integrity
            .seqs
            .map(|(a, b)| format!(" (seq {a} to {b})"))
            .unwrap_or_default();
        match &integrity.anchored_up_to {
            Some((seq, at, target)) => {
                let last = integrity.seqs.map_or(0, |s| s.1);
                let rest = if last > *seq {
                    format!(
                        " Records after seq {seq} were not anchored yet: for them only the chain's own hashes speak, which someone able to rewrite the log can recompute."
                    )
                } else {
                    String::new()
                };
                let (from, before) = match integrity.seqs {
                    Some((first, _)) if first > 1 => (
                        format!("from seq {first} "),
                        format!(
                            " Records before seq {first} are in files not given and were not checked."
                        ),
                    ),
                    _ => (String::new(), String::new()),
                };
                format!(
                    "The hash chain is intact: {records} records{range} checked, every action has its outcome. Anchors kept outside the log (on target \"{target}\", anchored at {at}) confirm it up to seq {seq}: no record {from}up to seq {seq} was altered, removed or inserted.{rest}{before}"
                )
            }
            None => format!(
                "The hash chain is internally consistent: {records} records{range} checked, every action has its outcome. It was not confirmed by anchors kept outside the log, so a log cut short, or rewritten with every hash recomputed, would not show here."
            ),
        }
    };
    Chain {
        intact,
        records,
        last_hash: input.verification.last_hash.clone(),
        problems,
        statement,
        integrity: integrity.clone(),
    }
}

/// Every `policy_loaded` in the period, preceded by the last one before it.
fn policy_history(entries: &[Entry], since: Option<Timestamp>) -> Vec<PolicyLoad> {
    let loads = entries.iter().filter(|e| e.event == "policy_loaded");
    let before = since.and_then(|s| {
        loads
            .clone()
            .filter(|e| e.ts < s)
            .max_by_key(|e| (e.ts, e.seq))
    });
    let mut history: Vec<PolicyLoad> = before
        .into_iter()
        .map(|e| policy_load(e, true))
        .chain(
            loads
                .filter(|e| since.is_none_or(|s| e.ts >= s))
                .map(|e| policy_load(e, false)),
        )
        .collect();
    history.sort_by_key(|l| (l.ts, l.seq));
    history
}

/// A `policy_loaded` record's detail; a record without one reads as empty.
fn policy_detail(e: &Entry) -> details::PolicyLoad {
    e.details().unwrap_or_default()
}

fn policy_load(e: &Entry, before_period: bool) -> PolicyLoad {
    let detail = policy_detail(e);
    PolicyLoad {
        seq: e.seq,
        ts: e.ts,
        sha256: detail.sha256.unwrap_or_default(),
        source: detail.source,
        rules: detail.rules,
        targets: detail.targets,
        before_period,
    }
}

fn terminations(input: &Input<'_>, period: &[&Entry], from: Option<Timestamp>) -> Terminations {
    let rule_of = |e: &Entry| e.rule.clone().unwrap_or_else(|| NO_RULE.to_owned());
    let ended: Vec<&Entry> = period
        .iter()
        .copied()
        .filter(|e| e.event == "session_terminated")
        .collect();

    // Rules in policy order, then any other rule named in the period by name.
    let mut rules: Vec<String> = input
        .explanation
        .rules
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let mut others: Vec<String> = period
        .iter()
        .filter(|e| {
            matches!(
                e.event.as_str(),
                "session_terminated" | "termination_failed" | "session_reported"
            )
        })
        .map(|e| rule_of(e))
        .filter(|r| !rules.contains(r))
        .collect();
    others.sort();
    others.dedup();
    rules.extend(others);

    let count = |event: &str, rule: &str| -> u64 {
        period
            .iter()
            .filter(|e| e.event == event && rule_of(e) == rule)
            .count() as u64
    };
    let by_rule: Vec<RuleCounts> = rules
        .iter()
        .map(|r| RuleCounts {
            rule: r.clone(),
            terminated: count("session_terminated", r),
            failed: count("termination_failed", r),
            reported: count("session_reported", r),
        })
        .collect();

    let mut targets: BTreeMap<String, u64> = BTreeMap::new();
    for e in &ended {
        *targets
            .entry(e.target.clone().unwrap_or_else(|| NO_TARGET.to_owned()))
            .or_default() += 1;
    }

    let mut days: BTreeMap<Date, BTreeMap<String, u64>> = BTreeMap::new();
    for e in &ended {
        *days
            .entry(utc_date(e.ts))
            .or_default()
            .entry(rule_of(e))
            .or_default() += 1;
    }
    let first = from.map_or_else(|| utc_date(input.generated_at), utc_date);
    let last = days
        .keys()
        .next_back()
        .copied()
        .map_or(utc_date(input.generated_at), |d| {
            d.max(utc_date(input.generated_at))
        });
    let first = days.keys().next().map_or(first, |d| first.min(*d));
    let by_day = every_day(first, last.max(first))
        .into_iter()
        .map(|date| {
            let by_rule = days.remove(&date).unwrap_or_default();
            DayCounts {
                date,
                total: by_rule.values().sum(),
                by_rule,
            }
        })
        .collect();

    let mut latest: Vec<&Entry> = ended.clone();
    latest.sort_by_key(|e| std::cmp::Reverse((e.ts, e.seq)));
    Terminations {
        total: ended.len() as u64,
        failed: by_rule.iter().map(|r| r.failed).sum(),
        reported: by_rule.iter().map(|r| r.reported).sum(),
        rules,
        by_rule,
        by_target: targets
            .into_iter()
            .map(|(target, terminated)| TargetCount { target, terminated })
            .collect(),
        by_day,
        latest: latest
            .into_iter()
            .take(LATEST)
            .map(|e| Termination {
                seq: e.seq,
                ts: e.ts,
                target: e.target.clone(),
                rule: e.rule.clone(),
                pid: e.session.as_ref().map(|s| s.pid),
                role: e.session.as_ref().map(|s| s.role.clone()),
                database: e.session.as_ref().map(|s| s.database.clone()),
                application: e.session.as_ref().map(|s| s.application.clone()),
                client_addr: e.session.as_ref().and_then(|s| s.client_addr.clone()),
                reason: e.reason.clone(),
            })
            .collect(),
    }
}

/// The UTC calendar day of an instant.
fn utc_date(ts: Timestamp) -> Date {
    ts.to_zoned(TimeZone::UTC).date()
}

/// Every day from `first` to `last`, both included.
fn every_day(first: Date, last: Date) -> Vec<Date> {
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        days.push(day);
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    days
}

fn lock_event(e: &Entry) -> Option<LockEvent> {
    if !matches!(
        e.event.as_str(),
        "lock_created" | "lock_released" | "login_locked" | "login_restored"
    ) {
        return None;
    }
    // A ledger row's record (`lock_created`, `lock_released`) or a login change's outcome
    // (`login_locked`, `login_restored`); either may lack its detail in an old record.
    let (role, lock) = match e.details::<details::LockRecord>() {
        Ok(lock) => (lock.role.clone(), Some(lock)),
        Err(_) => (
            e.details::<details::LoginChangeResult>()
                .ok()
                .and_then(|change| change.role),
            None,
        ),
    };
    let field = |f: fn(&details::LockRecord) -> Option<String>| lock.as_ref().and_then(f);
    Some(LockEvent {
        seq: e.seq,
        ts: e.ts,
        event: e.event.clone(),
        target: e.target.clone(),
        role: role.or_else(|| e.session.as_ref().map(|s| s.role.clone())),
        kind: field(|l| l.kind.clone()),
        rule: e.rule.clone().or_else(|| field(|l| l.rule.clone())),
        reason: e.reason.clone(),
        created_by: field(|l| l.created_by.clone()),
        expires_at: field(|l| l.expires_at.clone()),
        released_by: field(|l| l.released_by.clone()),
        released_at: field(|l| l.released_at.clone()),
        result: e.result.clone(),
        actor: lock
            .as_ref()
            .and_then(details::LockRecord::actor)
            .and_then(|a| a.words()),
    })
}

/// The latest record of an event per target (by time; of equal times, the later in the file),
/// ordered by target name.
fn latest_per_target<'e>(entries: &'e [Entry], event: &str) -> Vec<&'e Entry> {
    let mut latest: BTreeMap<Option<&str>, &Entry> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.event == event) {
        let slot = latest.entry(e.target.as_deref()).or_insert(e);
        if e.ts >= slot.ts {
            *slot = e;
        }
    }
    latest.into_values().collect()
}

/// The header every recorded run shares.
fn run_record(e: &Entry, before_period: bool) -> RunRecord {
    RunRecord {
        seq: e.seq,
        ts: e.ts,
        before_period,
        target: e.target.clone(),
        result: e.result.clone(),
        reason: e.reason.clone(),
    }
}

fn check_run(e: &Entry, before_period: bool) -> CheckRun {
    let check = e.details::<details::ConfigurationCheck>().ok();
    CheckRun {
        run: run_record(e, before_period),
        server: check.as_ref().and_then(|c| c.server.clone()),
        policy_sha256: check.as_ref().and_then(|c| c.policy_sha256.clone()),
        findings: check
            .as_ref()
            .map(details::ConfigurationCheck::findings)
            .unwrap_or_default()
            .into_iter()
            .map(|f| Finding {
                status: f.status,
                id: f.id,
                title: f.title,
                requirement: f.requirement,
                observed: f.observed,
                expected: f.expected,
                fix: f.fix,
            })
            .collect(),
    }
}

/// The results `curfew verify` recorded for the curfew gateway (`detail.gateway.results`), each
/// method saying so, since the rules' own results are the agent's.
fn through_gateway(e: &Entry) -> Vec<VerifiedRule> {
    let results = e
        .detail
        .as_ref()
        .and_then(|d| d.get("gateway"))
        .and_then(|g| g.get("results"))
        .and_then(serde_json::Value::as_array);
    results
        .into_iter()
        .flatten()
        .filter(|r| r.is_object())
        .map(|r| {
            let r: details::RecordedRule = serde_json::from_value(r.clone()).unwrap_or_default();
            VerifiedRule {
                rule: r.rule,
                method: format!("{} through the gateway", r.method),
                status: r.status,
                evidence: r.evidence,
            }
        })
        .collect()
}

fn verify_run(e: &Entry, before_period: bool) -> VerifyRun {
    let verified = e.details::<details::ControlVerification>().ok();
    VerifyRun {
        run: run_record(e, before_period),
        rules: verified
            .as_ref()
            .map(details::ControlVerification::rules)
            .unwrap_or_default()
            .into_iter()
            .map(|r| VerifiedRule {
                rule: r.rule,
                method: r.method,
                status: r.status,
                evidence: r.evidence,
            })
            .chain(through_gateway(e))
            .collect(),
        tested_policy_sha256: verified.and_then(|v| v.policy_sha256),
        detail: e.detail.clone(),
    }
}
