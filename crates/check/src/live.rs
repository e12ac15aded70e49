//! `curfew check` on one live target: connect, read the server's facts, judge them. A target
//! that cannot be reached is a failed finding, not the end of the run.

use curfew_postgres::TargetSpec;

use crate::{Finding, PolicyContext, Status, judge};

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

/// Connect and judge; a target that cannot be reached is a failed finding, not the end of the
/// run, so the others are still checked.
pub async fn check_target(target: &curfew_policy::Target, context: PolicyContext<'_>) -> Checked {
    let spec = TargetSpec::from_policy(target);
    let db_role = spec
        .as_ref()
        .map(|spec| spec.url.user.clone())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let facts = match &spec {
        Ok(spec) => match curfew_postgres::connect_to_inspect(spec).await {
            Ok(connected) => {
                warnings.extend(connected.warnings.iter().map(ToString::to_string));
                connected
                    .connection
                    .facts()
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match facts {
        Ok(facts) => Checked {
            target: target.name.clone(),
            db_role: db_role.clone(),
            server: Some(format!("PostgreSQL {}", facts.version)),
            findings: judge(&facts, context),
            warnings,
        },
        Err(e) => Checked {
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
                fix: "Check the URL, the password file and pg_hba.conf; `curfew plan --target` shows the same connection error.".to_owned(),
            }],
            warnings,
        },
    }
}
