//! `curfew gateway -c POLICY`: the policy's `[gateway]` serves a psql client with SCRAM end to
//! end, through the auth function; /metrics and /healthz; SIGHUP reloads the policy (a broken
//! one is refused and the gateway goes on); SIGTERM drains (a session still running at
//! `shutdown_timeout` gets FATAL 57P01 with the reason, exit 0); Ctrl-C stops it; its audit
//! log verifies with `curfew audit verify`.

#![allow(clippy::unwrap_used)] // test fixtures fail loudly by design

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{
    Dir, KillOnDrop, assert_audit_verifies, curfew, dir, events, http_get, lines_of, signal,
    wait_for,
};
use curfew_postgres::{ConnectionUrl, GatewayAuth, TargetSpec};
use curfew_sandbox::Cluster;
use curfew_sandbox::{Auth, Options};

const PASSWORD: &str = "pw-for-tests";

/// A cluster with alice and the gateway's auth function, and a policy with a `[gateway]` on a
/// free port (`extra` appended to the section).
struct Setup {
    cluster: Cluster,
    policy: std::path::PathBuf,
    port: u16,
    /// The policy's text with other `[gateway]` lines.
    policy_text: Box<dyn Fn(&str) -> String>,
    dir: Dir,
}

async fn setup(name: &str, extra: &str) -> Setup {
    let cluster = curfew_testkit::started(Options {
        auth: Auth::Scram,
        ..Options::default()
    });
    cluster
        .psql(&format!(
            "ALTER ROLE postgres PASSWORD '{PASSWORD}';
             CREATE ROLE curfew_agent LOGIN PASSWORD '{PASSWORD}';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE alice LOGIN PASSWORD 'alice-pw';"
        ))
        .unwrap();
    let dir = dir(name);
    let password_file = dir.password_file(PASSWORD);
    let url = |user: &str| {
        format!(
            "postgresql://{user}@127.0.0.1:{}/postgres?sslmode=disable",
            cluster.port()
        )
    };
    // What `curfew init` installs: the ledger, then the gateway's auth function for the role
    // the gateway fetches verifiers as (here the target's user, auth_url's default).
    let mut admin = curfew_postgres::connect(&TargetSpec {
        name: "db".to_owned(),
        url: ConnectionUrl::parse(&url("postgres")).unwrap(),
        password_file: Some(password_file.clone()),
    })
    .await
    .unwrap()
    .connection;
    admin.install_ledger("curfew_agent").await.unwrap();
    let installed = admin
        .install_gateway_auth(&GatewayAuth {
            gateway_role: "curfew_agent".to_owned(),
            serve_members_of: None,
            serve_superusers: false,
        })
        .await
        .unwrap();
    assert!(installed.installed, "{installed:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent_url = url("curfew_agent");
    let password_path = password_file.display().to_string();
    let policy_text = move |extra: &str| {
        format!(
            "[[target]]\nname = \"db\"\nurl = \"{agent_url}\"\npassword_file = \"{password_path}\"\n\n[[rule]]\nname = \"idle\"\nidle = \"1h\"\n\n[gateway]\nlisten = \"127.0.0.1:{port}\"\ntarget = \"db\"\n{extra}"
        )
    };
    let policy = dir.write("curfew.toml", &policy_text(extra), 0o600);
    Setup {
        cluster,
        policy,
        port,
        policy_text: Box::new(policy_text),
        dir,
    }
}

/// `curfew gateway -c POLICY --audit-log AUDIT ARGS`, its stderr readable.
fn start(setup: &Setup, args: &[&str]) -> KillOnDrop {
    KillOnDrop(
        curfew()
            .args(["gateway", "-c"])
            .arg(&setup.policy)
            .arg("--audit-log")
            .arg(setup.dir.join("gateway-audit.jsonl"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// psql as alice through the gateway running `sql`.
fn psql(setup: &Setup, password: &str, sql: &str) -> std::process::Output {
    std::process::Command::new(setup.cluster.bin_dir().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            &format!(
                "host=127.0.0.1 port={} user=alice dbname=postgres sslmode=disable",
                setup.port
            ),
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

/// Waits for `child` to exit within `limit`; its status.
fn exit_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_command_serves_psql_and_stops_on_ctrl_c() {
    let setup = setup("gateway", "").await;
    let mut gateway = start(&setup, &["--http-listen", "127.0.0.1:0"]);
    let lines = lines_of(&mut gateway.0);
    let seen = wait_for(&lines, "metrics on http://", Duration::from_secs(20));
    let metrics_at = seen
        .last()
        .and_then(|l| l.split("http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    wait_for(&lines, "curfew gateway listening", Duration::from_secs(20));

    let psql = |password: &str| {
        psql(
            &setup,
            password,
            "SELECT current_user || ' via ' || current_setting('curfew.client_addr')",
        )
    };
    let served = psql("alice-pw");
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&served.stdout).trim(),
        "alice via 127.0.0.1"
    );
    let refused = psql("wrong");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("password authentication failed for user \"alice\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The metrics count the session and the failed login; the health check passes. The
    // failure is counted just after its FATAL is written: psql may have exited before, so
    // the scrape is repeated for a few seconds.
    let lines = [
        "curfew_gateway_sessions_started_total 1\n",
        "curfew_gateway_auth_failures_total{cause=\"password\"} 1\n",
    ];
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = http_get(&metrics_at, "/metrics").unwrap();
        if lines.iter().all(|l| metrics.body.contains(l)) || std::time::Instant::now() > give_up {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(metrics.code, 200);
    for line in lines {
        assert!(
            metrics.body.contains(line),
            "{line:?} missing from\n{}",
            metrics.body
        );
    }
    let health = http_get(&metrics_at, "/healthz").unwrap();
    assert_eq!(health.code, 200, "{}", health.body);
    assert!(
        health.body.contains("audit log: writable"),
        "{}",
        health.body
    );

    signal(&gateway.0, "INT");
    let status = exit_within(&mut gateway.0, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    // The gateway's own log: the agent's format, verified by the agent's command.
    let audit = setup.dir.join("gateway-audit.jsonl");
    let events = events(&audit);
    assert_eq!(
        events,
        [
            "gateway_started",
            "session_started",
            "session_ended",
            "logins_failed",
            "gateway_stopped"
        ]
    );
    assert_audit_verifies(&audit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy_and_sigterm_drains_then_exits_0() {
    let setup = setup("gateway-signals", "shutdown_timeout = \"2s\"\n").await;
    let mut gateway = start(&setup, &[]);
    let lines = lines_of(&mut gateway.0);
    wait_for(&lines, "curfew gateway listening", Duration::from_secs(20));

    // A reload that changes what can change live, and the listen address, which cannot.
    std::fs::write(
        &setup.policy,
        (setup.policy_text)("shutdown_timeout = \"2s\"\nmax_clients = 5\n")
            .replace("listen = \"127.0.0.1:", "listen = \"127.0.0.2:"),
    )
    .unwrap();
    signal(&gateway.0, "HUP");
    let seen = wait_for(&lines, "reloaded", Duration::from_secs(20));
    assert!(
        seen.iter()
            .any(|l| l.contains("listen changed in the policy but needs a restart")),
        "{seen:#?}"
    );
    // A broken policy: refused, loudly; the gateway goes on with what it has.
    std::fs::write(&setup.policy, "[gateway\n").unwrap();
    signal(&gateway.0, "HUP");
    wait_for(&lines, "RELOAD FAILED", Duration::from_secs(20));
    let served = psql(&setup, "alice-pw", "SELECT 'still serving'");
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&served.stdout).trim(),
        "still serving"
    );

    // (Its log lines read, so the next "session started" is the sleeper's.)
    wait_for(&lines, "session ended", Duration::from_secs(20));

    // A session still running at shutdown_timeout is ended with 57P01 and the reason.
    let sleeper = {
        let bin = setup.cluster.bin_dir().join("psql");
        let port = setup.port;
        std::thread::spawn(move || {
            std::process::Command::new(bin)
                .args([
                    "-X",
                    "-v",
                    "VERBOSITY=verbose",
                    "-d",
                    &format!(
                        "host=127.0.0.1 port={port} user=alice dbname=postgres sslmode=disable"
                    ),
                    "-c",
                    "SELECT pg_sleep(60)",
                ])
                .env("PGPASSWORD", "alice-pw")
                .output()
                .unwrap()
        })
    };
    wait_for(&lines, "session started", Duration::from_secs(20));
    let begun = std::time::Instant::now();
    signal(&gateway.0, "TERM");
    let status = exit_within(&mut gateway.0, Duration::from_secs(2 + 10));
    assert!(status.success(), "{status}");
    assert!(
        begun.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        begun.elapsed()
    );
    let slept = sleeper.join().unwrap();
    let stderr = String::from_utf8_lossy(&slept.stderr);
    assert!(!slept.status.success());
    assert!(stderr.contains("57P01"), "{stderr}");
    assert!(
        stderr.contains("the curfew gateway is shutting down"),
        "{stderr}"
    );

    let audit = setup.dir.join("gateway-audit.jsonl");
    let events = events(&audit);
    assert_eq!(
        events.iter().filter(|e| *e == "gateway_reloaded").count(),
        2,
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("gateway_stopped"));
    assert_audit_verifies(&audit);
}
