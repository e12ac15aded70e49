//! Sessions read from a real MariaDB: idle, idle in transaction, running (never idle), curfew's
//! own connections, program names with and without `performance_schema`.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::time::Duration;

use curfew_mysql::{ProgramNames, connect};
use curfew_policy::{BackendType, SessionState};
use curfew_sandbox::MariaDbOptions;
use fixture::{Fixture, running};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_classified_on_the_server_s_clock() {
    let f = Fixture::start(MariaDbOptions::default());
    let mut curfew = f.curfew().await;
    assert_eq!(curfew.info().program_names, ProgramNames::Attributes);
    let mut idle = f.client("app", "billing").await;
    idle.query_drop("SELECT 1").await.unwrap();
    let mut in_trx = f.client("app", "billing").await;
    in_trx
        .query_drop("START TRANSACTION; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // A read-only transaction is InnoDB's too; a bare BEGIN is not, until it reads or writes
    // (it holds nothing until then).
    let mut reading = f.client("app", "billing").await;
    reading
        .query_drop("START TRANSACTION; SELECT * FROM t")
        .await
        .unwrap();
    let mut begun = f.client("app", "billing").await;
    begun.query_drop("START TRANSACTION").await.unwrap();
    let (busy_id, busy) = running(f.client("app", "report").await, 30).await;
    let other_curfew = f.curfew().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let snapshot = curfew.snapshot().await.unwrap();
    let find = |id: u32| snapshot.sessions.iter().find(|s| s.pid == i64::from(id));
    let own = i64::try_from(curfew.info().connection_id).unwrap();
    assert!(
        snapshot.sessions.iter().all(|s| s.pid != own),
        "own connection listed"
    );

    let s = find(idle.id()).unwrap();
    assert_eq!(s.state, SessionState::Idle);
    assert_eq!(s.backend_type, BackendType::ClientBackend);
    assert_eq!(
        (&*s.role, &*s.database, &*s.application),
        ("app", "app", "billing")
    );
    assert_eq!(s.client_addr.ip(), Some("127.0.0.1".parse().unwrap()));
    let idle_for = snapshot.now.duration_since(s.state_change.unwrap());
    assert!(
        idle_for.as_millis() >= 1000 && idle_for.as_secs() < 30,
        "{idle_for:?}"
    );
    assert!(s.backend_start <= s.state_change.unwrap());

    let s = find(in_trx.id()).unwrap();
    assert_eq!(s.state, SessionState::IdleInTransaction);
    let trx_age = snapshot.now.duration_since(s.xact_start.unwrap());
    assert!(
        trx_age.as_millis() >= 1000 && trx_age.as_secs() < 30,
        "{trx_age:?}"
    );

    assert_eq!(
        find(reading.id()).unwrap().state,
        SessionState::IdleInTransaction
    );
    assert_eq!(find(begun.id()).unwrap().state, SessionState::Idle);

    let s = find(busy_id).unwrap();
    assert_eq!(
        s.state,
        SessionState::Active,
        "a running query is never idle"
    );
    assert_eq!(&*s.application, "report");

    // Another curfew connection (curfew's account and program name: a replica's, or this
    // agent's lock connection) is left out, as on PostgreSQL: no rule may end it.
    assert_eq!(other_curfew.info().user, fixture::AGENT);
    assert!(find(u32::try_from(other_curfew.info().connection_id).unwrap()).is_none());

    // The next snapshot keeps each session's start; a statement moves its idleness only.
    idle.query_drop("SELECT 2").await.unwrap();
    let again = curfew.snapshot().await.unwrap();
    let before = find(idle.id()).unwrap();
    let after = again.sessions.iter().find(|s| s.pid == before.pid).unwrap();
    assert_eq!(after.backend_start, before.backend_start);
    assert!(after.state_change > before.state_change);
    busy.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_performance_schema_program_names_are_unknown_and_said_so() {
    let f = Fixture::start(MariaDbOptions {
        performance_schema: false,
        ..MariaDbOptions::default()
    });
    let connected = connect(&f.target()).await.unwrap();
    let mut curfew = connected.connection;
    let ProgramNames::Unavailable(why) = &curfew.info().program_names else {
        panic!("program names reported available");
    };
    assert!(why.contains("performance_schema is off"), "{why}");
    assert!(
        connected
            .warnings
            .iter()
            .any(|w| w.contains("performance_schema is off")),
        "{:?}",
        connected.warnings
    );
    let client = f.client("app", "billing").await;
    let snapshot = curfew.snapshot().await.unwrap();
    let s = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(client.id()))
        .unwrap();
    assert_eq!(&*s.application, "");
}
