//! `curfew gateway -c POLICY`: the policy's `[gateway]` serves a psql client with SCRAM end to
//! end, through the auth function, and Ctrl-C stops it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{KillOnDrop, curfew, dir, lines_of, signal, wait_for};
use curfew_postgres::{ConnectionUrl, GatewayAuth, TargetSpec};
use curfew_sandbox::{Auth, Options};

const PASSWORD: &str = "pw-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_command_serves_psql_and_stops_on_ctrl_c() {
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
    let dir = dir("gateway");
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
    let policy = dir.write(
        "curfew.toml",
        &format!(
            "[[target]]\nname = \"db\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n[[rule]]\nname = \"idle\"\nidle = \"1h\"\n\n[gateway]\nlisten = \"127.0.0.1:{port}\"\ntarget = \"db\"\n",
            url("curfew_agent"),
            password_file.display()
        ),
        0o600,
    );
    let mut gateway = KillOnDrop(
        curfew()
            .args(["gateway", "-c"])
            .arg(&policy)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut gateway.0);
    wait_for(&lines, "curfew gateway listening", Duration::from_secs(20));

    let psql = |password: &str| {
        std::process::Command::new(cluster.bin_dir().join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-d",
                &format!("host=127.0.0.1 port={port} user=alice dbname=postgres sslmode=disable"),
                "-c",
                "SELECT current_user || ' via ' || current_setting('curfew.client_addr')",
            ])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
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

    signal(&gateway.0, "INT");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = gateway.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
