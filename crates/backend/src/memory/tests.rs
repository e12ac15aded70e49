//! The in-memory server against the contract's documentation.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use curfew_policy::{SessionKey, SessionState};
use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::{
    AnchorStore as _, BackendError, Connector as _, Coordination as _, EndRequest, ErrorKind,
    FaultHook, IdleState, LoginChange, LoginLedger as _, Outcome, SessionEnder as _,
    SessionReader as _, Signal, Termination,
};

/// A throwaway audit log (removed on drop): the contract lets no request through without an
/// intent record.
struct Journal {
    log: curfew_audit::AuditLog,
    /// Holds the log's file; removed with the journal.
    _dir: curfew_testkit::TempDir,
}

impl std::ops::Deref for Journal {
    type Target = curfew_audit::AuditLog;
    fn deref(&self) -> &curfew_audit::AuditLog {
        &self.log
    }
}

fn journal() -> Journal {
    let dir = curfew_testkit::TempDir::new("memory-tests", "journal");
    let log = curfew_audit::AuditLog::open(&dir.join("audit.log")).unwrap();
    Journal { log, _dir: dir }
}

/// End `requests`, each with its intent written first.
async fn end(
    conn: &mut MemoryConnection,
    requests: &[EndRequest],
) -> Result<Vec<Signal>, BackendError> {
    let log = journal();
    let tokens: Vec<_> = requests
        .iter()
        .map(|_| {
            log.intend(curfew_audit::Intent::<Termination>::new(
                Timestamp::now(),
                "db1",
                None,
            ))
            .unwrap()
        })
        .collect();
    let authorized: Vec<_> = tokens
        .iter()
        .zip(requests)
        .map(|(token, request)| token.authorize(request.clone()))
        .collect();
    conn.signal_all(&authorized).await
}

/// A login change's intent, for `role`.
fn login_change(
    log: &curfew_audit::AuditLog,
) -> curfew_audit::IntentToken<curfew_audit::LoginChange> {
    log.intend(curfew_audit::Intent::<curfew_audit::LoginChange>::new(
        Timestamp::now(),
        "db1",
        None,
    ))
    .unwrap()
}

async fn disable(
    conn: &mut MemoryConnection,
    role: u32,
    fault: FaultHook<'_>,
) -> Result<LoginChange, BackendError> {
    let log = journal();
    let token = login_change(&log);
    conn.disable_login(&token.authorize(role), fault).await
}

async fn restore(
    conn: &mut MemoryConnection,
    role: u32,
    fault: FaultHook<'_>,
) -> Result<LoginChange, BackendError> {
    let log = journal();
    let token = login_change(&log);
    conn.restore_login(&token.authorize(role), fault).await
}

fn start() -> Timestamp {
    "2026-11-27T22:00:00Z".parse().unwrap()
}

fn idle_request(server: &MemoryServer, key: SessionKey, not_before: Timestamp) -> EndRequest {
    let since = server.session(key).unwrap().state_change.unwrap();
    EndRequest {
        session: key,
        idle_since: Some((IdleState::Idle, since)),
        not_before: Some(not_before),
        keepers: Vec::new(),
    }
}

