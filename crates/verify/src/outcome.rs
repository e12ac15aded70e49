//! What verify found, rule by rule.

use crate::evaluate::Probe;

/// How a rule was tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A canary session was opened and left to the agent.
    Live,
    /// The engine's verdicts were checked at the rule's boundaries.
    Evaluation,
    /// Nothing could be tested (a gateway-only or report-only rule).
    NotTested,
}

impl Method {
    /// In words, for documents.
    pub fn label(self) -> &'static str {
        match self {
            Method::Live => "live test",
            Method::Evaluation => "checked by evaluation",
            Method::NotTested => "not tested",
        }
    }
}

/// The outcome of one rule's test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The control did what the policy says.
    Pass,
    /// It did not; the evidence says how.
    Fail,
    /// Not tested; the evidence says why.
    Skipped,
}

impl Status {
    /// In capitals, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped => "SKIPPED",
        }
    }
}

/// One rule's result, as printed and recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleResult {
    /// The rule's name.
    pub rule: String,
    /// Its condition key (`idle`, `allow`, ...).
    pub condition: &'static str,
    /// How it was tested.
    pub method: Method,
    /// What came of it.
    pub status: Status,
    /// What was done and seen, in sentences an assessor can follow.
    pub evidence: String,
    /// For an evaluation: each verdict asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
}

impl RuleResult {
    /// A result with its evidence and no probes.
    pub fn new(
        rule: &curfew_policy::Rule,
        method: Method,
        status: Status,
        evidence: String,
    ) -> RuleResult {
        RuleResult {
            rule: rule.name.clone(),
            condition: rule.condition.key(),
            method,
            status,
            evidence,
            probes: Vec::new(),
        }
    }

    /// The result of checking a rule by evaluation: passed when every probe is as expected.
    pub fn evaluated(rule: &curfew_policy::Rule, why: &str, probes: Vec<Probe>) -> RuleResult {
        let failed: Vec<&Probe> = probes.iter().filter(|p| !p.ok).collect();
        let status = if failed.is_empty() && !probes.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        };
        let mut evidence = format!("Not tested live: {why}. ");
        if failed.is_empty() {
            evidence.push_str(&format!(
                "The engine's verdicts at {} around the rule's boundaries are as the policy says.",
                match probes.len() {
                    1 => "1 instant".to_owned(),
                    n => format!("{n} instants"),
                }
            ));
        } else {
            for p in failed {
                evidence.push_str(&format!(
                    "At {}: expected {}, the engine says {}. ",
                    p.at, p.expected, p.verdict
                ));
            }
        }
        RuleResult {
            rule: rule.name.clone(),
            condition: rule.condition.key(),
            method: Method::Evaluation,
            status,
            evidence: evidence.trim_end().to_owned(),
            probes,
        }
    }
}

/// "2 passed live, 3 checked by evaluation, 1 failed, 1 not tested".
pub fn summary(results: &[RuleResult]) -> String {
    let count = |f: &dyn Fn(&RuleResult) -> bool| results.iter().filter(|r| f(r)).count();
    format!(
        "{} passed live, {} passed by evaluation, {} failed, {} not tested",
        count(&|r| r.status == Status::Pass && r.method == Method::Live),
        count(&|r| r.status == Status::Pass && r.method == Method::Evaluation),
        count(&|r| r.status == Status::Fail),
        count(&|r| r.status == Status::Skipped),
    )
}
