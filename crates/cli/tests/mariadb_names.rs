//! A MariaDB server with name resolution on (`skip_name_resolve` OFF, its default): the process
//! list shows a TCP client from 127.0.0.1 as `localhost:port`, no address. The agent must not
//! take it for a socket session: an exemption for local (socket) administrators keeps the
//! socket session and ends the TCP one under an idle rule, and the audit record shows the name
//! the server gave, marked unverified, never an address.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::maria::alive;
use common::{agent, assert_audit_verifies, dir, lines_of, wait_for};
use curfew_sandbox::{MariaDbOptions, MariaDbServer};
use mysql_async::{Conn, OptsBuilder};

#[test]
fn with_name_resolution_on_a_tcp_client_is_not_exempt_as_local_and_is_recorded_by_name() {
    let d = dir("mariadb-names");
    let password_file = d.0.join("maria.password");
    let maria = MariaDbServer::start(MariaDbOptions {
        settings: vec![("skip-name-resolve".to_owned(), "OFF".to_owned())],
        ..MariaDbOptions::default()
    })
    .unwrap();
    assert_eq!(maria.admin_sql("SELECT @@skip_name_resolve").unwrap(), "0");
    maria
        .admin_sql(
            "CREATE USER 'curfew_agent'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'curfew_agent'@'127.0.0.1';
             GRANT SELECT ON performance_schema.* TO 'curfew_agent'@'127.0.0.1';
             CREATE USER 'kim'@'127.0.0.1'; CREATE USER 'kim'@'localhost';",
        )
        .unwrap();
    std::fs::write(&password_file, "agent-secret\n").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [exempt]\naddresses = [\"local\"]\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"3s\"\n",
            maria.url("curfew_agent", ""),
            password_file.display(),
        ),
    )
    .unwrap();
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    wait_for(&lines, "this agent leads", Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tcp_id, socket_id) = runtime.block_on(async {
        let base = OptsBuilder::default().user(Some("kim"));
        let mut tcp = Conn::new(
            base.clone()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(maria.port())
                .prefer_socket(false),
        )
        .await
        .unwrap();
        let mut socket = Conn::new(base.socket(Some(maria.socket().display().to_string())))
            .await
            .unwrap();
        let host = maria
            .admin_sql(&format!(
                "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = {}",
                tcp.id()
            ))
            .unwrap();
        assert!(host.starts_with("localhost:"), "{host}");
        // The 3 s limit, a round of 1 s, and room for a slow machine.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(alive(&mut socket).await, "the socket session was ended");
        assert!(
            !alive(&mut tcp).await,
            "the TCP session shown by name was taken for a local one"
        );
        (i64::from(tcp.id()), i64::from(socket.id()))
    });
    common::signal(&child, "TERM");
    let _ = child.wait();
    let ended: Vec<_> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.event == "session_terminated")
        .map(|e| e.session.unwrap())
        .collect();
    assert_eq!(
        ended.iter().map(|s| s.pid).collect::<Vec<_>>(),
        [tcp_id],
        "(the socket session was {socket_id})"
    );
    assert_eq!(
        ended[0].client_addr.as_deref(),
        Some("name:localhost (unverified)")
    );
    assert_audit_verifies(&audit);
}
