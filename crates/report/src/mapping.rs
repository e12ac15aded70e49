//! The control mapping: each determining statement of NIST SP 800-171 3.1.11 and the STIG
//! check, the rules that answer it, and what this report shows of it or lacks.

use curfew_policy::Policy;

use crate::coverage::Coverage;
use crate::runs::CheckRun;
use serde::Serialize;

/// Whether one target's latest verify tested the policy in force.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyCurrency {
    /// The target (`None`: no verify is recorded at all).
    pub target: Option<String>,
    /// `current`, `absent`, `other_policy` or `older_than_policy`.
    pub status: String,
    /// In words.
    pub message: String,
}

/// One requirement and the evidence that answers it.
#[derive(Debug, Clone, Serialize)]
pub struct ControlRow {
    /// The requirement's id, e.g. `NIST SP 800-171 3.1.11[a]`.
    pub control: String,
    /// The determining statement or check.
    pub statement: String,
    /// The sections of this report that answer it.
    pub evidence: String,
    /// Rules whose `controls` name it.
    pub rules: Vec<String>,
    /// `shown`, `partly shown` or `not shown`.
    pub status: String,
    /// What is missing for it to be shown fully (empty when nothing is).
    pub missing: String,
}

/// The requirement ids a rule's `controls` may use for each row (compared without case,
/// punctuation or spaces).
const MATCH_A_B: &[&str] = &[
    "nist800171311",
    "nistsp800171311",
    "3111",
    "ac12",
    "nist80053ac12",
    "nistsp80053ac12",
];
const MATCH_STIG: &[&str] = &["v261910"];

fn squash(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The rules that end sessions and name one of `ids` in their `controls`: a report-only rule
/// answers no requirement.
fn rules_naming(policy: &Policy, ids: &[&str]) -> Vec<String> {
    policy
        .rules
        .iter()
        .filter(|r| r.action == curfew_policy::Action::Terminate)
        .filter(|r| {
            r.controls.iter().any(|c| {
                let c = squash(c);
                ids.iter().any(|id| c.starts_with(id))
            })
        })
        .map(|r| r.name.clone())
        .collect()
}

/// What the control mapping needs to know of the log and the policy file.
pub(crate) struct LogFacts {
    /// Whether the policy file read is the one last loaded (`None`: no load recorded).
    pub(crate) file_in_force: Option<bool>,
    /// Sessions ended in the period (canaries apart).
    pub(crate) terminated: u64,
    /// Why the log's records cannot be relied on, if they cannot.
    pub(crate) doubt: Option<String>,
    /// When the report is made.
    pub(crate) now: jiff::Timestamp,
}

/// The control mapping table.
pub(crate) fn control_mapping(
    policy: &Policy,
    coverage: &Coverage,
    currency: &[VerifyCurrency],
    checks: &[CheckRun],
    facts: &LogFacts,
) -> Vec<ControlRow> {
    let LogFacts {
        file_in_force,
        terminated,
        now,
        ..
    } = *facts;
    let log_doubt = facts.doubt.clone();
    let status = |missing: &[String], any: bool| {
        if missing.is_empty() {
            "shown"
        } else if any {
            "partly shown"
        } else {
            "not shown"
        }
        .to_owned()
    };
    // [a]: the conditions are defined.
    let mut missing_a = Vec::new();
    let enforced_rules = policy
        .rules
        .iter()
        .filter(|r| r.action == curfew_policy::Action::Terminate)
        .count();
    if enforced_rules == 0 {
        missing_a.push("no rule ends sessions (every rule only reports)".to_owned());
    }
    if policy.meta.approved_by.is_none() {
        missing_a.push("the policy does not say who approved it ([policy] approved_by)".to_owned());
    }
    // A review date in the past: the policy is overdue for the review its owner promised.
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    if let Some(review) = policy.meta.review_by.as_deref()
        && let Ok(date) = review.parse::<jiff::civil::Date>()
        && date < today
    {
        missing_a.push(format!(
            "the policy's review date ({review}, [policy] review_by) has passed"
        ));
    }
    if file_in_force == Some(false) {
        missing_a.push("the policy file read is not the one the agent last loaded".to_owned());
    }
    // [b]: sessions are terminated automatically when a condition occurs.
    let mut missing_b = Vec::new();
    if coverage.heartbeats == 0 {
        missing_b.push("the log holds no heartbeats: continuity cannot be shown".to_owned());
    }
    for t in &coverage.targets {
        if !t.gaps.is_empty() {
            missing_b.push(format!(
                "target {} was enforced {:.1}% of the period ({} gap(s), see Coverage)",
                t.target,
                t.share_percent,
                t.gaps.len()
            ));
        }
    }
    for c in currency.iter().filter(|c| c.status != "current") {
        missing_b.push(c.message.clone());
    }
    // A violations rule ends sessions only where the curfew gateway sees the server's errors:
    // a direct session is not watched, so the rule does not terminate every user's session.
    for rule in policy.rules.iter().filter(|r| {
        r.action == curfew_policy::Action::Terminate
            && matches!(r.condition, curfew_policy::Condition::Violations(_))
    }) {
        missing_b.push(format!(
            "rule {} (violations) ends only sessions through the curfew gateway: direct sessions are not watched",
            rule.name
        ));
    }
    if let Some(doubt) = &log_doubt {
        missing_b.push(doubt.clone());
    }
    let any_b = coverage.targets.iter().any(|t| t.enforced_ms > 0) || terminated > 0;
    // The STIG check: the latest `curfew check` finding V-261910.
    let mut missing_s = Vec::new();
    let findings: Vec<_> = checks
        .iter()
        .flat_map(|c| c.findings.iter())
        .filter(|f| squash(&f.id) == "v261910")
        .collect();
    if findings.is_empty() {
        missing_s.push("no `curfew check` result for V-261910 is recorded".to_owned());
    }
    for f in findings.iter().filter(|f| f.status != "pass") {
        missing_s.push(format!(
            "the latest check found V-261910 {}: {}",
            f.status, f.observed
        ));
    }
    if let Some(doubt) = log_doubt {
        missing_s.push(doubt);
    }
    let any_s = findings.iter().any(|f| f.status == "pass");
    vec![
        ControlRow {
            control: "NIST SP 800-171 3.1.11[a]".to_owned(),
            statement: "Conditions requiring a user session to terminate are defined.".to_owned(),
            evidence: "Conditions; Policy metadata; Policy history".to_owned(),
            rules: rules_naming(policy, MATCH_A_B),
            status: status(&missing_a, enforced_rules > 0),
            missing: missing_a.join("; "),
        },
        ControlRow {
            control: "NIST SP 800-171 3.1.11[b]".to_owned(),
            statement: "A user session is automatically terminated after any of the defined conditions occur.".to_owned(),
            evidence: "Coverage; Sessions ended; Completeness; Verification".to_owned(),
            rules: rules_naming(policy, MATCH_A_B),
            status: status(&missing_b, any_b),
            missing: missing_b.join("; "),
        },
        ControlRow {
            control: "DISA STIG V-261910".to_owned(),
            statement: "PostgreSQL must automatically terminate a user session after organization-defined conditions or trigger events requiring session disconnect.".to_owned(),
            evidence: "Configuration check; Coverage; Sessions ended; Compensating controls".to_owned(),
            rules: rules_naming(policy, MATCH_STIG),
            status: status(&missing_s, any_s),
            missing: missing_s.join("; "),
        },
    ]
}
