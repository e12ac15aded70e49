//! Details of the recorded runs of `curfew check` and `curfew verify`. Their findings and
//! per-rule results are the checking and verifying crates' own types; here they are read
//! back field by field, each as text, as the report shows them. Whatever else the record
//! holds is kept as it is (`rest`), so a read-and-write gives the same value.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::contract::Detail;
use super::lenient;
use crate::event::Event;

/// A `curfew check` run (`configuration_checked`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigurationCheck {
    /// The server checked.
    #[serde(default, deserialize_with = "lenient::text")]
    pub server: Option<String>,
    /// The SHA-256 of the policy the check judged against.
    #[serde(default, deserialize_with = "lenient::text")]
    pub policy_sha256: Option<String>,
    /// The findings, as recorded (see [`ConfigurationCheck::findings`]).
    #[serde(default, deserialize_with = "lenient::array")]
    pub findings: Vec<Value>,
    /// The rest (who ran it, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ConfigurationCheck {
    /// The findings; fields missing or unreadable are empty.
    pub fn findings(&self) -> Vec<RecordedFinding> {
        self.findings
            .iter()
            .map(|f| RecordedFinding::deserialize(f).unwrap_or_default())
            .collect()
    }
}

impl Detail for ConfigurationCheck {
    const EVENTS: &'static [Event] = &[Event::ConfigurationChecked];
}

/// One finding of `curfew check` as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFinding {
    /// `pass`, `fail`, `unknown` or `info`.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub status: String,
    /// E.g. `V-261910`.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub id: String,
    /// What is checked.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub title: String,
    /// The requirement it comes from.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub requirement: String,
    /// What the server shows.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub observed: String,
    /// What the requirement asks for.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub expected: String,
    /// How to fix it.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub fix: String,
}

/// A `curfew verify` run (`control_verified`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlVerification {
    /// The SHA-256 of the policy it tested (absent in records of early versions).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::string"
    )]
    pub policy_sha256: Option<String>,
    /// The per-rule results, as recorded (see [`ControlVerification::rules`]).
    #[serde(default, deserialize_with = "lenient::array")]
    pub rules: Vec<Value>,
    /// The rest (who ran it, the server, the mechanisms, the cleanup, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ControlVerification {
    /// The per-rule results that are objects; fields missing or unreadable are empty.
    pub fn rules(&self) -> Vec<RecordedRule> {
        self.rules
            .iter()
            .filter(|r| r.is_object())
            .map(|r| RecordedRule::deserialize(r).unwrap_or_default())
            .collect()
    }
}

impl Detail for ControlVerification {
    const EVENTS: &'static [Event] = &[Event::ControlVerified];
}

/// One rule's result in a `curfew verify` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRule {
    /// The rule's name.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub rule: String,
    /// How it was tested.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub method: String,
    /// `pass`, `fail` or `skipped`.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub status: String,
    /// What was done and seen.
    #[serde(default, deserialize_with = "text_or_empty")]
    pub evidence: String,
}

/// Any value as text, or empty.
fn text_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient::text(d)?.unwrap_or_default())
}
