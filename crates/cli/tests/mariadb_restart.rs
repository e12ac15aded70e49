//! A MariaDB server restarted under the running agent (issue 18): connection ids start again,
//! so a plan made before the restart must end nothing after it, not even a new session that
//! got the same id for the same account; and enforcement resumes on its own.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::maria::{alive, client};
use common::{agent, assert_audit_verifies, dir, lines_of, maria, signal, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_before_a_restart_ends_nothing_after_it_and_enforcement_resumes() {
    let d = dir("mariadb-restart");
    let password_file = d.0.join("maria.password");
    let mut server = maria::server_with(&password_file, &["kim", "filler"]);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"6s\"\nroles = [\"kim\"]\n",
            server.url("curfew_agent", ""),
            password_file.display(),
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    wait_for(&lines, "this agent leads", Duration::from_secs(30));

    // Push the ids up, so that after the restart our clients can take the victim's id before
    // the agent's reconnections do.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        fillers.push(client(&server, "filler").await);
    }
    let victim = client(&server, "kim").await;
    let victim_id = victim.id();
    // The agent plans to end it 6 s from now; the server restarts 1 s in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(fillers);
    drop(victim);
    server.restart().unwrap();
    let restarted = Instant::now();
    let restarted_wall = jiff::Timestamp::now();

    // A new session of the same account with the same id, idle from now on.
    let mut extras = Vec::new();
    let mut reused = loop {
        let c = client(&server, "kim").await;
        match c.id().cmp(&victim_id) {
            std::cmp::Ordering::Less => extras.push(c),
            std::cmp::Ordering::Equal => break c,
            std::cmp::Ordering::Greater => panic!(
                "id {victim_id} was taken by another connection (the agent's?) before the test's; got {}",
                c.id()
            ),
        }
    };
    for c in extras {
        c.disconnect().await.unwrap();
    }
    let reused_at = Instant::now();
    eprintln!(
        "id {victim_id} reused {:?} after the restart",
        reused_at - restarted
    );
    let resumed = wait_for(&lines, "this agent leads", Duration::from_secs(30));
    // Past the old plan's deadline (and the agent back), the new session is still there: it has
    // been idle for less than its 6 s.
    let stale_deadline_passed = reused_at + Duration::from_secs(5);
    tokio::time::sleep_until(stale_deadline_passed.into()).await;
    assert!(
        reused_at.elapsed() < Duration::from_secs(6),
        "too slow to tell a stale plan from the session's own deadline"
    );
    // Asking now would reset its idleness: look at the audit log instead.
    let ended_before: Vec<curfew_audit::Entry> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .collect();
    assert!(
        ended_before.is_empty(),
        "a session was ended by a stale plan: {ended_before:?} (log: {resumed:?})"
    );

    // Enforcement resumed: the new session is ended after its own 6 s idle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !alive(&mut reused).await,
        "enforcement did not resume after the restart"
    );
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let ended: Vec<curfew_audit::Entry> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(
        ended[0].session.as_ref().unwrap().pid,
        i64::from(victim_id),
        "the new session with the reused id, ended on its own deadline"
    );
    let started = ended[0].session.as_ref().unwrap().backend_start;
    assert!(
        started >= restarted_wall - jiff::SignedDuration::from_secs(2),
        "the record names a session from before the restart: {started}"
    );
    assert_audit_verifies(&audit);
}