fn no_hook(_: &'static str) {}

#[tokio::test(start_paused = true)]
async fn the_server_clock_follows_tokio_s() {
    let server = MemoryServer::new("db1", start());
    assert_eq!(server.now(), start());
    tokio::time::advance(Duration::from_secs(90)).await;
    assert_eq!(server.now(), start() + SignedDuration::from_secs(90));
    server.set_skew(SignedDuration::from_secs(-2));
    assert_eq!(server.now(), start() + SignedDuration::from_secs(88));
    let (mut conn, _) = server.connector().connect().await.unwrap();
    assert_eq!(conn.snapshot(false).await.unwrap().now, server.now());
}

#[tokio::test(start_paused = true)]
async fn an_end_is_refused_before_its_deadline_and_made_at_it() {
    let server = MemoryServer::new("db1", start());
    let kim = server.login("kim", "app");
    let (mut conn, _) = server.connector().connect().await.unwrap();
    let deadline = start() + SignedDuration::from_secs(60);
    let request = idle_request(&server, kim, deadline);
    let early = end(&mut conn, std::slice::from_ref(&request))
        .await
        .unwrap();
    assert!(matches!(
        early[..],
        [Signal::Settled(Outcome::NotYetDue { .. })]
    ));
    assert!(server.session(kim).is_some());
    tokio::time::advance(Duration::from_secs(60)).await;
    let ended = end(&mut conn, &[request]).await.unwrap();
    assert_eq!(ended, vec![Signal::Signalled { at: deadline }]);
    assert!(server.session(kim).is_none());
    assert_eq!(server.signalled(), vec![(kim, deadline)]);
    assert_eq!(conn.exited(&[kim]).await.unwrap(), vec![Some(deadline)]);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_changed_is_left_alone() {
    let server = MemoryServer::new("db1", start());
    let (mut conn, _) = server.connector().connect().await.unwrap();
    let now = server.now();
    // A statement moved its idle clock.
    let busy = server.login("kim", "app");
    let moved = idle_request(&server, busy, now);
    tokio::time::advance(Duration::from_secs(1)).await;
    server.statement(busy);
    // Another identity (a reused pid).
    let other = server.login("lee", "app");
    let reused = EndRequest::identity_only(SessionKey {
        pid: other.pid,
        backend_start: other.backend_start - SignedDuration::from_secs(5),
    });
    // Idle, but the request is for idle in a transaction.
    let idle = server.login("ann", "app");
    let mut wrong_state = idle_request(&server, idle, now);
    wrong_state.idle_since = wrong_state
        .idle_since
        .map(|(_, since)| (IdleState::InTransaction, since));
    // A keeper has gone.
    let keeper = server.login("bob", "app");
    let over = server.login("bob", "app");
    let mut over_limit = EndRequest::identity_only(over);
    over_limit.keepers = vec![keeper];
    server.remove(keeper);
    let answers = end(&mut conn, &[moved, reused, wrong_state, over_limit])
        .await
        .unwrap();
    assert_eq!(answers.len(), 4);
    for answer in answers {
        assert!(
            matches!(answer, Signal::Settled(Outcome::NoLongerMatched { .. })),
            "{answer:?}"
        );
    }
    assert!(server.signalled().is_empty());
    // In a transaction, the same kind of request ends it.
    server.change(idle, |s| s.state = SessionState::IdleInTransactionAborted);
    let since = server.session(idle).unwrap().state_change.unwrap();
    let mut in_transaction = EndRequest::identity_only(idle);
    in_transaction.idle_since = Some((IdleState::InTransaction, since));
    let answers = end(&mut conn, &[in_transaction]).await.unwrap();
    assert!(matches!(answers[..], [Signal::Signalled { .. }]));
}

#[tokio::test(start_paused = true)]
async fn a_slow_exit_is_seen_when_it_happens_and_a_refused_session_stays() {
    let server = MemoryServer::new("db1", start());
    let (mut conn, _) = server.connector().connect().await.unwrap();
    server.set_exit_delay(Some(Duration::from_millis(30)));
    let slow = server.login("kim", "app");
    let guarded = server.login("postgres", "app");
    server.refuse_to_end(guarded, "a superuser's session", Some("42501"));
    let answers = end(
        &mut conn,
        &[
            EndRequest::identity_only(slow),
            EndRequest::identity_only(guarded),
        ],
    )
    .await
    .unwrap();
    assert!(matches!(answers[0], Signal::Signalled { .. }));
    assert_eq!(
        answers[1],
        Signal::Settled(Outcome::Failed {
            reason: "a superuser's session".to_owned(),
            code: Some("42501".to_owned())
        })
    );
    assert_eq!(conn.exited(&[slow]).await.unwrap(), vec![None]);
    tokio::time::advance(Duration::from_millis(30)).await;
    assert!(conn.exited(&[slow]).await.unwrap()[0].is_some());
    assert!(server.session(guarded).is_some());
}

#[tokio::test(start_paused = true)]
async fn one_leader_and_a_fence_on_its_actions() {
    let server = MemoryServer::new("db1", start());
    let connector = server.connector();
    let (mut lock, _) = connector.connect().await.unwrap();
    let (mut other, _) = connector.connect().await.unwrap();
    let (mut main, _) = connector.connect().await.unwrap();
    let leader = lock.try_lead().await.unwrap().unwrap();
    assert_eq!(server.leader(), Some(leader));
    assert_eq!(other.try_lead().await.unwrap(), None);
    lock.announce("curfew agent: enforcing policy sha256:0123456789ab")
        .await
        .unwrap();
    let holders = other.lock_holders().await.unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].pid, leader.pid);
    assert!(holders[0].own_role && holders[0].granted);
    assert_eq!(
        holders[0].application.as_deref(),
        Some("curfew agent: enforcing policy sha256:0123456789ab")
    );
    main.fence(Some(leader));
    let kim = server.login("kim", "app");
    // Another holder takes the lock: the fenced connection ends nothing.
    server.take_leadership(server.replica(None));
    assert!(!lock.still_leads().await.unwrap());
    let refused = end(&mut main, &[EndRequest::identity_only(kim)])
        .await
        .unwrap_err();
    assert!(refused.is_not_leading());
    assert!(server.session(kim).is_some());
    // Released, it can be taken; a dropped connection releases it.
    server.release_leadership();
    let again = other.try_lead().await.unwrap().unwrap();
    drop(other);
    assert_eq!(server.leader(), None);
    assert_ne!(again, leader);
}

