//! What verify found, rule by rule: a status that says plainly how much it proves.

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

/// The outcome of one rule's test. Only [`Status::LivePass`] is a proof that the running
/// control works; [`Status::Evaluated`] says the engine agrees with the policy, nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Tested live: the agent did what the policy says to a canary session.
    LivePass,
    /// Not tested live; the engine's verdicts around the rule's boundaries are as the policy
    /// says. Not a live proof.
    Evaluated,
    /// Not tested at all; the evidence says why.
    NotTested,
    /// It did not do what the policy says, or the test could not run; the evidence says how.
    Fail,
}

impl Status {
    /// In capitals, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::LivePass => "LIVE PASS",
            Status::Evaluated => "EVALUATED",
            Status::NotTested => "NOT TESTED",
            Status::Fail => "FAIL",
        }
    }
}

/// One rule's result, as printed and recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleResult {
    /// The rule's name (or, for a test of a mechanism rather than a rule, what was tested).
    pub rule: String,
    /// Its condition key (`idle`, `allow`, ...; `login_lock` for the login-lock test).
    pub condition: &'static str,
    /// How it was tested.
    pub method: Method,
    /// What came of it.
    pub status: Status,
    /// The status with its why, in one line: "LIVE PASS at the test limit 5s; the configured
    /// 15m was not waited — run with --full", "EVALUATED (not a live proof): ...".
    pub status_line: String,
    /// What was done and seen, in sentences an assessor can follow.
    pub evidence: String,
    /// For an evaluation: each verdict asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
}

/// The first sentence of `text`, without its final stop (for a status line).
fn first_sentence(text: &str) -> &str {
    let end = text.find(". ").unwrap_or(text.len());
    text[..end].trim_end_matches('.')
}

impl RuleResult {
    /// A result with its evidence and no probes; the status line is the status and, unless it
    /// passed, the evidence's first sentence.
    pub fn new(
        rule: &curfew_policy::Rule,
        method: Method,
        status: Status,
        evidence: String,
    ) -> RuleResult {
        RuleResult::about(&rule.name, rule.condition.key(), method, status, evidence)
    }

    /// As [`RuleResult::new`], for what is named `subject` (a rule, or a mechanism).
    pub fn about(
        subject: &str,
        condition: &'static str,
        method: Method,
        status: Status,
        evidence: String,
    ) -> RuleResult {
        let status_line = match status {
            Status::LivePass => status.label().to_owned(),
            Status::Evaluated => format!(
                "EVALUATED (not a live proof): {}",
                first_sentence(&evidence)
            ),
            _ => format!("{}: {}", status.label(), first_sentence(&evidence)),
        };
        RuleResult {
            rule: subject.to_owned(),
            condition,
            method,
            status,
            status_line,
            evidence,
            probes: Vec::new(),
        }
    }

    /// A rule not tested, with why.
    pub fn not_tested(rule: &curfew_policy::Rule, why: &str) -> RuleResult {
        let mut r = RuleResult::new(
            rule,
            Method::NotTested,
            Status::NotTested,
            format!("Not tested: {why}."),
        );
        r.status_line = format!("NOT TESTED: {why}");
        r
    }

    /// The result of checking a rule by evaluation: EVALUATED when every probe is as expected
    /// (never a pass), FAIL otherwise.
    pub fn evaluated(rule: &curfew_policy::Rule, why: &str, probes: Vec<Probe>) -> RuleResult {
        let failed: Vec<&Probe> = probes.iter().filter(|p| !p.ok).collect();
        let status = if failed.is_empty() && !probes.is_empty() {
            Status::Evaluated
        } else {
            Status::Fail
        };
        let mut evidence = format!("Not tested live: {why}. ");
        if failed.is_empty() {
            evidence.push_str(&format!(
                "The engine's verdicts at {} around the rule's boundaries are as the policy says (an evaluation, not a live test).",
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
        let status_line = match status {
            Status::Evaluated => format!("EVALUATED (not a live proof): not tested live: {why}"),
            _ => format!(
                "FAIL: the engine's verdicts are not as the policy says; not tested live: {why}"
            ),
        };
        RuleResult {
            rule: rule.name.clone(),
            condition: rule.condition.key(),
            method: Method::Evaluation,
            status,
            status_line,
            evidence: evidence.trim_end().to_owned(),
            probes,
        }
    }

    /// A live pass held to `[verify] test_limit`: says so in the status line, with what would
    /// test the configured limit.
    pub fn held_to_test_limit(
        &mut self,
        test: curfew_policy::Limit,
        configured: curfew_policy::Limit,
        max_wait: curfew_policy::Limit,
    ) {
        if self.status == Status::LivePass {
            self.status_line = format!(
                "LIVE PASS at the test limit {test}; the configured {configured} was not waited — run with --full{}",
                if configured > max_wait {
                    format!(" --max-wait {configured}")
                } else {
                    String::new()
                }
            );
        }
    }
}

/// "2 LIVE PASS, 3 EVALUATED (not live proofs), 1 NOT TESTED, 0 FAIL".
pub fn summary(results: &[RuleResult]) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    format!(
        "{} LIVE PASS, {} EVALUATED (not live proofs), {} NOT TESTED, {} FAIL",
        count(Status::LivePass),
        count(Status::Evaluated),
        count(Status::NotTested),
        count(Status::Fail),
    )
}

/// How many results have each status, for records: `{"live_pass": 2, ...}`.
pub fn counts(results: &[RuleResult]) -> std::collections::BTreeMap<&'static str, usize> {
    [
        (Status::LivePass, "live_pass"),
        (Status::Evaluated, "evaluated"),
        (Status::NotTested, "not_tested"),
        (Status::Fail, "fail"),
    ]
    .into_iter()
    .map(|(s, key)| (key, results.iter().filter(|r| r.status == s).count()))
    .collect()
}
