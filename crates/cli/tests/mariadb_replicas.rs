//! Two agent replicas on one MariaDB target (issue 18): exactly one leads (its `GET_LOCK`
//! leader lock), the other stands by and takes over when the leader dies; a session of another
//! account holding curfew's lock is reported, recorded and ended before an agent leads.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::maria::{alive, client};
use common::{agent, assert_audit_verifies, dir, events, lines_of, maria, signal, wait_for};
use curfew_sandbox::MariaDbServer;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// A MariaDB server with curfew's account (its password in `password_file`) and the client
/// accounts `kim` and `mallory`; a policy ending every account's sessions idle for 2 s (so the
/// agents' own connections, idle on curfew's account, must be left out).
fn setup(d: &Path) -> (MariaDbServer, std::path::PathBuf) {
    let password_file = d.join("maria.password");
    let server = maria::server_with(&password_file, &["kim", "mallory"]);
    let policy = d.join("curfew.toml");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"2s\"\n",
            server.url("curfew_agent", ""),
            password_file.display(),
        ),
    )
    .unwrap();
    (server, policy)
}

/// Whether the session, left idle for `limit`, was ended (asking earlier would end its
/// idleness).
async fn ended_within(conn: &mut Conn, limit: Duration) -> bool {
    tokio::time::sleep(limit).await;
    !alive(conn).await
}

/// The connection ids the audit log says were ended.
fn ended_ids(audit: &Path) -> Vec<i64> {
    curfew_audit::read(audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .map(|e| e.session.unwrap().pid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_leads_a_mariadb_target_and_the_other_takes_over_when_it_dies() {
    let d = dir("mariadb-replicas");
    let (server, policy) = setup(&d.0);
    let (audit_a, audit_b) = (d.0.join("a.jsonl"), d.0.join("b.jsonl"));

    let mut a = agent(&policy, &audit_a);
    let lines_a = lines_of(&mut a);
    let seen = wait_for(&lines_a, "this agent leads", Duration::from_secs(30));
    assert!(
        !seen.iter().any(|l| l.contains("leader lock yet")),
        "the old warning: {seen:?}"
    );
    let mut b = agent(&policy, &audit_b);
    let lines_b = lines_of(&mut b);
    // B reads A's announcement (no performance_schema needed) and stands by.
    wait_for(
        &lines_b,
        "another curfew agent leads",
        Duration::from_secs(30),
    );

    let mut first = client(&server, "kim").await;
    let first_id = i64::from(first.id());
    assert!(
        ended_within(&mut first, Duration::from_secs(8)).await,
        "the leader did not end the idle session: {:?}",
        lines_a.try_iter().collect::<Vec<_>>()
    );

    // The leader dies without a word; the other replica takes over.
    signal(&a, "KILL");
    let killed = Instant::now();
    a.wait().unwrap();
    wait_for(&lines_b, "this agent leads", Duration::from_secs(20));
    eprintln!("takeover after {:?}", killed.elapsed());

    let mut second = client(&server, "kim").await;
    let second_id = i64::from(second.id());
    assert!(
        ended_within(&mut second, Duration::from_secs(8)).await,
        "the new leader did not end the idle session"
    );
    signal(&b, "TERM");
    assert_eq!(b.wait().unwrap().code(), Some(0));

    // Each session was ended once, by the replica that led at the time.
    assert_eq!(ended_ids(&audit_a), [first_id]);
    assert_eq!(ended_ids(&audit_b), [second_id]);
    let events_b = events(&audit_b);
    let mut b_order: Vec<&str> = events_b
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("leader_") || *e == "termination_intent")
        .collect();
    b_order.dedup();
    assert_eq!(
        b_order,
        ["leader_acquired", "termination_intent", "leader_lost"],
        "{events_b:?}"
    );
    assert_audit_verifies(&audit_a);
    assert_audit_verifies(&audit_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_on_the_mariadb_leader_lock_is_reported_recorded_and_ended() {
    let d = dir("mariadb-squatter");
    let (server, policy) = setup(&d.0);
    let audit = d.0.join("audit.jsonl");
    let mut squatter = client(&server, "mallory").await;
    let got: Option<i64> = squatter
        .query_first("SELECT GET_LOCK('curfew_leader', 0)")
        .await
        .unwrap();
    assert_eq!(got, Some(1));

    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    let seen = wait_for(&lines, "this agent leads", Duration::from_secs(30));
    let report = seen
        .iter()
        .find(|l| l.contains("held curfew's leader lock"))
        .unwrap_or_else(|| panic!("the squatter was not reported: {seen:?}"));
    assert!(report.contains("role \"mallory\""), "{report}");
    assert!(seen.iter().any(|l| l.contains("ending it")), "{seen:?}");
    assert!(!alive(&mut squatter).await, "the squatter was not ended");
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let all = events(&audit);
    assert!(all.iter().any(|e| e == "leader_squatted"), "{all:?}");
    // Until it was gone, the target was reported as not enforced.
    let not_enforced = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "heartbeat")
        .any(|e| e.detail.unwrap()["state"] == "not_enforced");
    assert!(not_enforced, "{all:?}");
    assert_audit_verifies(&audit);
}
