//! The `GET_LOCK` leader lock on a real MariaDB: one connection leads, another sees it (with
//! its announcement) and takes over when it dies; kills are fenced on the leader; a session of
//! another account holding the lock or an announcement lock is listed as a squatter, keeps
//! curfew from leading, and can be ended on the lock connection.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::time::{Duration, Instant};

use curfew_audit::{AuditLog, Intent, Termination};
use curfew_backend::{
    Announcement, Coordination, EndRequest, ErrorKind, SessionEnder, SessionReader, Signal,
};
use curfew_mysql::Connection;
use curfew_sandbox::MariaDbOptions;
use curfew_testkit::TempDir;
use fixture::{AGENT, Fixture, alive};
use jiff::Timestamp;
use mysql_async::prelude::Queryable;

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567";

/// Take the lock on `c`, waiting for a dead leader's session to go.
async fn lead_within(c: &mut Connection, wait: Duration) -> curfew_policy::SessionKey {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(key) = Coordination::try_lead(c).await.unwrap() {
            return key;
        }
        assert!(Instant::now() < deadline, "the lock was not free in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An audit log in a directory of its own, removed when the returned `TempDir` is dropped.
fn intent_log(name: &str) -> (TempDir, AuditLog) {
    let dir = TempDir::new("mysql", name);
    let log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
    (dir, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_leads_announces_and_another_takes_over_when_it_dies() {
    let f = Fixture::start(MariaDbOptions {
        // Readers must not need it.
        performance_schema: false,
        ..MariaDbOptions::default()
    });
    let mut a = f.curfew().await;
    let mut b = f.curfew().await;
    let a_key = Coordination::try_lead(&mut a).await.unwrap().unwrap();
    assert_eq!(a_key.pid, i64::try_from(a.info().connection_id).unwrap());
    // Taken again by its holder: still one hold.
    assert_eq!(Coordination::try_lead(&mut a).await.unwrap(), Some(a_key));
    assert_eq!(Coordination::try_lead(&mut b).await.unwrap(), None);
    assert!(Coordination::still_leads(&mut a).await.unwrap());
    assert!(!Coordination::still_leads(&mut b).await.unwrap());

    let holders = Coordination::lock_holders(&mut b).await.unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert!(holders[0].granted && holders[0].own_role, "{holders:?}");
    assert_eq!(holders[0].pid, a_key.pid);
    assert_eq!(holders[0].role.as_deref(), Some(AGENT));
    assert_eq!(holders[0].application, None, "nothing announced yet");

    for text in [
        Announcement::text(true, SHA),
        Announcement::text(false, SHA),
    ] {
        Coordination::announce(&mut a, &text).await.unwrap();
        let holders = Coordination::lock_holders(&mut b).await.unwrap();
        assert_eq!(holders.len(), 1, "{holders:?}");
        assert_eq!(holders[0].application.as_deref(), Some(text.as_str()));
    }
    assert!(Coordination::lock_holders(&mut a).await.unwrap().is_empty());

    // The leader's connection dies: its locks go with it and the other one leads.
    f.server
        .admin_sql(&format!("KILL CONNECTION {}", a.info().connection_id))
        .unwrap();
    let b_key = lead_within(&mut b, Duration::from_secs(10)).await;
    assert_eq!(b_key.pid, i64::try_from(b.info().connection_id).unwrap());
    assert!(Coordination::still_leads(&mut b).await.unwrap());
    let mut c = f.curfew().await;
    let holders = Coordination::lock_holders(&mut c).await.unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0].pid, b_key.pid);
    assert_eq!(
        holders[0].application, None,
        "the dead leader's announcement went with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_are_fenced_on_the_leader_s_lock() {
    let f = Fixture::start(MariaDbOptions::default());
    let mut lock = f.curfew().await;
    let mut main = f.curfew().await;
    let key = Coordination::try_lead(&mut lock).await.unwrap().unwrap();
    Coordination::fence(&mut main, Some(key));
    let (_dir, log) = intent_log("fence");
    let token = log
        .intend(Intent::<Termination>::new(Timestamp::now(), "m", None))
        .unwrap();

    // While the lock is held, a kill goes through.
    let mut first = f.client("app", "x").await;
    let snapshot = SessionReader::snapshot(&mut main, false).await.unwrap();
    let s = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(first.id()))
        .unwrap();
    let signals = main
        .signal_all(&[token.authorize(EndRequest::identity_only(s.key()))])
        .await
        .unwrap();
    assert!(
        matches!(signals[0], Signal::Signalled { .. }),
        "{signals:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!alive(&mut first).await);

    // The leader's lock connection dies: the next kill is refused by the server as not leading,
    // and the session lives.
    f.server
        .admin_sql(&format!("KILL CONNECTION {}", lock.info().connection_id))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = f.client("app", "x").await;
    let snapshot = SessionReader::snapshot(&mut main, false).await.unwrap();
    let s = snapshot
        .sessions
        .iter()
        .find(|s| s.pid == i64::from(second.id()))
        .unwrap();
    let e = main
        .signal_all(&[token.authorize(EndRequest::identity_only(s.key()))])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::NotLeading, "{e}");
    assert!(
        alive(&mut second).await,
        "a fenced-off kill ended the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_of_another_account_is_listed_keeps_curfew_out_and_can_be_ended() {
    let f = Fixture::start(MariaDbOptions::default());
    let mut lock = f.curfew().await;
    for name in ["curfew_leader", "curfew_leader:sha256:05"] {
        let mut squatter = f.client("app", "psql").await;
        let got: Option<i64> = squatter
            .query_first(format!("SELECT GET_LOCK('{name}', 0)"))
            .await
            .unwrap();
        assert_eq!(got, Some(1));
        assert_eq!(
            Coordination::try_lead(&mut lock).await.unwrap(),
            None,
            "{name}"
        );
        let holders = Coordination::lock_holders(&mut lock).await.unwrap();
        assert_eq!(holders.len(), 1, "{holders:?}");
        let h = &holders[0];
        assert!(!h.own_role, "{h:?}");
        assert_eq!(h.role.as_deref(), Some("app"));
        assert_eq!(h.pid, i64::from(squatter.id()));
        assert_eq!(h.granted, name == "curfew_leader");
        assert!(h.describe().contains("role \"app\""), "{}", h.describe());
        // Ended on the lock connection, as the agent evicts a squatter.
        let (_dir, log) = intent_log("squat");
        let token = log
            .intend(Intent::<Termination>::new(Timestamp::now(), "m", None))
            .unwrap();
        let request = EndRequest::identity_only(curfew_policy::SessionKey {
            pid: h.pid,
            backend_start: h.backend_start.unwrap(),
        });
        let signals = lock
            .signal_all(&[token.authorize(request.clone())])
            .await
            .unwrap();
        assert!(
            matches!(signals[0], Signal::Signalled { .. }),
            "{signals:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock.exited(&[request.session]).await.unwrap()[0].is_none() {
            assert!(Instant::now() < deadline, "the squatter is still there");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!alive(&mut squatter).await);
        let _ = lead_within(&mut lock, Duration::from_secs(5)).await;
        // Give the lock back for the next round: its connection ends, a new one starts.
        f.server
            .admin_sql(&format!("KILL CONNECTION {}", lock.info().connection_id))
            .unwrap();
        lock = f.curfew().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
