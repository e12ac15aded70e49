//! Leadership among replicas: one advisory lock holder per server, and actions fenced on it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use curfew_postgres::{Guard, Leadership};
use curfew_sandbox::{Cluster, Options};

use common::{Terminate, client, connect_trust, find, simple_value};

async fn simple_value_of(cluster: &Cluster, sql: &str) -> String {
    let admin = client(cluster.port(), "postgres", "admin").await;
    simple_value(&admin.client, sql).await
}

fn cluster() -> Cluster {
    let cluster = Cluster::start(Options::default()).unwrap();
    cluster
        .psql("CREATE ROLE kim LOGIN; CREATE DATABASE other")
        .unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_leads_and_another_takes_over_when_it_ends() {
    let cluster = cluster();
    let mut first = connect_trust(&cluster, "postgres").await;
    let mut second = connect_trust(&cluster, "postgres").await;
    let leading = first.try_lead().await.unwrap().expect("the first leads");
    assert_eq!(leading.pid, first.info.backend_pid);
    assert!(first.still_leads().await.unwrap());
    // Taking it again on the same session is still leading, not a second leader.
    assert!(first.try_lead().await.unwrap().is_some());
    assert_eq!(second.try_lead().await.unwrap(), None);
    assert!(!second.still_leads().await.unwrap());
    let leader = second.leader().await.unwrap().expect("a leader is shown");
    assert_eq!(leader.pid, i64::from(first.info.backend_pid));
    assert_eq!(leader.database.as_deref(), Some("postgres"));

    // A replica connected to another database of the same server does not lead beside it.
    let url = cluster.url("postgres", "other");
    let mut elsewhere = curfew_postgres::connect(&common::spec(&url, None))
        .await
        .unwrap()
        .connection;
    assert_eq!(elsewhere.try_lead().await.unwrap(), None);

    drop(first);
    let since = std::time::Instant::now();
    while second.try_lead().await.unwrap().is_none() {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the second never led"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(second.still_leads().await.unwrap());
    assert!(
        second.try_lead().await.unwrap().is_some(),
        "taken again by its holder"
    );
    // One holder is left: the first's lock went with its session, and the replica on the
    // other database gave back what it took.
    assert_eq!(
        simple_value_of(
            &cluster,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        )
        .await,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_connection_ends_nothing_once_its_leader_lock_is_gone() {
    let cluster = cluster();
    let mut lock = connect_trust(&cluster, "postgres").await;
    let mut acting = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "fenced").await;
    let session = find(&mut acting, kim.pid).await.unwrap();
    let guard = Guard {
        pid: i32::try_from(session.pid).unwrap(),
        backend_start: session.backend_start,
        idle_since: None,
        not_before: None,
        keepers: Vec::new(),
    };
    let leadership: Leadership = lock.try_lead().await.unwrap().unwrap();
    acting.fence(Some(leadership));

    // The lock session is ended behind the agent's back (as a network failure or an operator
    // would): the fenced statement refuses to act, and says why.
    let lock_pid = lock.info.backend_pid;
    let killer = client(cluster.port(), "postgres", "killer").await;
    simple_value(
        &killer.client,
        &format!("select pg_terminate_backend({lock_pid}, 5000)"),
    )
    .await;
    let error = acting
        .terminate(&guard, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(error.is_not_leading(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("no longer holds the leader lock"),
        "{error}"
    );
    assert_eq!(simple_value(&kim.client, "select 1").await, "1");

    // Another session taking the same key is not the fenced leader either.
    let mut usurper = connect_trust(&cluster, "postgres").await;
    assert!(usurper.try_lead().await.unwrap().is_some());
    let error = acting
        .terminate(&guard, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(error.is_not_leading(), "{error:?}");
    assert_eq!(simple_value(&kim.client, "select 1").await, "1");

    // Fenced on the live leader, it acts.
    acting.fence(usurper.try_lead().await.unwrap());
    let outcome = acting
        .terminate(&guard, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(outcome.result(), "ended", "{outcome:?}");
}
