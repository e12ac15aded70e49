//! Nobody can switch curfew off (issue 13): not a login role taking curfew's leader lock, not a
//! session curfew may not end, not a dropped role, not a dry run or a replica on another policy
//! started first. Each test ends ordinary idle sessions on time despite the obstacle.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "agent_common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use curfew_agent::{AgentEvent, AgentOptions};
use curfew_postgres::LEADER_KEY;

const IDLE_KIM: &str = "[[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n";

/// The `event` of every record in an audit log, in order.
fn events(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count(records: &[serde_json::Value], event: &str) -> usize {
    records.iter().filter(|r| r["event"] == event).count()
}

/// A login role with no privilege at all, as an attacker would have.
fn with_mallory(cluster: &curfew_sandbox::Cluster) {
    cluster
        .psql("CREATE ROLE mallory LOGIN; CREATE DATABASE other;")
        .unwrap();
}

/// Wait for `client` to be ended by the agent within `limit`.
async fn ended(client: &mut Client, limit: Duration, what: &str) {
    assert!(
        client.ended_within(limit).await.is_some(),
        "{what} was not ended within {limit:?}"
    );
}

/// Regression (issue 13, item 1): an unprivileged role that took curfew's advisory lock first
/// kept every agent standing by forever, and nobody ended its own idle session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_on_the_leader_lock_is_ended_and_enforcement_goes_on() {
    let cluster = cluster();
    with_mallory(&cluster);
    let dir = scratch("squatter");
    // Before the agent starts: exclusive in curfew's database, shared in another one, with the
    // leader's announcement as its application name.
    let mut squatter = connect(
        &cluster,
        "mallory",
        "curfew agent: enforcing policy sha256:000000000000",
    )
    .await;
    squatter
        .client
        .query("SELECT pg_advisory_lock($1)", &[&LEADER_KEY])
        .await
        .unwrap();
    let url = format!(
        "host=127.0.0.1 port={} user=mallory dbname=other",
        cluster.port()
    );
    let (elsewhere, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let elsewhere_driver = tokio::spawn(connection);
    elsewhere
        .query("SELECT pg_advisory_lock_shared($1)", &[&LEADER_KEY])
        .await
        .unwrap();
    // And one queued behind the first: it would get the lock the moment the first is ended.
    let mut queued = connect(&cluster, "mallory", "psql").await;
    let waiting = queued.client.clone();
    let wait = tokio::spawn(async move {
        waiting
            .query("SELECT pg_advisory_lock($1)", &[&LEADER_KEY])
            .await
    });
    let start = std::time::Instant::now();
    while cluster
        .psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        .unwrap()
        == "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the second squatter never queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut kim = connect(&cluster, "kim", "psql").await;

    let agent = Agent::start(policy(&cluster, IDLE_KIM), &dir).await;
    ended(
        &mut squatter,
        Duration::from_secs(5),
        "the squatter's session",
    )
    .await;
    ended(
        &mut queued,
        Duration::from_secs(5),
        "the queued squatter's session",
    )
    .await;
    assert!(
        wait.await.unwrap().is_err(),
        "the queued squatter got the lock"
    );
    ended(&mut kim, Duration::from_secs(5), "kim's idle session").await;
    assert!(elsewhere_driver.await.is_ok(), "the second squatter ended");
    let records = events(&agent.audit_path);
    assert!(count(&records, "leader_squatted") >= 3, "{records:#?}");
    let squatted: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "leader_squatted")
        .collect();
    assert!(
        squatted.iter().all(|r| r["result"] == "ended"
            && r["session"]["role"] == "mallory"
            && r["intent"].is_u64()),
        "{squatted:#?}"
    );

    // After the agent leads: a squatter takes the lock in another database, then the agent
    // loses its own lock session (as on a network blip). It must take the lead back at once.
    let (late, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let late_driver = tokio::spawn(connection);
    late.query("SELECT pg_advisory_lock($1)", &[&LEADER_KEY])
        .await
        .unwrap();
    cluster
        .psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND objid = {} AND database =
                   (SELECT oid FROM pg_database WHERE datname = 'postgres')",
            LEADER_KEY & 0xffff_ffff
        ))
        .unwrap();
    let mut kim = connect(&cluster, "kim", "psql").await;
    ended(&mut kim, Duration::from_secs(6), "kim's next idle session").await;
    assert!(late_driver.await.is_ok(), "the late squatter ended");
    let verification = agent.stop().await;
    assert!(verification.is_intact());
    assert!(count(&events(&dir.join("audit.jsonl")), "leader_squatted") >= 4);
}