#[tokio::test(start_paused = true)]
async fn scripted_failures_hit_the_calls_they_name() {
    let server = MemoryServer::new("db1", start());
    let connector = server.connector();
    server.lose_connection(Some(CallName::Connect), 1);
    let failed = connector.connect().await.unwrap_err();
    assert!(failed.is_connection_lost());
    let (mut conn, _) = connector.connect().await.unwrap();
    // Lost on the second snapshot: that connection stays lost.
    server.script(Some(CallName::Snapshot), 1, 1, Fault::ConnectionLost);
    conn.snapshot(false).await.unwrap();
    assert!(conn.snapshot(false).await.unwrap_err().is_connection_lost());
    assert!(conn.ping().await.unwrap_err().is_connection_lost());
    let (mut conn, _) = connector.connect().await.unwrap();
    conn.snapshot(false).await.unwrap();
    // Refusals keep their code: an error for most calls, each request's answer for ends.
    let code = Some("57P01".to_owned());
    server.script(
        Some(CallName::Ping),
        0,
        1,
        Fault::Refused { code: code.clone() },
    );
    let refused = conn.ping().await.unwrap_err();
    assert_eq!(refused.kind(), &ErrorKind::Refused { code: code.clone() });
    server.script(
        Some(CallName::SignalAll),
        0,
        1,
        Fault::Refused { code: code.clone() },
    );
    let kim = server.login("kim", "app");
    let answers = end(&mut conn, &[EndRequest::identity_only(kim)])
        .await
        .unwrap();
    assert!(matches!(
        &answers[..],
        [Signal::Settled(Outcome::Failed { code: c, .. })] if *c == code
    ));
    // Leadership lost at a chosen call.
    let (mut lock, _) = connector.connect().await.unwrap();
    let leader = lock.try_lead().await.unwrap();
    conn.fence(leader);
    server.lose_leadership_at(CallName::SignalAll, 2, server.replica(None));
    let first = end(&mut conn, &[EndRequest::identity_only(kim)]).await;
    assert!(matches!(first.unwrap()[..], [Signal::Signalled { .. }]));
    let lee = server.login("lee", "app");
    let second = end(&mut conn, &[EndRequest::identity_only(lee)]).await;
    assert!(second.unwrap_err().is_not_leading());
    assert!(server.session(lee).is_some());
    // Every call is in the log, with how it failed.
    let calls = server.calls();
    assert_eq!(calls.first().unwrap().request, Request::Connect);
    assert_eq!(
        calls.first().unwrap().failed,
        Some(ErrorKind::ConnectionLost)
    );
    let ends = server.calls_of(CallName::SignalAll);
    assert_eq!(ends.len(), 3);
    assert_eq!(ends[2].failed, Some(ErrorKind::NotLeading));
}

