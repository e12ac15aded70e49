//! `curfew check` on one live target: connect, read the server's facts, judge them. A target
//! that cannot be reached is a failed finding, not the end of the run.

use curfew_postgres::TargetSpec;

use crate::checked::{Checked, unreachable};
use crate::{Finding, PolicyContext, Status, judge};

/// Connect and judge; a target that cannot be reached is a failed finding, not the end of the
/// run, so the others are still checked.
pub async fn check_target(target: &curfew_policy::Target, context: PolicyContext<'_>) -> Checked {
    if is_mysql(target) {
        return crate::mariadb_live::check_mariadb(target, context).await;
    }
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
                let facts = connected
                    .connection
                    .facts()
                    .await
                    .map_err(|e| e.to_string());
                let gateway =
                    gateway_findings(&connected.connection, target, context, &db_role).await;
                facts.map(|f| (f, gateway))
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match facts {
        Ok((facts, gateway)) => Checked {
            target: target.name.clone(),
            db_role: db_role.clone(),
            server: Some(format!("PostgreSQL {}", facts.version)),
            findings: judge(&facts, context).into_iter().chain(gateway).collect(),
            warnings,
        },
        Err(e) => unreachable(target, db_role, e, warnings),
    }
}

/// Whether `target`'s URL is a MariaDB/MySQL one (`mariadb://`, `mysql://`).
pub fn is_mysql(target: &curfew_policy::Target) -> bool {
    curfew_mysql::is_mysql_url(&target.url.text)
}

/// The gateway's findings, on the target a `[gateway]` forwards to (none elsewhere, or without
/// a `[gateway]`): what `curfew init` installed for it, read as `agent_role`.
async fn gateway_findings(
    connection: &curfew_postgres::Connection,
    target: &curfew_policy::Target,
    context: PolicyContext<'_>,
    agent_role: &str,
) -> Vec<Finding> {
    let Some(gateway) = context
        .policy
        .gateway
        .as_ref()
        .filter(|g| g.target == target.name)
    else {
        return Vec::new();
    };
    let Some(gateway_role) = gateway.own_role() else {
        return Vec::new();
    };
    let init = format!(
        "As a superuser (or the provider's admin role), run: curfew init --admin-user <admin> -c {}",
        context.source
    );
    match connection
        .gateway_install_facts(gateway_role, agent_role)
        .await
    {
        Ok(facts) => crate::gateway::findings(&facts, gateway_role, agent_role, &init),
        Err(e) => vec![Finding {
            id: "CURFEW-GATEWAY-AUTH",
            title: "The gateway's auth function is installed and secured",
            requirement: "curfew's own security: least privilege for the gateway's verifier lookups and session registry",
            status: Status::Unknown,
            observed: e.to_string(),
            expected: "the catalogs readable by the target's role".to_owned(),
            why: String::new(),
            fix: String::new(),
        }],
    }
}
