//! `curfew plan` on a MariaDB/MySQL target: one snapshot through `curfew_mysql`'s public
//! reader (the agent's own `SessionReader`), judged at an instant by the engine the agent uses.
//! Login locks are not shown: MariaDB targets have none yet (see docs/mariadb.md).

use anyhow::Context as _;
use curfew_ops::TargetPlan;
use curfew_policy::{LoadedPolicy, Target};
use jiff::Timestamp;

use crate::exit::Failure;

/// The plan for one MariaDB/MySQL target; `at` resolves `--at` against the server's clock.
pub(crate) async fn plan(
    loaded: &LoadedPolicy,
    target: &Target,
    at: &dyn Fn(Timestamp) -> Result<Timestamp, String>,
) -> Result<TargetPlan, Failure> {
    let spec = curfew_mysql::MysqlTarget::from_policy(target)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    eprintln!(
        "curfew: connecting to target \"{}\" (MariaDB/MySQL)",
        target.name
    );
    let connected = curfew_mysql::connect(&spec)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    for warning in &connected.warnings {
        eprintln!("curfew: warning: {warning}");
    }
    let mut connection = connected.connection;
    let info = connection.info().clone();
    let server = match info.flavor {
        curfew_mysql::Flavor::MariaDb { .. } => format!("MariaDB {}", info.version),
        curfew_mysql::Flavor::MySql => format!("MySQL {}", info.version),
    };
    let snapshot = connection
        .snapshot()
        .await
        .with_context(|| format!("reading the sessions of target \"{}\"", target.name))
        .map_err(Failure::Runtime)?;
    let at = at(snapshot.now).map_err(Failure::Usage)?;
    let verdicts = curfew_agent::judge_sessions(&loaded.policy, &snapshot.sessions, at);
    if loaded.policy.rules.iter().any(|r| r.lock_logins) {
        eprintln!(
            "curfew: note: target \"{}\" is MariaDB/MySQL: login locks are not shown (not supported there yet)",
            target.name
        );
    }
    Ok(TargetPlan {
        target: target.name.clone(),
        server,
        now: snapshot.now,
        at,
        sessions: snapshot.sessions,
        verdicts,
        login_locks: Vec::new(),
        // The gateway speaks PostgreSQL's protocol only.
        gateway: Default::default(),
    })
}