/// Regression (issue 13, item 3): one idle superuser session in a batch made the statement fail
/// "must be a superuser" for every session in it, and none was ever ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_superuser_session_does_not_shield_the_others() {
    let cluster = cluster();
    let dir = scratch("superuser-batch");
    let root = connect(&cluster, "postgres", "psql").await;
    let mut others = vec![
        connect(&cluster, "kim", "psql").await,
        connect(&cluster, "lee", "psql").await,
        connect(&cluster, "appuser", "psql").await,
    ];
    // All four idle since about now: due in the same batch.
    let policy = policy(&cluster, "[[rule]]\nname = \"idle\"\nidle = \"2s\"\n");
    let mut agent = Agent::start(policy, &dir).await;
    for session in &mut others {
        ended(session, Duration::from_secs(6), "an ordinary idle session").await;
    }
    let failed = agent
        .next(Duration::from_secs(5), |e| match e {
            AgentEvent::TerminationFailed { session, error, .. }
                if session.pid == i64::from(root.pid) =>
            {
                Some(error.clone())
            }
            _ => None,
        })
        .await;
    // The refusal may have been reported before the events were read; the log has it.
    let records = events(&agent.audit_path);
    let recorded = records.iter().any(|r| {
        r["event"] == "termination_failed"
            && r["session"]["pid"] == root.pid
            && r["reason"]
                .as_str()
                .is_some_and(|t| t.contains("superuser"))
    });
    assert!(
        recorded || failed.is_some_and(|e| e.contains("superuser")),
        "{records:#?}"
    );
    agent.stop().await;
}

/// Regression (issue 13, item 7): a role dropped while its session lived on made the snapshot
/// decoder panic; the worker died and nothing restarted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_role_with_a_session_does_not_stop_enforcement() {
    let cluster = cluster();
    cluster.psql("CREATE ROLE doomed LOGIN").unwrap();
    let dir = scratch("dropped-role");
    let mut agent = Agent::start(policy(&cluster, IDLE_KIM), &dir).await;
    agent.ready().await;
    let _doomed = connect(&cluster, "doomed", "psql").await;
    cluster.psql("DROP ROLE doomed").unwrap();
    for _ in 0..2 {
        let mut kim = connect(&cluster, "kim", "psql").await;
        ended(&mut kim, Duration::from_secs(5), "kim's idle session").await;
    }
    let records = events(&agent.audit_path);
    assert_eq!(count(&records, "worker_failed"), 0, "{records:#?}");
    agent.stop().await;
}

