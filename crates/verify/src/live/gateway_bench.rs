//! What the live tests through the curfew gateway share: the bench they run on and the
//! wording of their results (a result's steps are its evidence).

use std::net::SocketAddr;
use std::sync::Mutex;

use curfew_policy::{Policy, visible};
use curfew_postgres::{Connection, RunError};

use crate::gateway::received_text;
use crate::{Method, RuleResult, Status};

/// What every test through the gateway shares.
pub(super) struct Bench<'a> {
    pub(super) admin: &'a Connection,
    pub(super) policy: &'a Policy,
    pub(super) address: SocketAddr,
    pub(super) database: &'a str,
    pub(super) created: &'a Mutex<Vec<String>>,
    /// Role oids the lock test locked and has not released yet.
    pub(super) locked: &'a Mutex<Vec<u32>>,
    /// `[gateway] serve_members_of`, said in evidence.
    pub(super) serves_members_of: Option<String>,
}

/// What a client received, in words.
pub(super) fn run_error(e: &RunError) -> String {
    match e {
        RunError::Server(r) => received_text(r),
        RunError::Connection(why) => why.clone(),
    }
}

/// A result about `rule` (a rule's name, or a mechanism's) with its steps as evidence.
pub(super) fn result(rule: &curfew_policy::Rule, status: Status, steps: &[String]) -> RuleResult {
    about(&rule.name, rule.condition.key(), status, steps)
}

/// As [`result`], for what is named `subject` with condition key `condition`.
pub(super) fn about(
    subject: &str,
    condition: &'static str,
    status: Status,
    steps: &[String],
) -> RuleResult {
    RuleResult::about(
        subject,
        condition,
        Method::Live,
        status,
        format!("Through the curfew gateway: {}", visible(&steps.join(" "))),
    )
}

/// Put the failing sentence first, so the status line says it.
pub(super) fn failed(rule: &curfew_policy::Rule, why: String, steps: &[String]) -> RuleResult {
    failed_about(&rule.name, rule.condition.key(), why, steps)
}

/// As [`failed`], for what is named `subject`.
pub(super) fn failed_about(
    subject: &str,
    condition: &'static str,
    why: String,
    steps: &[String],
) -> RuleResult {
    let mut all = vec![why];
    all.extend_from_slice(steps);
    about(subject, condition, Status::Fail, &all)
}
