//! What an unauthenticated client sees of a role it cannot log in as: the mock salt comes from
//! a key kept in the database, so it is the same through every gateway and after a restart (a
//! real role's salt never changes either), and the iteration count is the server's, as a
//! real verifier made now has.

mod common;

use std::net::SocketAddr;

use common::{Harness, Setup, raw};
use tokio::net::TcpStream;

/// The salt and iteration count of `role`'s server-first through the gateway at `addr`.
async fn salt_and_count(addr: SocketAddr, role: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let first = raw::server_first(&mut stream, role)
        .await
        .unwrap_or_else(|e| panic!("server-first for {role}: {e}"));
    let field = |name: &str| {
        first
            .split(',')
            .find_map(|a| a.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {first}"))
            .to_owned()
    };
    (field("s="), field("i="))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_roles_salt_is_the_same_across_gateways_and_restarts_with_the_servers_count() {
    let mut harness = Harness::start(
        "mock-salt",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    let version: u32 = harness
        .cluster
        .psql("SHOW server_version_num")
        .expect("version")
        .parse()
        .expect("a number");
    if version >= 160_000 {
        // A server that makes verifiers with another count: a real role set now has it.
        harness
            .cluster
            .psql("ALTER SYSTEM SET scram_iterations = 4567")
            .expect("scram_iterations");
        harness
            .cluster
            .psql("SELECT pg_reload_conf()")
            .expect("reload");
        harness
            .cluster
            .psql("SET scram_iterations = 4567; ALTER ROLE alice PASSWORD 'alice-secret'")
            .expect("alice's new verifier");
    } else {
        eprintln!(
            "PostgreSQL {version} has no scram_iterations (16+): only the default count 4096 is checked; run with CURFEW_PG_BIN set to PostgreSQL 16 or later for a changed one"
        );
    }
    let expected_count = if version >= 160_000 { "4567" } else { "4096" };
    let (_, real_count) = salt_and_count(harness.addr, "alice").await;
    assert_eq!(real_count, expected_count, "alice's real verifier");

    let roles = ["nobody_at_all", "md5_role", "nologin_role"];
    let mut first = Vec::new();
    for role in roles {
        let (salt, count) = salt_and_count(harness.addr, role).await;
        assert_eq!(
            count, real_count,
            "{role}: a mock count differs from a real one"
        );
        assert_eq!(salt.len(), 24, "{role}: 16 bytes like PostgreSQL's salts");
        first.push(salt);
    }
    assert_ne!(first[0], first[1], "one salt for two roles");

    // A second gateway at the same time, then the first one stopped and another started.
    let (second, _second_stop) = harness.another_gateway().await;
    harness.stop();
    let (restarted, _restarted_stop) = harness.another_gateway().await;
    for (i, role) in roles.iter().enumerate() {
        for addr in [second, restarted] {
            assert_eq!(
                salt_and_count(addr, role).await,
                (first[i].clone(), real_count.clone()),
                "{role} through {addr}"
            );
        }
    }
}
