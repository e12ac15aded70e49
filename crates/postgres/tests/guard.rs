//! Guarded termination: a session is ended only while it is still what the snapshot saw.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use curfew_policy::{Cause, Decision, Limit, Session, SessionState};
use curfew_postgres::{Connection, Guard, IdleState, Outcome, PgError};
use curfew_sandbox::{Cluster, Options};
use tokio_postgres::error::SqlState;

use common::{
    ClientSession, Terminate, client, connect_trust, find, simple_value, wait_for_state, wait_until,
};

const IDLE: IdleState = IdleState::Idle;
const WAIT: Duration = Duration::from_secs(5);

fn cluster() -> Cluster {
    let cluster = Cluster::start(Options::default()).unwrap();
    cluster.psql("CREATE ROLE kim LOGIN").unwrap();
    cluster
}

fn idle_guard(session: &Session) -> Guard {
    Guard {
        pid: i32::try_from(session.pid).unwrap(),
        backend_start: session.backend_start,
        idle_since: Some((IDLE, session.state_change.unwrap())),
        not_before: None,
        keepers: Vec::new(),
    }
}

fn lifetime_guard(session: &Session) -> Guard {
    Guard {
        pid: i32::try_from(session.pid).unwrap(),
        backend_start: session.backend_start,
        idle_since: None,
        not_before: None,
        keepers: Vec::new(),
    }
}

async fn assert_alive(session: &ClientSession) {
    assert_eq!(simple_value(&session.client, "select 1").await, "1");
}

