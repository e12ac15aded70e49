//! The agent and the gateway side by side on one server (issue 17): a session through an
//! enforcing gateway is ended exactly once, by the gateway, with its FATAL 57P05 and the rule
//! (one `session_terminated` in the gateway's log, nothing in the agent's for it); a direct
//! client that sets `curfew.client_addr` itself is still ended by the agent at the deadline;
//! a session whose gateway stopped answering (SIGSTOP) is ended by the agent once
//! `[agent] gateway_grace` has passed, its record saying the gateway did not, and counted in
//! `curfew_gateway_missed_total`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::gateway_cluster::{PASSWORD, gateway_cluster, url};
use common::{Dir, KillOnDrop, agent, curfew, dir, http_get, lines_of, listen_address, wait_for};
use curfew_audit::Entry;
use curfew_sandbox::Cluster;
use tokio::task::JoinHandle;

const ALICE: &str = "alice-pw";
/// The idle limit and the agent's grace, in seconds.
const IDLE: u64 = 3;
/// Long enough that the agent's end of the direct session (at the deadline, loosely on a
/// loaded machine) is told apart from its end of gateway B's (after the grace).
const GRACE: u64 = 8;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The cluster with what `curfew init` installs for the agent and the gateway.
async fn cluster(d: &Dir) -> Cluster {
    gateway_cluster(
        d,
        "",
        &format!("CREATE ROLE alice LOGIN PASSWORD '{ALICE}';"),
    )
    .await
}

/// The one policy the agent and the gateways read (a gateway's `listen` apart).
fn policy(cluster: &Cluster, d: &Dir, gateway_port: u16) -> String {
    let password = d.password_file(PASSWORD).display().to_string();
    format!(
        "[agent]\ninterval = \"1s\"\nlisten = \"127.0.0.1:0\"\ngateway_grace = \"{GRACE}s\"\n\n\
         [[target]]\nname = \"db\"\nurl = \"{}\"\npassword_file = \"{password}\"\n\n\
         [[rule]]\nname = \"inactivity\"\nidle = \"{IDLE}s\"\nroles = [\"alice\"]\n\n\
         [gateway]\nlisten = \"127.0.0.1:{gateway_port}\"\ntarget = \"db\"\n\
         auth_url = \"{}\"\nauth_password_file = \"{password}\"\n",
        url(cluster, "curfew_agent"),
        url(cluster, "curfew_gateway"),
    )
}

/// `curfew gateway -c POLICY --audit-log AUDIT`, listening.
fn gateway(policy: &Path, audit: &Path) -> KillOnDrop {
    let mut child = KillOnDrop(
        curfew()
            .args(["gateway", "-c"])
            .arg(policy)
            .arg("--audit-log")
            .arg(audit)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut child.0);
    wait_for(&lines, "curfew gateway listening", Duration::from_secs(30));
    // Keep reading its log so the pipe never fills.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    child
}

/// alice's session on `port` (a gateway's or the server's) with startup `options`: the client,
/// its backend's pid and the connection's end.
async fn alice(
    port: u16,
    options: &str,
) -> (
    tokio_postgres::Client,
    i32,
    JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("alice")
        .password(ALICE)
        .dbname("postgres")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    if !options.is_empty() {
        config.options(options);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (client, pid, connection)
}

/// The error a connection ended with, within `within`.
async fn ended_with(
    connection: &mut JoinHandle<Result<(), tokio_postgres::Error>>,
    within: Duration,
) -> tokio_postgres::Error {
    match tokio::time::timeout(within, connection).await {
        Ok(Ok(Err(e))) => e,
        Ok(Ok(Ok(()))) => panic!("the connection closed without an error"),
        Ok(Err(e)) => panic!("the connection task: {e}"),
        Err(_) => panic!("the session was not ended within {within:?}"),
    }
}

/// Whether the server still has a backend with this pid.
fn backend_alive(cluster: &Cluster, pid: i32) -> bool {
    let out = cluster
        .psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .unwrap();
    out.trim() == "1"
}

fn records(path: &Path) -> Vec<Entry> {
    curfew_audit::read(path)
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap())
        .collect()
}

