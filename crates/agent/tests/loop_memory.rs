//! The worker loop against the in-memory backend on tokio's paused clock: deadlines, "not yet
//! due" answers, refusals and their backoff, a leadership lost between two ends, an audit log
//! that cannot be written, a statement that saves a session, a lost connection. Every
//! assertion is on the audit records and on the server's log of calls; no real time passes.

#![allow(clippy::unwrap_used)]

mod memory_loop;

use std::time::Duration;

use curfew_backend::memory::{CallName, MemoryServer, Request};
use curfew_backend::{Announcement, ErrorKind, IdleState, Outcome, Signal};
use jiff::SignedDuration;
use memory_loop::{
    Agent, about, at, ends_of, events, heartbeat_states, intent_and_outcome, not_yet_due, policy,
    records, run_until, start_time,
};

const IDLE_30S: &str =
    "[[rule]]\nname = \"idle\"\nidle = \"30s\"\nroles = [\"kim\", \"lee\", \"ann\"]\n";

#[tokio::test(start_paused = true)]
async fn a_session_is_ended_at_its_deadline_not_before() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    let agent = Agent::start(&server, policy("1m", IDLE_30S), "deadline").await;
    let deadline = at(30.0);

    run_until(&server, 29.9).await;
    assert!(server.session(kim).is_some(), "ended before its deadline");
    assert!(
        ends_of(&server, kim).is_empty(),
        "asked before its deadline"
    );

    run_until(&server, 31.0).await;
    assert!(server.session(kim).is_none(), "not ended at its deadline");
    let signalled = server.signalled();
    assert_eq!(signalled.len(), 1);
    let (key, when) = signalled[0];
    assert_eq!(key, kim);
    assert!(when >= deadline && when.duration_since(deadline) <= SignedDuration::from_millis(5));
    // The end request says what must still hold.
    let ends = server.calls_of(CallName::SignalAll);
    let Request::SignalAll { requests, .. } = &ends[0].request else {
        unreachable!()
    };
    assert_eq!(requests[0].session, kim);
    assert_eq!(requests[0].not_before, Some(deadline));
    assert_eq!(
        requests[0].idle_since,
        Some((IdleState::Idle, start_time()))
    );

    let records = agent.stop_verified().await;
    let (intent, outcome) = intent_and_outcome(&records, kim, "session_terminated");
    assert_eq!(intent.rule.as_deref(), Some("idle"));
    let detail = intent.detail.as_ref().unwrap();
    assert_eq!(detail["deadline"], deadline.to_string());
    assert_eq!(outcome.result.as_deref(), Some("ended"));
    assert_eq!(outcome.detail.as_ref().unwrap()["at"], when.to_string());
}

#[tokio::test(start_paused = true)]
async fn not_yet_due_answers_are_retried_until_the_deadline() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    let agent = Agent::start(&server, policy("1m", IDLE_30S), "not-yet-due").await;
    let deadline = at(30.0);
    // After the snapshot, the server's clock falls 20 ms behind the agent's estimate of it.
    run_until(&server, 5.0).await;
    server.set_skew(SignedDuration::from_millis(-20));

    tokio::time::sleep(Duration::from_secs(26)).await;
    let ends = ends_of(&server, kim);
    let (early, last) = ends.split_at(ends.len() - 1);
    assert!(!early.is_empty(), "the server never said \"not yet due\"");
    for (when, answer) in early {
        assert!(not_yet_due(answer), "{answer:?}");
        assert!(*when < deadline);
    }
    // Retried a few milliseconds apart, not at the next snapshot.
    assert!(early.len() <= 20, "{} attempts", early.len());
    let (when, answer) = &last[0];
    assert!(
        matches!(answer, Some(Signal::Signalled { .. })),
        "{answer:?}"
    );
    assert!(*when >= deadline && when.duration_since(deadline) <= SignedDuration::from_millis(5));
    assert!(server.session(kim).is_none());

    let records = agent.stop_verified().await;
    let skipped = about(&records, "termination_skipped", kim);
    assert_eq!(skipped.len(), early.len());
    for record in skipped {
        assert_eq!(record.result.as_deref(), Some("not_yet_due"));
        assert!(record.intent.is_some());
    }
    intent_and_outcome(&records, kim, "session_terminated");
}

