//! The agent and the gateway session registry: a session the gateway registered is ended by
//! the agent as before (no enforcement change yet), and its `session_terminated` record and
//! event name the client behind the gateway; a direct session's do not.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod agent_common;

use std::net::IpAddr;
use std::time::Duration;

use agent_common::{Agent, cluster, connect, policy, scratch};
use curfew_agent::AgentEvent;
use curfew_postgres::{ConnectionUrl, GATEWAY_REGISTER_QUERY, TargetSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_session_s_termination_names_the_client_behind_the_gateway() {
    let cluster = cluster();
    cluster.psql("CREATE ROLE gw LOGIN;").unwrap();
    let spec = TargetSpec {
        name: "test".into(),
        url: ConnectionUrl::parse(&cluster.url("postgres", "postgres")).unwrap(),
        password_file: None,
    };
    let mut admin = curfew_postgres::connect(&spec).await.unwrap().connection;
    admin.install_ledger("curfew_agent").await.unwrap();
    let installed = admin
        .install_gateway_registry("curfew_agent", "gw")
        .await
        .unwrap();
    assert!(installed.installed, "{installed:?}");

    // kim's session, registered by the gateway's role as if the gateway had logged it in
    // (its peer is this process's socket); lee's is direct.
    let mut kim = connect(&cluster, "kim", "psql").await;
    let mut lee = connect(&cluster, "lee", "psql").await;
    let port: i32 = kim
        .client
        .query_one("SELECT inet_client_port()", &[])
        .await
        .unwrap()
        .get(0);
    let (gateway, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=gw dbname=postgres",
            cluster.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let upstream: IpAddr = "127.0.0.1".parse().unwrap();
    let client: IpAddr = "10.9.8.7".parse().unwrap();
    gateway
        .query_one(
            GATEWAY_REGISTER_QUERY,
            &[
                &kim.pid,
                &"kim",
                &upstream,
                &port,
                &client,
                &5555i32,
                &"gw-test/1",
            ],
        )
        .await
        .unwrap();

    let dir = scratch("gateway-sessions");
    let policy = policy(
        &cluster,
        "[[rule]]\nname = \"inactivity\"\nidle = \"2s\"\nmember_of = [\"humans\"]\n",
    );
    let mut agent = Agent::start(policy, &dir).await;
    let mut via = std::collections::BTreeMap::new();
    while via.len() < 2 {
        let (pid, client) = agent
            .next(Duration::from_secs(15), |e| match e {
                AgentEvent::Terminated {
                    session,
                    via_gateway,
                    ..
                } => Some((session.pid, via_gateway.as_ref().map(ToString::to_string))),
                _ => None,
            })
            .await
            .expect("kim's and lee's sessions ended");
        via.insert(pid, client);
    }
    assert_eq!(
        via.get(&i64::from(kim.pid)),
        Some(&Some("via gateway from 10.9.8.7:5555".to_owned()))
    );
    assert_eq!(via.get(&i64::from(lee.pid)), Some(&None));
    assert!(kim.is_ended() && lee.is_ended());
    let audit_path = agent.audit_path.clone();
    agent.stop().await;

    let log = std::fs::read_to_string(audit_path).unwrap();
    let terminated = |pid: i32| {
        log.lines()
            .find(|l| {
                l.contains("\"event\":\"session_terminated\"")
                    && l.contains(&format!("\"pid\":{pid},"))
            })
            .unwrap_or_else(|| panic!("no session_terminated record for pid {pid}:\n{log}"))
            .to_owned()
    };
    let kim_record = terminated(kim.pid);
    assert!(
        kim_record.contains("\"gateway_client\":\"10.9.8.7:5555\"")
            && kim_record.contains("\"gateway_id\":\"gw-test/1\""),
        "{kim_record}"
    );
    let lee_record = terminated(lee.pid);
    assert!(!lee_record.contains("gateway"), "{lee_record}");
}