async fn assert_gone(connection: &mut Connection, session: &ClientSession) {
    wait_until("the client to see its end", WAIT, || async {
        session.client.is_closed()
    })
    .await;
    assert!(session.client.query_one("select 1", &[]).await.is_err());
    assert!(find(connection, session.pid).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_ended() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-a").await;
    let session = wait_for_state(&mut connection, kim.pid, SessionState::Idle).await;
    let since = session.state_change.unwrap();
    // The guard an engine decision makes is the same as one built by hand.
    let decision = Decision {
        session: session.key(),
        rule: 0,
        rule_id: curfew_policy::RuleId::new("idle"),
        deadline: since,
        cause: Cause::Idle {
            since,
            limit: Limit::from_secs(1).unwrap(),
        },
    };
    let guard = Guard::for_decision(&decision);
    assert_eq!(
        guard,
        Guard {
            not_before: Some(since),
            ..idle_guard(&session)
        }
    );

    let before = connection.snapshot(&[], false).await.unwrap().now;
    let outcome = connection.terminate(&guard, WAIT).await.unwrap();
    let Outcome::Ended { at, confirmed_at } = outcome else {
        panic!("expected Ended, got {outcome:?}");
    };
    assert!(
        before < at && at <= confirmed_at,
        "{before} {at} {confirmed_at}"
    );
    assert_eq!(outcome.result(), "ended");
    assert_gone(&mut connection, &kim).await;
    assert!(kim.driver.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_after_the_snapshot_saves_the_session() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-b").await;
    let seen = wait_for_state(&mut connection, kim.pid, SessionState::Idle).await;
    assert_alive(&kim).await;
    let now = wait_for_state(&mut connection, kim.pid, SessionState::Idle).await;
    assert!(now.state_change > seen.state_change);

    let outcome = connection
        .terminate(&idle_guard(&seen), WAIT)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::NoLongerMatched { .. }),
        "{outcome:?}"
    );
    assert_eq!(outcome.result(), "no_longer_matched");
    assert_alive(&kim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_guard_spares_a_session_that_became_active_or_in_transaction() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-states").await;
    let seen = wait_for_state(&mut connection, kim.pid, SessionState::Idle).await;
    // Same state_change, wrong state: an idle-in-transaction rule's guard on an idle session.
    let in_transaction = Guard {
        idle_since: Some((IdleState::InTransaction, seen.state_change.unwrap())),
        ..idle_guard(&seen)
    };
    let outcome = connection.terminate(&in_transaction, WAIT).await.unwrap();
    assert!(
        matches!(outcome, Outcome::NoLongerMatched { .. }),
        "{outcome:?}"
    );

    let sleeper = kim.client.clone();
    let running = tokio::spawn(async move { sleeper.query("select pg_sleep(1)", &[]).await });
    let active = wait_for_state(&mut connection, kim.pid, SessionState::Active).await;
    let guard = Guard {
        idle_since: Some((IDLE, active.state_change.unwrap())),
        ..idle_guard(&seen)
    };
    let outcome = connection.terminate(&guard, WAIT).await.unwrap();
    assert!(
        matches!(outcome, Outcome::NoLongerMatched { .. }),
        "{outcome:?}"
    );
    running.await.unwrap().unwrap();
    assert_alive(&kim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_pid_is_not_ended() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-c").await;
    let seen = find(&mut connection, kim.pid).await.unwrap();
    let guard = Guard {
        backend_start: seen
            .backend_start
            .checked_add(jiff::SignedDuration::from_micros(1))
            .unwrap(),
        ..lifetime_guard(&seen)
    };
    let outcome = connection.terminate(&guard, WAIT).await.unwrap();
    assert!(
        matches!(outcome, Outcome::NoLongerMatched { .. }),
        "{outcome:?}"
    );
    assert_alive(&kim).await;
    assert!(find(&mut connection, kim.pid).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_already_left_is_no_longer_matched() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-d").await;
    let seen = find(&mut connection, kim.pid).await.unwrap();
    drop(kim.client);
    kim.driver.await.unwrap().unwrap();
    let start = Instant::now();
    while find(&mut connection, i32::try_from(seen.pid).unwrap())
        .await
        .is_some()
    {
        assert!(start.elapsed() < WAIT, "the session did not go away");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for guard in [lifetime_guard(&seen), idle_guard(&seen)] {
        let outcome = connection.terminate(&guard, WAIT).await.unwrap();
        assert!(
            matches!(outcome, Outcome::NoLongerMatched { .. }),
            "{outcome:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifetime_guard_ends_an_active_session() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-e").await;
    let sleeper = kim.client.clone();
    let running = tokio::spawn(async move { sleeper.query("select pg_sleep(10)", &[]).await });
    let active = wait_for_state(&mut connection, kim.pid, SessionState::Active).await;
    let start = Instant::now();
    let outcome = connection
        .terminate(&lifetime_guard(&active), WAIT)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Ended { .. }), "{outcome:?}");
    let error = running.await.unwrap().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(error.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{error}");
    assert_gone(&mut connection, &kim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superusers_session_is_refused_to_a_plain_agent() {
    let cluster = cluster();
    cluster.psql(curfew_testkit::AGENT_ROLE).unwrap();
    let mut connection = connect_trust(&cluster, "curfew_agent").await;
    assert!(!connection.info.superuser);
    let admin = client(cluster.port(), "postgres", "guard-f").await;
    let seen = wait_for_state(&mut connection, admin.pid, SessionState::Idle).await;
    assert_eq!(&*seen.role, "postgres");
    for guard in [lifetime_guard(&seen), idle_guard(&seen)] {
        let outcome = connection.terminate(&guard, WAIT).await.unwrap();
        let Outcome::Failed { reason, .. } = &outcome else {
            panic!("expected Failed, got {outcome:?}");
        };
        // Refused before asking the server (which would fail the whole batch), in words.
        assert!(reason.contains("only a superuser may end it"), "{reason}");
        assert_eq!(outcome.result(), "failed");
    }
    // The refusal leaves curfew's connection usable and the session alive.
    assert!(!connection.is_closed());
    assert_alive(&admin).await;
    assert!(find(&mut connection, admin.pid).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_a_lost_connection() {
    let mut cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-g").await;
    let seen = find(&mut connection, kim.pid).await.unwrap();
    cluster.stop().unwrap();

    let error = connection.snapshot(&[], false).await.unwrap_err();
    assert!(error.is_connection_lost(), "{error:?}");
    assert!(
        error.to_string().contains("reading pg_stat_activity"),
        "{error}"
    );
    let error = connection
        .terminate(&lifetime_guard(&seen), WAIT)
        .await
        .unwrap_err();
    assert!(error.is_connection_lost(), "{error:?}");
    assert!(connection.is_closed());
}

/// Run `op` (a snapshot) on curfew's connection (backend `own`) while pg_database is locked, so
/// that it waits mid-statement; end curfew's session meanwhile and return what `op` returned.
async fn end_mid_statement<T: Send + 'static>(
    cluster: &Cluster,
    own: i32,
    op: impl Future<Output = Result<T, PgError>> + Send + 'static,
) -> Result<T, PgError> {
    let admin = client(cluster.port(), "postgres", "admin").await;
    let locker = client(cluster.port(), "postgres", "locker").await;
    // pg_stat_activity joins pg_database: the snapshot needs this lock.
    locker
        .client
        .batch_execute("BEGIN; LOCK TABLE pg_database IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let running = tokio::spawn(op);
    wait_until("curfew's statement to wait for the lock", WAIT, || async {
        let waiting = "select count(*) from pg_locks where pid = $1 and not granted";
        let row = admin.client.query_one(waiting, &[&own]).await.unwrap();
        row.get::<_, i64>(0) == 1
    })
    .await;
    admin
        .client
        .execute("select pg_terminate_backend($1)", &[&own])
        .await
        .unwrap();
    let result = running.await.unwrap();
    locker.client.batch_execute("ROLLBACK").await.unwrap();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curfews_session_ended_during_a_snapshot_is_a_lost_connection() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let own = connection.info.backend_pid;
    let op = async move { connection.snapshot(&[], false).await };
    let error = end_mid_statement(&cluster, own, op).await.unwrap_err();
    assert!(error.is_connection_lost(), "{error:?}");
    assert!(error.to_string().contains("FATAL"), "{error}");
}

// The termination statement reads no table (it calls pg_stat_get_activity per pid), so no lock
// can hold it mid-statement: curfew's session is ended just before it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curfews_session_ended_before_a_termination_is_a_lost_connection() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let own = connection.info.backend_pid;
    let kim = client(cluster.port(), "kim", "bystander").await;
    let guard = lifetime_guard(&find(&mut connection, kim.pid).await.unwrap());
    let admin = client(cluster.port(), "postgres", "admin").await;
    admin
        .client
        .execute("select pg_terminate_backend($1, 5000)", &[&own])
        .await
        .unwrap();
    // Not an Outcome::Failed: the connection is gone, the caller must reconnect.
    let error = connection.terminate(&guard, WAIT).await.unwrap_err();
    assert!(error.is_connection_lost(), "{error:?}");
    assert!(
        error.to_string().contains("terminating sessions"),
        "{error}"
    );
    assert_alive(&kim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_not_ended_before_its_deadline() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let kim = client(cluster.port(), "kim", "guard-early").await;
    let session = wait_for_state(&mut connection, kim.pid, SessionState::Idle).await;
    let guard = Guard {
        not_before: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)),
        ..idle_guard(&session)
    };
    let outcome = connection.terminate(&guard, WAIT).await.unwrap();
    assert!(matches!(outcome, Outcome::NotYetDue { .. }), "{outcome:?}");
    assert_alive(&kim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_each_session_whose_guard_holds() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let idle = client(cluster.port(), "kim", "batch-idle").await;
    let changed = client(cluster.port(), "kim", "batch-changed").await;
    let lifetime = client(cluster.port(), "kim", "batch-lifetime").await;
    let idle_seen = wait_for_state(&mut connection, idle.pid, SessionState::Idle).await;
    let changed_seen = wait_for_state(&mut connection, changed.pid, SessionState::Idle).await;
    let lifetime_seen = wait_for_state(&mut connection, lifetime.pid, SessionState::Idle).await;
    // One session runs a statement after it was seen: its idle guard must fail.
    simple_value(&changed.client, "select 1").await;
    let guards = [
        idle_guard(&idle_seen),
        idle_guard(&changed_seen),
        lifetime_guard(&lifetime_seen),
    ];
    let outcomes = connection.terminate_all(&guards, WAIT).await.unwrap();
    assert!(matches!(outcomes[0], Outcome::Ended { .. }), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Outcome::NoLongerMatched { .. }),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Outcome::Ended { .. }), "{outcomes:?}");
    assert_gone(&mut connection, &idle).await;
    assert_alive(&changed).await;
    assert_gone(&mut connection, &lifetime).await;
}

/// Regression (issue 13, item 3): one idle superuser session in a batch made the whole statement
/// fail "must be a superuser", and none of the ordinary sessions was ever ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_session_in_a_batch_does_not_stop_the_others() {
    let cluster = cluster();
    cluster
        .psql("CREATE ROLE agent LOGIN IN ROLE pg_read_all_stats, pg_signal_backend")
        .unwrap();
    let mut connection = connect_trust(&cluster, "agent").await;
    let root = client(cluster.port(), "postgres", "batch-superuser").await;
    let mut ordinary = Vec::new();
    for n in 0..3 {
        ordinary.push(client(cluster.port(), "kim", &format!("batch-ordinary-{n}")).await);
    }
    let mut guards = vec![idle_guard(
        &wait_for_state(&mut connection, root.pid, SessionState::Idle).await,
    )];
    for session in &ordinary {
        let seen = wait_for_state(&mut connection, session.pid, SessionState::Idle).await;
        guards.push(idle_guard(&seen));
    }
    let outcomes = connection.terminate_all(&guards, WAIT).await.unwrap();
    match &outcomes[0] {
        Outcome::Failed { reason, .. } => assert!(reason.contains("superuser"), "{reason}"),
        other => panic!("the superuser's session: {other:?}"),
    }
    for (n, outcome) in outcomes.iter().enumerate().skip(1) {
        assert!(
            matches!(outcome, Outcome::Ended { .. }),
            "{n}: {outcomes:?}"
        );
    }
    for session in &ordinary {
        assert_gone(&mut connection, session).await;
    }
    assert_alive(&root).await;
}

/// Regression (issue 13, item 11): the `max_sessions` guard did not re-check the session's rank:
/// a session judged beyond the limit was ended even after an older one had left, putting it
/// within the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_a_limit_is_left_alone_once_an_older_one_has_gone() {
    let cluster = cluster();
    let mut connection = connect_trust(&cluster, "postgres").await;
    let first = client(cluster.port(), "kim", "limit-first").await;
    let second = client(cluster.port(), "kim", "limit-second").await;
    let third = client(cluster.port(), "kim", "limit-third").await;
    let first_seen = wait_for_state(&mut connection, first.pid, SessionState::Idle).await;
    let second_seen = wait_for_state(&mut connection, second.pid, SessionState::Idle).await;
    let third_seen = wait_for_state(&mut connection, third.pid, SessionState::Idle).await;
    let keeper = vec![(
        i32::try_from(first_seen.pid).unwrap(),
        first_seen.backend_start,
    )];
    // With a limit of one, the second and third are beyond it while the first stays.
    let over = |seen: &Session| Guard {
        keepers: keeper.clone(),
        ..lifetime_guard(seen)
    };
    let outcome = connection
        .terminate(&over(&third_seen), WAIT)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Ended { .. }), "{outcome:?}");
    // The first leaves: the second is now the only session, within the limit.
    cluster
        .psql(&format!("SELECT pg_terminate_backend({})", first.pid))
        .unwrap();
    let start = Instant::now();
    while find(&mut connection, first.pid).await.is_some() {
        assert!(start.elapsed() < WAIT, "the first session did not go");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outcome = connection
        .terminate(&over(&second_seen), WAIT)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::NoLongerMatched { .. }),
        "{outcome:?}"
    );
    assert_alive(&second).await;
}
