//! What observers (the status page, `curfew_login_locks`) learn of the login locks in force on
//! a real server: each lock's role, kind, rule or maker, since and until, and its end.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "agent_common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use curfew_agent::{AgentEvent, LoginLock};
use jiff::{SignedDuration, Timestamp};

/// The cluster of the harness, with `ana` and the ledger `curfew init` installs.
async fn lock_cluster() -> curfew_sandbox::Cluster {
    let cluster = cluster();
    cluster
        .psql("CREATE ROLE ana LOGIN; CREATE ROLE bo LOGIN;")
        .unwrap();
    let spec = curfew_postgres::TargetSpec {
        name: "test".into(),
        url: curfew_postgres::ConnectionUrl::parse(&cluster.url("postgres", "postgres")).unwrap(),
        password_file: None,
    };
    let mut admin = curfew_postgres::connect(&spec).await.unwrap().connection;
    admin.install_ledger("curfew_agent").await.unwrap();
    cluster
}

/// The next `LoginLocks` report of target "test" that `pick` accepts.
async fn locks_when(
    agent: &mut Agent,
    limit: Duration,
    mut pick: impl FnMut(&[LoginLock]) -> bool,
) -> Vec<LoginLock> {
    agent
        .next(limit, |e| match e {
            AgentEvent::LoginLocks { target, locks } if target == "test" && pick(locks) => {
                Some(locks.clone())
            }
            _ => None,
        })
        .await
        .expect("no such report of the login locks")
}

fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_hear_of_window_and_incident_locks_with_their_ends() {
    let cluster = lock_cluster().await;
    let dir = scratch("lock-events");
    // A deny window that locks ana's login from a minute ago until a minute from now.
    let now = Timestamp::now();
    let window_end: Timestamp = stamp(now + SignedDuration::from_mins(1))
        .replace(' ', "T")
        .parse::<jiff::civil::DateTime>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    let text = format!(
        "[[rule]]\nname = \"maintenance\"\ndeny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"ana\"]\n",
        stamp(now - SignedDuration::from_mins(1)),
        stamp(window_end)
    );
    let mut agent = Agent::start(policy(&cluster, &text), &dir).await;
    let locks = locks_when(&mut agent, Duration::from_secs(10), |l| !l.is_empty()).await;
    assert_eq!(locks.len(), 1, "{locks:#?}");
    assert_eq!(locks[0].role, "ana");
    assert_eq!(locks[0].kind, "window");
    assert_eq!(locks[0].rule.as_deref(), Some("maintenance"));
    assert_eq!(locks[0].until, Some(window_end), "{locks:#?}");

    // An incident lock on bo, lapsing in 3 s.
    let (ledger, bo) = ledger_and_role(&cluster, "bo").await;
    let expires = Timestamp::now() + SignedDuration::from_secs(3);
    ledger
        .create_incident_lock(&bo, "INC-7: leaked password", "tester@host", Some(expires))
        .await
        .unwrap();
    let locks = locks_when(&mut agent, Duration::from_secs(10), |l| l.len() == 2).await;
    let incident = locks.iter().find(|l| l.role == "bo").unwrap();
    assert_eq!(incident.kind, "incident");
    assert_eq!(incident.rule, None);
    assert_eq!(incident.created_by, "tester@host");
    assert_eq!(incident.reason, "INC-7: leaked password");
    // The server keeps microseconds.
    let off = incident.until.unwrap().duration_since(expires).abs();
    assert!(off < SignedDuration::from_millis(1), "{incident:#?}");
    assert!(incident.since <= Timestamp::now());

    // It lapses: the next reports no longer list it.
    let locks = locks_when(&mut agent, Duration::from_secs(10), |l| {
        l.iter().all(|l| l.role != "bo")
    })
    .await;
    assert_eq!(locks.len(), 1, "{locks:#?}");
    agent.stop().await;
}