#[tokio::test(start_paused = true)]
async fn a_refused_end_is_retried_with_backoff_and_each_failure_recorded() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    // The server refuses the first three ends, with its code.
    let code = Some("53300".to_owned());
    server.script(
        Some(CallName::SignalAll),
        0,
        3,
        curfew_backend::memory::Fault::Refused { code: code.clone() },
    );
    let agent = Agent::start(&server, policy("10s", IDLE_30S), "backoff").await;

    run_until(&server, 90.0).await;
    let ends = ends_of(&server, kim);
    assert_eq!(ends.len(), 4, "{ends:?}");
    for (_, answer) in &ends[..3] {
        assert!(
            matches!(answer, Some(Signal::Settled(Outcome::Failed { code: c, .. })) if *c == code),
            "{answer:?}"
        );
    }
    assert!(matches!(ends[3].1, Some(Signal::Signalled { .. })));
    // The first at the deadline, then 2 s, 4 s, 8 s apart: never a tight loop.
    assert!(ends[0].0 >= at(30.0) && ends[0].0 < at(30.1));
    for (i, pause) in [2, 4, 8].into_iter().enumerate() {
        let gap = ends[i + 1].0.duration_since(ends[i].0);
        assert!(
            gap >= SignedDuration::from_secs(pause) && gap < SignedDuration::from_secs(pause + 1),
            "attempt {} came {gap:#} after the one before",
            i + 2
        );
    }
    assert!(server.session(kim).is_none());

    let records = agent.stop_verified().await;
    let failed = about(&records, "termination_failed", kim);
    assert_eq!(failed.len(), 3);
    let intents = about(&records, "termination_intent", kim);
    assert_eq!(intents.len(), 4);
    for (record, intent) in failed.iter().zip(&intents) {
        assert_eq!(record.result.as_deref(), Some("failed"));
        assert_eq!(record.intent, Some(intent.seq));
        let error = record.detail.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(error.contains("refused"), "{error}");
    }
    intent_and_outcome(&records, kim, "session_terminated");
}

