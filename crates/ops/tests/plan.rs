//! `curfew_ops::plan` on a real server: the instant resolved from the server's clock, the
//! login windows as data at that instant, and a bad instant refused as the operator's mistake.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::cell::Cell;

use curfew_agent::LoginWindowPlan;
use curfew_ops::{LoginLock, OpsError, Step};
use curfew_policy::LoadedPolicy;
use jiff::Timestamp;

fn no_steps(step: Step) -> std::io::Result<()> {
    // Only connection warnings may come (whether any does depends on how the sandbox is
    // reached, so neither is asserted).
    assert!(matches!(step, Step::Warning(_)), "{step:?}");
    Ok(())
}

#[tokio::test]
async fn the_plan_judges_at_the_resolved_instant_and_shows_the_login_windows() {
    let cluster = curfew_testkit::cluster_with_agent_role("CREATE ROLE ana LOGIN;");
    let text = format!(
        "[[target]]\nname = \"db\"\nurl = \"{}\"\n\n[[rule]]\nname = \"maint\"\ndeny = [\"2030-01-01 00:00 - 2030-01-01 06:00\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"ana\"]\n",
        cluster.url("curfew_agent", "postgres")
    );
    let loaded = LoadedPolicy::from_bytes_with(
        "curfew.toml",
        text.into_bytes(),
        Some(&[&curfew_postgres::POSTGRES_URLS]),
    )
    .unwrap();
    let targets: Vec<_> = loaded.policy.targets.iter().collect();
    let start: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let end: Timestamp = "2030-01-01T06:00:00Z".parse().unwrap();
    let inside: Timestamp = "2030-01-01T01:00:00Z".parse().unwrap();

    let seen = Cell::new(None);
    let resolve = |now: Timestamp| {
        seen.set(Some(now));
        Ok(inside)
    };
    let plans = curfew_ops::plan(&loaded, &targets, &resolve, &mut no_steps)
        .await
        .unwrap();
    let server_now = seen
        .get()
        .expect("the instant is resolved from the server's clock");
    let drift = (server_now - Timestamp::now()).get_seconds().abs();
    assert!(drift < 60, "server clock {server_now} is {drift}s off");
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert_eq!(plan.target, "db");
    assert!(plan.server.starts_with("PostgreSQL "), "{}", plan.server);
    assert_eq!((plan.now, plan.at), (server_now, inside));
    assert_eq!(plan.sessions.len(), plan.verdicts.len());
    assert_eq!(
        plan.login_locks,
        vec![LoginLock::Window(LoginWindowPlan {
            rule: "maint".to_owned(),
            roles: vec!["ana".to_owned()],
            locked: true,
            until: Some(end),
        })]
    );

    // Now (before 2030): allowed until the window opens.
    let plans = curfew_ops::plan(&loaded, &targets, &Ok, &mut no_steps)
        .await
        .unwrap();
    assert_eq!(
        plans[0].login_locks,
        vec![LoginLock::Window(LoginWindowPlan {
            rule: "maint".to_owned(),
            roles: vec!["ana".to_owned()],
            locked: false,
            until: Some(start),
        })]
    );

    let refuse = |_: Timestamp| Err("+99999y: out of range".to_owned());
    let error = curfew_ops::plan(&loaded, &targets, &refuse, &mut no_steps)
        .await
        .unwrap_err();
    assert!(matches!(error, OpsError::BadInstant(_)), "{error:?}");
    assert!(error.is_usage());
    assert_eq!(error.to_string(), "+99999y: out of range");
}
