//! `[gateway] auth_password_file`: the gateway's own role (in `auth_url`) logs in with a
//! password of its own, read from its own file, to call the auth function; the policy is
//! mapped as `curfew gateway` maps it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;

use common::{ADMIN_PASSWORD, ALICE_PASSWORD, Harness, Setup};
use curfew_gateway::{AuthFunctionSource, Gateway, PolicyGateway, RoleSecret, VerifierSource};
use tokio::net::TcpListener;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

/// The gateway role's password: not the agent's, so only its own file can log it in.
const GATEWAY_PASSWORD: &str = "gateway-own-secret";

/// The harness's cluster as a policy: the agent's target with its password file, and a
/// `[gateway]` whose `auth_url` is `curfew_gateway`'s, followed by `extra`.
fn policy(harness: &Harness, extra: &str) -> curfew_policy::Policy {
    let port = harness.cluster.port();
    let ca = harness.dir.join("ca.pem");
    let agent_file = harness
        .dir
        .write("agent.pw", &format!("{ADMIN_PASSWORD}\n"), 0o600);
    let text = format!(
        "[[target]]\nname = \"primary\"\nurl = \"postgresql://curfew_agent@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={ca}\"\npassword_file = \"{agent}\"\n\
         [gateway]\nlisten = \"127.0.0.1:6432\"\nauth_url = \"postgresql://curfew_gateway@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={ca}\"\n{extra}",
        ca = ca.display(),
        agent = agent_file.display(),
    );
    curfew_policy::parse_policy_with(
        "t.toml",
        &text,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_role_logs_in_with_its_own_password_file() {
    let harness = Harness::start(
        "auth-password-file",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    harness
        .cluster
        .psql(&format!(
            "SET password_encryption = 'scram-sha-256'; ALTER ROLE curfew_gateway PASSWORD '{GATEWAY_PASSWORD}';"
        ))
        .unwrap();

    // Without its own file the gateway's role has no password: lookups fail (and the
    // target's file, the agent's password, is not used for another role).
    let without = PolicyGateway::from_policy(&policy(&harness, "")).unwrap();
    assert_eq!(without.auth.password_file, None);
    let Err(refused) = AuthFunctionSource::new(without.auth).fetch("alice").await else {
        panic!("no password, no lookup");
    };
    assert!(
        !refused.reason.contains(GATEWAY_PASSWORD),
        "{}",
        refused.reason
    );

    let own_file = harness
        .dir
        .write("gateway.pw", &format!("{GATEWAY_PASSWORD}\n"), 0o600);
    let mapped = PolicyGateway::from_policy(&policy(
        &harness,
        &format!("auth_password_file = \"{}\"\n", own_file.display()),
    ))
    .unwrap();
    assert_eq!(mapped.auth.url.user, "curfew_gateway");
    let source = Arc::new(AuthFunctionSource::new(mapped.auth));
    let lookup = source.fetch("alice").await.unwrap();
    assert!(matches!(lookup.secret, RoleSecret::Stored(_)));

    // A gateway built from that policy logs alice in end to end.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = Gateway::new(mapped.config, source).unwrap();
    let workers = Arc::new(curfew_gateway::Workers::start(1).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(curfew_gateway::run_on(
        vec![listener],
        gateway,
        async move {
            let _ = stopped.await;
        },
        workers,
    ));
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(addr.port())
        .user("alice")
        .password(ALICE_PASSWORD)
        .dbname("postgres")
        .ssl_mode(SslMode::Disable);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "alice");
    drop(client);
    let _ = stop.send(());
    task.await.unwrap();
}