/// Regression (issue 13, item 4): a dry-run agent, or a replica on another policy, that started
/// first held the leadership while an enforcing agent stood by, reporting healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_started_first_does_not_keep_an_enforcing_agent_out() {
    let cluster = cluster();
    let (dry_dir, dir) = (scratch("dry-first"), scratch("enforcing-second"));
    let dry_options = AgentOptions {
        dry_run: true,
        ..AgentOptions::default()
    };
    let mut dry = Agent::start_with(policy(&cluster, IDLE_KIM), &dry_dir, dry_options).await;
    dry.ready().await;
    let agent = Agent::start(policy(&cluster, IDLE_KIM), &dir).await;
    let mut kim = connect(&cluster, "kim", "psql").await;
    ended(&mut kim, Duration::from_secs(5), "kim's idle session").await;
    let dry_records = events(&dry.audit_path);
    assert_eq!(
        count(&dry_records, "leader_acquired"),
        0,
        "{dry_records:#?}"
    );
    assert!(count(&events(&agent.audit_path), "leader_acquired") >= 1);
    agent.stop().await;
    dry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_on_another_policy_is_reported_as_not_enforcing_this_one() {
    let cluster = cluster();
    let (first_dir, dir) = (scratch("other-policy-first"), scratch("this-policy-second"));
    // The first replica ends kim's idle sessions too, under a policy that differs otherwise.
    let other = policy(
        &cluster,
        &format!("{IDLE_KIM}\n[[rule]]\nname = \"lifetime\"\nlifetime = \"12h\"\n"),
    );
    let mut first = Agent::start(other, &first_dir).await;
    first.ready().await;
    let mut agent = Agent::start(policy(&cluster, IDLE_KIM), &dir).await;
    let problem = agent
        .next(Duration::from_secs(10), |e| match e {
            AgentEvent::Enforcement {
                problem: Some(p), ..
            } => Some(p.clone()),
            _ => None,
        })
        .await
        .expect("the second agent did not report the target as not enforced");
    assert!(problem.contains("another policy"), "{problem}");
    let mut kim = connect(&cluster, "kim", "psql").await;
    ended(&mut kim, Duration::from_secs(5), "kim's idle session").await;
    // Once the other replica stops, this one leads and says the problem is gone.
    first.stop().await;
    agent
        .next(Duration::from_secs(10), |e| {
            matches!(e, AgentEvent::Enforcement { problem: None, .. }).then_some(())
        })
        .await
        .expect("the second agent did not take over");
    let mut kim = connect(&cluster, "kim", "psql").await;
    ended(&mut kim, Duration::from_secs(5), "kim's next idle session").await;
    agent.stop().await;
}

/// Regression (issue 13, item 4): an agent whose audit log broke kept the leadership, doing
/// nothing, while a healthy agent stood by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_cannot_record_gives_the_lead_to_one_that_can() {
    let cluster = cluster();
    let (broken_dir, dir) = (scratch("broken-audit-first"), scratch("healthy-second"));
    let mut broken = Agent::start(policy(&cluster, IDLE_KIM), &broken_dir).await;
    broken.ready().await;
    // Deleted under the agent: nothing it does could be recorded any more.
    std::fs::remove_file(&broken.audit_path).unwrap();
    let agent = Agent::start(policy(&cluster, IDLE_KIM), &dir).await;
    let mut kim = connect(&cluster, "kim", "psql").await;
    ended(&mut kim, Duration::from_secs(6), "kim's idle session").await;
    let path = agent.audit_path.clone();
    agent.stop().await;
    let records = events(&path);
    assert_eq!(count(&records, "leader_acquired"), 1, "{records:#?}");
    assert_eq!(count(&records, "session_terminated"), 1, "{records:#?}");
    // The broken agent's log is gone; stop it without verifying it.
    drop(broken);
}

/// Regression (issue 13, item 12): a target that accepts the TCP connection and never answers
/// hung its worker without a log line (the socket's connect timeout does not cover the startup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_accepts_and_never_answers_is_reported_and_retried() {
    let cluster = cluster();
    let dir = scratch("silent-target");
    // The kernel completes the handshake for a listening socket nobody accepts from.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let text = format!(
        "[[target]]\nname = \"silent\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{port}/postgres?sslmode=disable&connect_timeout=1\"\n\n{IDLE_KIM}"
    );
    let started = std::time::Instant::now();
    let mut agent = Agent::start(policy(&cluster, &text), &dir).await;
    let error = agent
        .next(Duration::from_secs(10), |e| match e {
            AgentEvent::Disconnected { target, error, .. } if target == "silent" => {
                Some(error.clone())
            }
            _ => None,
        })
        .await
        .expect("the silent target was never reported");
    assert!(error.contains("no answer within 2s"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // The healthy target is enforced meanwhile.
    let mut kim = connect(&cluster, "kim", "psql").await;
    ended(&mut kim, Duration::from_secs(5), "kim's idle session").await;
    agent.stop().await;
    drop(silent);
}
