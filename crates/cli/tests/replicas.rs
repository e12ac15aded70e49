//! Two agent replicas against one server: exactly one acts; when it is killed, the other takes
//! over; no session is ended twice; both audit logs verify.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;

use std::time::{Duration, Instant};

use common::{
    agent, assert_audit_verifies, cluster, dir, events, lines_of, policy_text, session, signal,
    wait_for,
};

/// The pid of each session the audit log says was ended.
fn ended_pids(audit: &Path) -> Vec<i64> {
    curfew_audit::read(audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .map(|e| e.session.unwrap().pid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_acts_and_the_other_takes_over_when_it_is_killed() {
    let cluster = cluster();
    let d = dir("replicas");
    let policy = d.0.join("curfew.toml");
    std::fs::write(
        &policy,
        policy_text(
            &cluster,
            "[[rule]]\nname = \"idle\"\nidle = \"2s\"\nroles = [\"kim\"]\n",
        ),
    )
    .unwrap();
    let (audit_a, audit_b) = (d.0.join("a.jsonl"), d.0.join("b.jsonl"));

    let mut a = agent(&policy, &audit_a);
    let lines_a = lines_of(&mut a);
    wait_for(&lines_a, "this agent leads", Duration::from_secs(20));
    let mut b = agent(&policy, &audit_b);
    let lines_b = lines_of(&mut b);
    wait_for(
        &lines_b,
        "another curfew agent leads",
        Duration::from_secs(20),
    );

    // The leader ends an idle session; the standby replica does nothing.
    let (_kim, first, first_ended) = session(&cluster, "kim").await;
    first_ended.recv_timeout(Duration::from_secs(10)).unwrap();
    wait_for(
        &lines_a,
        &format!("ended pid {first} "),
        Duration::from_secs(5),
    );

    // The leader dies without a word; the other replica takes over within about two
    // intervals (1 s each here; asserted loosely).
    signal(&a, "KILL");
    let killed = Instant::now();
    a.wait().unwrap();
    wait_for(&lines_b, "this agent leads", Duration::from_secs(20));
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?}");
    assert!(takeover < Duration::from_secs(10), "took {takeover:?}");

    let (_kim, second, second_ended) = session(&cluster, "kim").await;
    second_ended.recv_timeout(Duration::from_secs(10)).unwrap();
    wait_for(
        &lines_b,
        &format!("ended pid {second} "),
        Duration::from_secs(5),
    );
    signal(&b, "TERM");
    assert_eq!(b.wait().unwrap().code(), Some(0));

    // Each session was ended once, by the replica that led at the time.
    assert_eq!(ended_pids(&audit_a), [i64::from(first)]);
    assert_eq!(ended_pids(&audit_b), [i64::from(second)]);
    let (events_a, events_b) = (events(&audit_a), events(&audit_b));
    assert!(
        events_a.contains(&"leader_acquired".to_owned()),
        "{events_a:?}"
    );
    // B acted only between taking the lead and giving it up (an intent may repeat when the
    // server's clock had not reached the deadline yet).
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
    // B's heartbeats: it stood by (naming the leader), enforced, then stopped.
    let beats: Vec<(String, String)> = curfew_audit::read(&audit_b)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "heartbeat")
        .map(|e| {
            let detail = e.detail.unwrap();
            let text = |key: &str| detail[key].as_str().unwrap_or_default().to_owned();
            (text("state"), text("why"))
        })
        .collect();
    let mut states: Vec<&str> = beats.iter().map(|(s, _)| s.as_str()).collect();
    states.dedup();
    assert_eq!(states, ["standing_by", "enforcing", "stopped"], "{beats:?}");
    assert!(
        beats[0].1.contains("another curfew agent leads"),
        "{beats:?}"
    );
    assert_audit_verifies(&audit_a);
    assert_audit_verifies(&audit_b);
}
