//! One target's `curfew check` result, and the result for a target that could not be reached:
//! shared by the PostgreSQL and the MariaDB/MySQL paths.

use crate::{Finding, Status};

/// One target's result.
#[derive(Debug, serde::Serialize)]
pub struct Checked {
    /// The target's name.
    pub target: String,
    /// The role curfew connected as (for the record's actor).
    #[serde(skip)]
    pub db_role: String,
    /// The server, as reached ("PostgreSQL 17.2"), if it was.
    pub server: Option<String>,
    /// The findings.
    pub findings: Vec<Finding>,
    /// Warnings from connecting (shown to the operator, not part of the result).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A target that could not be reached (or read): one failed finding, so the others are still
/// checked.
pub(crate) fn unreachable(
    target: &curfew_policy::Target,
    db_role: String,
    e: String,
    warnings: Vec<String>,
) -> Checked {
    Checked {
        target: target.name.clone(),
        db_role,
        server: None,
        findings: vec![Finding {
            why: format!("the target could not be reached, so nothing on it was checked: {e}"),
            id: "CURFEW-CONNECT",
            title: "The target can be reached",
            requirement: "the check itself",
            status: Status::Fail,
            observed: e.clone(),
            expected: "a connection as the policy's target describes it".to_owned(),
            fix: "Check the URL and the password file (on PostgreSQL also pg_hba.conf); `curfew plan --target` shows the same connection error.".to_owned(),
        }],
        warnings,
    }
}
