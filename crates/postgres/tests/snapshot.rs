//! Reading sessions: what a snapshot holds, memberships, the server's clock, shared names.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use curfew_policy::{BackendType, SessionState};
use curfew_sandbox::{Cluster, Options};

use common::{client, connect_trust, find, wait_for_state};

/// A trust cluster with kim in analysts in humans, and lee in no group.
fn cluster() -> Cluster {
    let cluster = Cluster::start(Options::default()).unwrap();
    cluster
        .psql(
            "CREATE ROLE humans NOLOGIN;
             CREATE ROLE analysts NOLOGIN IN ROLE humans;
             CREATE ROLE kim LOGIN IN ROLE analysts;
             CREATE ROLE lee LOGIN;",
        )
        .unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_describes_other_sessions_but_not_curfews_own() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "snap-test").await;

    let snapshot = connection.snapshot(&[], false).await.unwrap();
    assert!(
        snapshot
            .sessions
            .iter()
            .all(|s| s.pid != i64::from(connection.info.backend_pid)),
        "curfew's own session is in the snapshot"
    );
    // Only client backends: kim's session is the only one.
    assert_eq!(snapshot.sessions.len(), 1, "{:#?}", snapshot.sessions);
    let session = &snapshot.sessions[0];
    assert_eq!(session.pid, i64::from(kim.pid));
    assert_eq!(&*session.role, "kim");
    assert_eq!(&*session.database, "postgres");
    assert_eq!(&*session.application, "snap-test");
    assert_eq!(
        session.client_addr.ip(),
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
    );
    assert_eq!(session.state, SessionState::Idle);
    assert_eq!(session.xact_start, None);
    assert_eq!(session.backend_type, BackendType::ClientBackend);
    assert!(session.member_of.is_empty());
    let backend_start: jiff::Timestamp = kim
        .client
        .query_one(
            "select backend_start from pg_stat_activity where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(session.backend_start, backend_start);
    let state_change = session.state_change.unwrap();
    assert!(backend_start <= state_change && state_change <= snapshot.now);

    // Excluding a pid on request.
    let without = connection.snapshot(&[kim.pid], false).await.unwrap();
    assert!(without.sessions.is_empty(), "{:#?}", without.sessions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_and_in_transaction_states_are_seen() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "busy").await;

    let sleeper = kim.client.clone();
    let running = tokio::spawn(async move { sleeper.query("select pg_sleep(1.5)", &[]).await });
    let active = wait_for_state(&mut connection, kim.pid, SessionState::Active).await;
    assert!(active.xact_start.is_some());
    running.await.unwrap().unwrap();

    kim.client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let session = find(&mut connection, kim.pid).await.unwrap();
    assert_eq!(session.state, SessionState::IdleInTransaction);
    assert!(session.xact_start.is_some());
    kim.client.batch_execute("SELECT 1/0").await.unwrap_err();
    // The error reaches the client before the server reports the session's new state (it does
    // so just before ReadyForQuery), so wait for it rather than look once.
    let session = wait_for_state(
        &mut connection,
        kim.pid,
        SessionState::IdleInTransactionAborted,
    )
    .await;
    // The failed transaction is over though its block is still open: PostgreSQL reports no
    // transaction start for it (nothing in curfew depends on xact_start).
    assert!(session.xact_start.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_are_read_only_when_asked_and_include_indirect_ones() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "a").await;
    let lee = client(cluster.port(), "lee", "b").await;

    let with = connection.snapshot(&[], true).await.unwrap();
    let kims = with
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(kim.pid))
        .unwrap();
    assert_eq!(&kims.member_of[..], ["analysts", "humans"]);
    let lees = with
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(lee.pid))
        .unwrap();
    assert!(lees.member_of.is_empty(), "{:?}", lees.member_of);

    let without = connection.snapshot(&[], false).await.unwrap();
    let kims = without
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(kim.pid))
        .unwrap();
    assert!(kims.member_of.is_empty(), "{:?}", kims.member_of);

    // A change of membership shows in the next snapshot (the cache does not hide it).
    cluster.psql("REVOKE analysts FROM kim").unwrap();
    let after = connection.snapshot(&[], true).await.unwrap();
    let kims = after
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(kim.pid))
        .unwrap();
    assert!(kims.member_of.is_empty(), "{:?}", kims.member_of);
    cluster.psql("GRANT humans TO kim").unwrap();
    let after = connection.snapshot(&[], true).await.unwrap();
    let kims = after
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(kim.pid))
        .unwrap();
    assert_eq!(&kims.member_of[..], ["humans"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_clock_is_the_servers() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    // With no session at all, the snapshot still has a clock.
    let before: jiff::Timestamp = connection
        .client()
        .query_one("select clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0);
    let snapshot = connection.snapshot(&[], true).await.unwrap();
    let after: jiff::Timestamp = connection
        .client()
        .query_one("select now()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(snapshot.sessions.is_empty(), "{:#?}", snapshot.sessions);
    assert!(before <= snapshot.now, "{before} > {}", snapshot.now);
    assert!(snapshot.now <= after, "{} > {after}", snapshot.now);
    let gap = after.duration_since(snapshot.now);
    assert!(gap < jiff::SignedDuration::from_secs(1), "{gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_one_role_share_their_names() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let first = client(cluster.port(), "kim", "same-app").await;
    let second = client(cluster.port(), "kim", "same-app").await;
    let other = client(cluster.port(), "lee", "same-app").await;

    let snapshot = connection.snapshot(&[], true).await.unwrap();
    assert_eq!(snapshot.sessions.len(), 3, "{:#?}", snapshot.sessions);
    let by_pid = |pid: i32| {
        snapshot
            .sessions
            .iter()
            .find(|s| s.pid == i64::from(pid))
            .unwrap()
    };
    let (a, b, c) = (by_pid(first.pid), by_pid(second.pid), by_pid(other.pid));
    assert!(Arc::ptr_eq(&a.role, &b.role));
    assert!(Arc::ptr_eq(&a.member_of, &b.member_of));
    assert!(Arc::ptr_eq(&a.database, &c.database));
    assert!(Arc::ptr_eq(&a.application, &c.application));
    assert!(!Arc::ptr_eq(&a.role, &c.role));
    assert_eq!(&*c.role, "lee");

    // Kept across snapshots too, while unchanged.
    let next = connection.snapshot(&[], true).await.unwrap();
    let again = next
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(first.pid))
        .unwrap();
    assert!(Arc::ptr_eq(&a.role, &again.role));
    assert!(Arc::ptr_eq(&a.member_of, &again.member_of));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_curfew_processes_are_left_out_but_not_impostors() {
    let cluster = cluster();
    cluster.psql(curfew_testkit::AGENT_ROLE).unwrap();
    let mut connection = connect_trust(&cluster, "curfew_agent").await;
    // Another curfew process (a replica, `curfew plan`): same role, application 'curfew'.
    let other = connect_trust(&cluster, "curfew_agent").await;
    // A leader's lock session announces itself (regression: it was then taken for a client
    // session, counted, and could have been ended by an idle rule).
    let leader = connect_trust(&cluster, "curfew_agent").await;
    leader
        .announce(&curfew_postgres::Announcement::text(
            false,
            "0123456789abcdef",
        ))
        .await
        .unwrap();
    // Someone else calling their application 'curfew' is not curfew.
    let impostor = client(cluster.port(), "kim", "curfew").await;
    let announcing_impostor = client(
        cluster.port(),
        "kim",
        "curfew agent: enforcing policy sha256:0",
    )
    .await;
    // curfew's role under another application name is not curfew either.
    let by_hand = client(cluster.port(), "curfew_agent", "psql").await;

    let snapshot = connection.snapshot(&[], false).await.unwrap();
    let pids: Vec<i32> = snapshot
        .sessions
        .iter()
        .map(|s| i32::try_from(s.pid).unwrap())
        .collect();
    assert!(!pids.contains(&other.info.backend_pid), "{pids:?}");
    assert!(!pids.contains(&leader.info.backend_pid), "{pids:?}");
    assert!(pids.contains(&announcing_impostor.pid), "{pids:?}");
    assert!(pids.contains(&impostor.pid), "{pids:?}");
    assert!(pids.contains(&by_hand.pid), "{pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_version_is_read_once_at_connect() {
    let cluster = cluster();
    let connection = connect_trust(&cluster, "postgres").await;
    let info = &connection.info;
    // server_version_num is MMmmpp: 150018 is 15.18.
    assert_eq!(
        u32::try_from(info.version_num / 10_000).unwrap(),
        cluster.major_version(),
        "{info:?}"
    );
    assert!(info.version_num >= curfew_postgres::MINIMUM_VERSION_NUM);
    assert!(
        info.version
            .starts_with(&cluster.major_version().to_string())
    );
}

/// Regression (issue 13, item 7): a role dropped while its session lives on has a NULL
/// `usename`; the snapshot decoder panicked and the worker died with nobody to restart it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_a_dropped_role_is_still_seen() {
    let cluster = cluster();
    cluster.psql("CREATE ROLE doomed LOGIN").unwrap();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let doomed = client(cluster.port(), "doomed", "orphan").await;
    cluster.psql("DROP ROLE doomed").unwrap();
    let snapshot = connection.snapshot(&[], true).await.unwrap();
    let seen = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(doomed.pid))
        .expect("the orphaned session is in the snapshot");
    assert!(
        seen.role.starts_with("(dropped role "),
        "role shown as {:?}",
        seen.role
    );
}