#[tokio::test(start_paused = true)]
async fn the_anchor_store_goes_forward_only() {
    let server = MemoryServer::new("db1", start());
    let (mut conn, _) = server.connector().connect().await.unwrap();
    conn.anchor("c1", 3, "h3").await.unwrap();
    let behind = conn.anchor("c1", 3, "h3").await.unwrap_err();
    assert_eq!(behind.kind(), &ErrorKind::Refused { code: None });
    conn.anchor("c1", 7, "h7").await.unwrap();
    let seqs: Vec<u64> = server.anchors().iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![3, 7]);
}

#[tokio::test(start_paused = true)]
async fn the_ledger_locks_logins_and_gives_them_back() {
    let server = MemoryServer::new("db1", start());
    let (mut conn, _) = server.connector().connect().await.unwrap();
    let kim = server.add_role("kim", false, &["humans"]);
    let lee = server.add_role("lee", false, &[]);
    assert!(!conn.ledger_has_work().await.unwrap());
    let id = server
        .lock_role(
            kim,
            "incident 7",
            "alice",
            Some(start() + SignedDuration::from_mins(5)),
        )
        .unwrap();
    assert!(conn.ledger_has_work().await.unwrap());
    let locked = conn.locked_roles().await.unwrap();
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].name, "kim");
    assert!(locked[0].can_login && !locked[0].disabled_by_curfew);
    assert_eq!(
        disable(&mut conn, kim, &no_hook).await.unwrap(),
        LoginChange::Disabled
    );
    assert!(!server.role(kim).unwrap().can_login);
    // Someone turns it back on: drift, corrected.
    server.set_can_login(kim, true);
    assert_eq!(
        disable(&mut conn, kim, &no_hook).await.unwrap(),
        LoginChange::DriftCorrected
    );
    assert_eq!(
        restore(&mut conn, kim, &no_hook).await.unwrap(),
        LoginChange::NotNeeded
    );
    // The creation is to be recorded once.
    let unannounced = conn.unannounced().await.unwrap();
    assert_eq!(unannounced.len(), 1);
    assert!(!unannounced[0].1);
    conn.mark_announced(id).await.unwrap();
    assert!(conn.unannounced().await.unwrap().is_empty());
    // It expires; then the login comes back and the release is to be recorded.
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(conn.expire_locks().await.unwrap(), 1);
    let released = conn.unannounced().await.unwrap();
    assert_eq!(released[0].0.released_by.as_deref(), Some("expired"));
    assert!(released[0].1);
    assert_eq!(
        restore(&mut conn, kim, &no_hook).await.unwrap(),
        LoginChange::Restored
    );
    assert!(server.role(kim).unwrap().can_login);
    // Window locks follow the rule's roles.
    let roles = vec![(kim, "kim".to_owned()), (lee, "lee".to_owned())];
    assert_eq!(
        conn.sync_window_locks("night", &roles, "night")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        conn.sync_window_locks("night", &roles[..1], "night")
            .await
            .unwrap(),
        1
    );
    assert_eq!(conn.release_window_locks_except(&[]).await.unwrap(), 1);
    assert!(conn.locked_roles().await.unwrap().is_empty());
    // A dropped role is gone from the ledger.
    server.drop_role(lee);
    assert_eq!(
        disable(&mut conn, lee, &no_hook).await.unwrap(),
        LoginChange::RoleGone
    );
}

#[tokio::test(start_paused = true)]
async fn ledger_changes_are_fenced() {
    let server = MemoryServer::new("db1", start());
    let connector = server.connector();
    let (mut lock, _) = connector.connect().await.unwrap();
    let (mut conn, _) = connector.connect().await.unwrap();
    conn.fence(lock.try_lead().await.unwrap());
    let kim = server.add_role("kim", false, &[]);
    server.lock_role(kim, "incident", "alice", None).unwrap();
    drop(lock);
    let refused = disable(&mut conn, kim, &no_hook).await.unwrap_err();
    assert!(refused.is_not_leading());
    assert!(server.role(kim).unwrap().can_login);
    // Reading is not fenced.
    assert_eq!(conn.locked_roles().await.unwrap().len(), 1);
}