/// The records of `event` about backend `pid`.
fn about<'a>(records: &'a [Entry], event: &str, pid: i32) -> Vec<&'a Entry> {
    records
        .iter()
        .filter(|r| r.event == event && r.session.as_ref().is_some_and(|s| s.pid == i64::from(pid)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_ends_its_sessions_the_agent_ends_the_rest_and_what_the_gateway_missed() {
    let d = dir("gateway-agent");
    let cluster = cluster(&d).await;
    let (port_a, port_b) = (free_port(), free_port());
    let policy_a = d.write("curfew.toml", &policy(&cluster, &d, port_a), 0o600);
    let policy_b = d.write("curfew-b.toml", &policy(&cluster, &d, port_b), 0o600);
    let agent_audit = d.join("agent.jsonl");
    let (audit_a, audit_b) = (d.join("gateway-a.jsonl"), d.join("gateway-b.jsonl"));

    let _gateway_a = gateway(&policy_a, &audit_a);
    let gateway_b = gateway(&policy_b, &audit_b);
    let mut agent = agent(&policy_a, &agent_audit);
    let agent_lines = lines_of(&mut agent.0);
    let metrics_at = listen_address(&agent_lines);
    wait_for(&agent_lines, "this agent leads", Duration::from_secs(30));

    // Three idle sessions of alice at once: through gateway A, direct with the marker's
    // setting forged, and through gateway B, which then stops answering.
    let (_via_a, pid_a, mut end_a) = alice(port_a, "").await;
    let (_direct, pid_direct, mut end_direct) =
        alice(cluster.port(), "-c curfew.client_addr=10.6.6.6").await;
    // Read before B's session logs in: its idle (the server's `state_change`) starts after.
    let b_sent = Instant::now();
    let (_via_b, pid_b, _end_b) = alice(port_b, "").await;
    let idle_from = Instant::now();
    // Gateway B stops answering before its own timer could end the session (its
    // registration, awaited before the login completed, is on the wire already).
    common::signal(&gateway_b.0, "STOP");
    // The server marks the gateways' sessions, not the direct one. A registration is sent
    // after the login, one message on the gateway's auth connection: waited for.
    let mut expected = [pid_a, pid_b];
    expected.sort_unstable();
    let expected = format!("{},{}", expected[0], expected[1]);
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let marked = cluster
            .psql("SELECT string_agg(pid::text, ',' ORDER BY pid) FROM curfew.gateway_sessions")
            .unwrap();
        if marked.trim() == expected {
            break;
        }
        assert!(Instant::now() < limit, "the registry: {marked}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Gateway A's session: the gateway's FATAL, at the deadline.
    let error = ended_with(&mut end_a, Duration::from_secs(IDLE + 5)).await;
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(db.code().code(), "57P05", "{db:?}");
    assert!(
        db.message().contains("(rule inactivity)") && db.message().contains("limit 3s"),
        "{}",
        db.message()
    );
    assert_eq!(db.hint(), Some("reconnect to continue"));

    // The direct session: the agent's end (the server's 57P01), at the deadline, no grace.
    let error = ended_with(&mut end_direct, Duration::from_secs(IDLE + 5)).await;
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(db.code().code(), "57P01", "{db:?}");
    let direct_after = idle_from.elapsed();
    assert!(
        direct_after < Duration::from_secs(IDLE + GRACE - 1),
        "the direct session waited for a grace: {direct_after:?}"
    );

    // Gateway B's session: alive through the grace, then ended by the agent.
    assert!(backend_alive(&cluster, pid_b), "ended before the grace");
    let limit = Instant::now() + Duration::from_secs(IDLE + GRACE + 10);
    while backend_alive(&cluster, pid_b) {
        assert!(Instant::now() < limit, "the agent never ended it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b_after = b_sent.elapsed();
    assert!(
        b_after >= Duration::from_secs(IDLE + GRACE) - Duration::from_millis(100),
        "ended by the agent inside the grace: {b_after:?}"
    );
    let seen = wait_for(&agent_lines, "did not end", Duration::from_secs(10));
    let warning = seen.last().unwrap();
    assert!(warning.contains("WARN"), "{warning}");
    let metrics = http_get(&metrics_at, "/metrics").unwrap();
    assert!(
        metrics
            .body
            .contains("curfew_gateway_missed_total{target=\"db\"} 1\n"),
        "{}",
        metrics.body
    );

    // A while past A's grace too, so an agent racing the gateway would have shown by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    common::signal(&agent.0, "TERM");
    let _ = agent.0.wait();
    let agent_records = records(&agent_audit);
    let gateway_records = records(&audit_a);
    // A: one end, by the gateway; none by the agent, not even an intent.
    assert_eq!(
        about(&gateway_records, "session_terminated", pid_a).len(),
        1,
        "{gateway_records:#?}"
    );
    assert!(about(&agent_records, "termination_intent", pid_a).is_empty());
    assert!(about(&agent_records, "session_terminated", pid_a).is_empty());
    // The direct session: the agent's, with no gateway in it.
    let direct = about(&agent_records, "session_terminated", pid_direct);
    assert_eq!(direct.len(), 1, "{agent_records:#?}");
    let detail = direct[0].detail.as_ref().unwrap();
    assert!(detail.get("gateway_client").is_none(), "{detail}");
    // B: the agent's, saying the gateway did not.
    let b = about(&agent_records, "termination_intent", pid_b);
    assert_eq!(b.len(), 1, "{agent_records:#?}");
    let reason = b[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(&format!("did not end it within {GRACE}s of the deadline")),
        "{reason}"
    );
    let ended = about(&agent_records, "session_terminated", pid_b);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].result.as_deref(), Some("ended"));
    common::assert_audit_verifies(&agent_audit);
    common::assert_audit_verifies(&audit_a);
    common::signal(&gateway_b.0, "CONT");
}
