//! The agent keeps enforcing through server restarts, unreachable targets and policy reloads,
//! and ends sessions close to their deadlines.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "agent_common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use curfew_agent::AgentEvent;
use curfew_policy::LoadedPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reconnects_after_the_server_restarts() {
    let mut cluster = cluster();
    let dir = scratch("restart");
    let policy = policy(
        &cluster,
        "[[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n",
    );
    let mut agent = Agent::start(policy, &dir).await;
    agent.ready().await;

    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    agent
        .next(Duration::from_secs(10), |e| {
            matches!(e, AgentEvent::Disconnected { .. }).then_some(())
        })
        .await
        .expect("the lost connection was not noticed");
    // Down for a few retry rounds: the agent must keep trying, not exit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| cluster.restart()).unwrap();
    agent
        .next(Duration::from_secs(15), |e| {
            matches!(e, AgentEvent::Connected { .. }).then_some(())
        })
        .await
        .expect("the agent did not reconnect");

    let mut kim = connect(&cluster, "kim", "psql").await;
    let ended = agent
        .next(Duration::from_secs(5), terminated_pid)
        .await
        .expect("no termination after the restart");
    assert_eq!(ended.0, kim.pid);
    assert!(kim.is_ended());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_does_not_stop_the_others() {
    let cluster = cluster();
    let dir = scratch("unreachable");
    // A second target on a port where nothing listens.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "[[target]]\nname = \"down\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{dead_port}/postgres?sslmode=disable\"\n\n[[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n"
    );
    let mut agent = Agent::start(policy(&cluster, &text), &dir).await;
    let failure = agent
        .next(Duration::from_secs(10), |e| match e {
            AgentEvent::Disconnected { target, error, .. } if target == "down" => {
                Some(error.clone())
            }
            _ => None,
        })
        .await
        .expect("the dead target's failure was not reported");
    assert!(failure.contains("connection refused"), "{failure}");
    let mut kim = connect(&cluster, "kim", "psql").await;
    let ended = agent
        .next(Duration::from_secs(5), terminated_pid)
        .await
        .expect("the healthy target stopped enforcing");
    assert_eq!(ended.0, kim.pid);
    assert!(kim.is_ended());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_policy_takes_effect_and_is_recorded() {
    let cluster = cluster();
    let dir = scratch("reload");
    let lenient = policy(
        &cluster,
        "[[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"kim\"]\n",
    );
    let mut agent = Agent::start(lenient, &dir).await;
    agent.ready().await;
    let mut kim = connect(&cluster, "kim", "psql").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!kim.is_ended());

    let strict = policy(
        &cluster,
        "[[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n",
    );
    agent.policy.send(Arc::new(strict)).unwrap();
    let ended = agent
        .next(Duration::from_secs(3), terminated_pid)
        .await
        .expect("the reloaded policy was not applied");
    assert_eq!(ended.0, kim.pid);
    let audit_path = agent.audit_path.clone();
    agent.stop().await;
    let loaded = curfew_audit::read(&audit_path)
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.event == "policy_loaded")
        .count();
    assert_eq!(
        loaded, 2,
        "the initial and the reloaded policy are both recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_mostly_end_within_a_second_of_their_deadline() {
    let cluster = cluster_with(curfew_sandbox::Options {
        max_connections: Some(60),
        ..Default::default()
    });
    let dir = scratch("lateness");
    let policy: LoadedPolicy = policy(
        &cluster,
        "[[rule]]\nname = \"idle\"\nidle = \"2s\"\nroles = [\"kim\"]\n",
    );
    let mut agent = Agent::start(policy, &dir).await;
    agent.ready().await;
    // Twenty sessions, 150 ms apart: twenty deadlines between polls.
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(connect(&cluster, "kim", "psql").await);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut lateness = Vec::new();
    while lateness.len() < sessions.len() {
        let Some((_, _, late)) = agent.next(Duration::from_secs(6), terminated_pid).await else {
            break;
        };
        lateness.push(late);
    }
    assert_eq!(lateness.len(), 20, "every session was ended");
    lateness.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "lateness over {} terminations: min {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        lateness.len(),
        ms(lateness[0]),
        ms(lateness[lateness.len() / 2]),
        ms(lateness[lateness.len() * 95 / 100]),
        ms(lateness[lateness.len() - 1])
    );
    // Loosely, as timing is asserted here: most within two seconds; none more than three (CI
    // once saw one at 1.39 s with the machine's two cores busy building). Speed is measured by
    // `curfew bench`, not here.
    assert!(
        lateness[lateness.len() * 95 / 100] < Duration::from_secs(2),
        "p95 over two seconds: {lateness:?}"
    );
    assert!(
        lateness.iter().all(|l| *l < Duration::from_secs(3)),
        "{lateness:?}"
    );
    for s in &mut sessions {
        assert!(s.is_ended());
    }
    agent.stop().await;
}