#[tokio::test(start_paused = true)]
async fn a_leadership_lost_between_two_ends_ends_nothing_more() {
    let server = MemoryServer::new("db1", start_time());
    // Three sessions whose deadlines fall one second apart: three ends of one schedule.
    let kim = server.login("kim", "app");
    tokio::time::advance(Duration::from_secs(1)).await;
    let lee = server.login("lee", "app");
    tokio::time::advance(Duration::from_secs(1)).await;
    let ann = server.login("ann", "app");
    let loaded = policy("1m", IDLE_30S);
    // Another replica enforcing this very policy takes the lock just before the second end.
    let replica = server.replica(Some(&Announcement::text(false, &loaded.sha256)));
    server.lose_leadership_at(CallName::SignalAll, 2, replica);
    let agent = Agent::start(&server, loaded, "leadership").await;

    run_until(&server, 120.0).await;
    assert!(server.session(kim).is_none());
    assert!(server.session(lee).is_some() && server.session(ann).is_some());
    let ends = server.calls_of(CallName::SignalAll);
    assert_eq!(
        ends.len(),
        2,
        "an end was asked after the leadership was lost"
    );
    assert_eq!(ends[1].failed, Some(ErrorKind::NotLeading));
    assert!(ends_of(&server, ann).is_empty());
    // It stands by behind the replica: it asks for the lock, and nothing else.
    let after: Vec<_> = server
        .calls()
        .into_iter()
        .filter(|c| c.at > ends[1].at)
        .map(|c| c.request.name())
        .collect();
    assert!(after.contains(&CallName::TryLead));
    assert!(!after.contains(&CallName::SignalAll) && !after.contains(&CallName::Snapshot));

    let records = agent.stop_verified().await;
    intent_and_outcome(&records, kim, "session_terminated");
    let (_, lost) = intent_and_outcome(&records, lee, "termination_failed");
    let error = lost.detail.as_ref().unwrap()["error"].as_str().unwrap();
    assert!(error.contains("nothing was signalled"), "{error}");
    assert!(about(&records, "termination_intent", ann).is_empty());
    assert_eq!(events(&records, "leader_lost").len(), 1);
    let states = heartbeat_states(&records);
    let stepped_down = states.iter().position(|s| s == "not_enforced").unwrap();
    assert!(
        states[stepped_down..].iter().any(|s| s == "standing_by"),
        "{states:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_ended_while_the_audit_log_cannot_be_written() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    let mut agent = Agent::start(&server, policy("1m", IDLE_30S), "audit").await;
    // After the first round, the log is moved away: the agent may not write into it any more.
    run_until(&server, 5.0).await;
    let moved = agent.audit_path.with_extension("moved");
    std::fs::rename(&agent.audit_path, &moved).unwrap();

    run_until(&server, 150.0).await;
    assert!(server.session(kim).is_some());
    assert!(
        server.calls_of(CallName::SignalAll).is_empty(),
        "an end request reached the server"
    );
    // It stepped down: no snapshot after the first minute's round found the log unusable.
    assert!(
        server
            .calls_of(CallName::Snapshot)
            .iter()
            .all(|c| c.at < at(61.0))
    );
    agent.stop().await;
    let records = records(&moved);
    assert!(about(&records, "termination_intent", kim).is_empty());
    assert!(!events(&records, "leader_acquired").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_statement_just_before_the_deadline_saves_the_session() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    let agent = Agent::start(&server, policy("10s", IDLE_30S), "statement").await;

    run_until(&server, 29.5).await;
    server.statement(kim);
    run_until(&server, 45.0).await;
    assert!(server.session(kim).is_some(), "ended after its statement");
    let ends = ends_of(&server, kim);
    assert_eq!(ends.len(), 1);
    assert!(
        matches!(
            ends[0].1,
            Some(Signal::Settled(Outcome::NoLongerMatched { .. }))
        ),
        "{ends:?}"
    );
    // Idle again since the statement: ended 30 s after it.
    run_until(&server, 70.0).await;
    assert!(server.session(kim).is_none());
    let (_, when) = server.signalled()[0];
    assert!(when >= at(59.5) && when < at(59.6), "ended at {when}");

    let records = agent.stop_verified().await;
    let (_, skipped) = intent_and_outcome(&records, kim, "termination_skipped");
    assert_eq!(skipped.result.as_deref(), Some("no_longer_matched"));
    let (intent, _) = intent_and_outcome(&records, kim, "session_terminated");
    assert_eq!(
        intent.detail.as_ref().unwrap()["deadline"],
        at(59.5).to_string()
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_reconnected_and_the_deadline_still_met() {
    let server = MemoryServer::new("db1", start_time());
    let kim = server.login("kim", "app");
    // The second snapshot (at 10 s) loses the connection.
    server.script(
        Some(CallName::Snapshot),
        1,
        1,
        curfew_backend::memory::Fault::ConnectionLost,
    );
    let agent = Agent::start(&server, policy("10s", IDLE_30S), "reconnect").await;

    run_until(&server, 40.0).await;
    let snapshots = server.calls_of(CallName::Snapshot);
    assert_eq!(snapshots[1].failed, Some(ErrorKind::ConnectionLost));
    // A new main connection and a new lock connection, the leadership taken again.
    let connects = server.calls_of(CallName::Connect);
    assert_eq!(connects.len(), 4, "{connects:?}");
    assert!(connects[2].at > snapshots[1].at && connects[2].at < at(12.0));
    assert!(
        snapshots[2..]
            .iter()
            .all(|c| c.connection == connects[2].connection)
    );
    let (_, when) = server.signalled()[0];
    assert!(when >= at(30.0) && when.duration_since(at(30.0)) <= SignedDuration::from_millis(5));

    let records = agent.stop_verified().await;
    let states = heartbeat_states(&records);
    assert!(states.iter().any(|s| s == "unreachable"), "{states:?}");
    let acquired = events(&records, "leader_acquired");
    let lost = events(&records, "leader_lost");
    // Lost with the connection, taken again, given up at the stop.
    assert_eq!((acquired.len(), lost.len()), (2, 2));
    assert!(acquired[0].seq < lost[0].seq && lost[0].seq < acquired[1].seq);
    let why = lost[0].reason.as_deref().unwrap();
    assert!(why.contains("connection"), "{why}");
    intent_and_outcome(&records, kim, "session_terminated");
}

#[tokio::test(start_paused = true)]
async fn an_incident_lock_turns_the_login_off_and_ends_the_role_s_sessions() {
    let server = MemoryServer::new("db1", start_time());
    let role = server.add_role("kim", false, &[]);
    let kim = server.login("kim", "app");
    let lock = server.lock_role(role, "incident 7", "alice", None).unwrap();
    let agent = Agent::start(&server, policy("10s", IDLE_30S), "lock").await;

    run_until(&server, 1.0).await;
    assert!(!server.role(role).unwrap().can_login);
    assert!(
        server.session(kim).is_none(),
        "a locked role's session lives on"
    );
    // Released: its login comes back at the next round.
    server.release_lock(lock, "bob");
    run_until(&server, 12.0).await;
    assert!(server.role(role).unwrap().can_login);

    let records = agent.stop_verified().await;
    let (intent, _) = intent_and_outcome(&records, kim, "session_terminated");
    assert_eq!(intent.rule.as_deref(), Some("login-lock"));
    for event in [
        "lock_created",
        "login_locked",
        "lock_released",
        "login_restored",
    ] {
        assert_eq!(events(&records, event).len(), 1, "{event}");
    }
    let changes = events(&records, "login_change_intent");
    let locked = events(&records, "login_locked")[0];
    let restored = events(&records, "login_restored")[0];
    assert_eq!(changes.len(), 2);
    assert_eq!(locked.intent, Some(changes[0].seq));
    assert_eq!(restored.intent, Some(changes[1].seq));
}

#[tokio::test(start_paused = true)]
async fn a_squatter_on_the_leader_lock_is_ended_and_the_lock_taken() {
    let server = MemoryServer::new("db1", start_time());
    let squatter = server.login("mallory", "app");
    server.take_leadership(curfew_backend::LockHolder {
        pid: squatter.pid,
        client_addr: None,
        backend_start: Some(squatter.backend_start),
        database: Some("app".to_owned()),
        application: Some("psql".to_owned()),
        role: Some("mallory".to_owned()),
        own_role: false,
        granted: true,
    });
    let agent = Agent::start(&server, policy("10s", IDLE_30S), "squatter").await;

    run_until(&server, 1.0).await;
    assert!(server.session(squatter).is_none());
    let leader = server.leader().unwrap();
    assert_ne!(leader, squatter);
    let ends = ends_of(&server, squatter);
    assert_eq!(ends.len(), 1);
    assert!(matches!(ends[0].1, Some(Signal::Signalled { .. })));

    let records = agent.stop_verified().await;
    let (intent, _) = intent_and_outcome(&records, squatter, "leader_squatted");
    assert_eq!(intent.rule.as_deref(), Some("leader-lock"));
    let acquired = events(&records, "leader_acquired");
    assert_eq!(acquired.len(), 1);
    assert_eq!(
        acquired[0].detail.as_ref().unwrap()["lock_session_pid"],
        leader.pid
    );
}
