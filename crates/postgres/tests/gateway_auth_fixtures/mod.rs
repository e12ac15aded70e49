//! Fixtures of the gateway auth function's suites (`gateway_auth.rs`, `gateway_auth_owner.rs`):
//! a SCRAM cluster with the gateway's role and a cast of roles, installing, logging in, asking.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // a shared test helper module

use crate::common::{TempDir, spec};
use curfew_postgres::{Connection, GATEWAY_SECRET_QUERY, GatewayAuth, PgError};
use curfew_sandbox::{Auth, Cluster, Options};
use tokio_postgres::{Client, NoTls};

/// The gateway's role, named to break any quoting: a double quote, a quote and a backslash.
pub const GATEWAY: &str = "gate\"way'\\";
/// The role whose members may be served, as awkward.
pub const GROUP: &str = "gw users'\\";
/// A served role named with a quote and a backslash.
pub const OBRIEN: &str = "o'brien\\";
pub const PASSWORD: &str = "correct horse";

/// A SCRAM cluster with curfew's role, the gateway's, and a cast of roles to serve or not.
pub fn cluster() -> Cluster {
    let cluster = curfew_testkit::started(Options {
        auth: Auth::Scram,
        ..Options::default()
    });
    let sql = format!(
        "ALTER ROLE postgres PASSWORD '{PASSWORD}';
         CREATE ROLE curfew_agent LOGIN PASSWORD '{PASSWORD}';
         GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
         CREATE ROLE \"gate\"\"way'\\\" LOGIN PASSWORD '{PASSWORD}';
         CREATE ROLE other LOGIN PASSWORD '{PASSWORD}';
         CREATE ROLE ana LOGIN PASSWORD 'ana''s';
         CREATE ROLE dormant NOLOGIN PASSWORD 'x';
         CREATE ROLE expired LOGIN PASSWORD 'x' VALID UNTIL '2000-01-01 00:00:00+00';
         CREATE ROLE future LOGIN PASSWORD 'x' VALID UNTIL '2999-01-01 00:00:00+00';
         CREATE ROLE boss LOGIN SUPERUSER PASSWORD 'x';
         CREATE ROLE legacy LOGIN PASSWORD 'md50123456789abcdef0123456789abcdef';
         CREATE ROLE nopass LOGIN;
         CREATE ROLE \"gw users'\\\" NOLOGIN;
         CREATE ROLE team NOLOGIN IN ROLE \"gw users'\\\";
         CREATE ROLE \"o'brien\\\" LOGIN PASSWORD 'x' IN ROLE team;
         CREATE ROLE admin_x LOGIN CREATEROLE PASSWORD '{PASSWORD}';
         GRANT pg_read_all_stats, pg_signal_backend TO admin_x;"
    );
    if let Err(e) = cluster.psql(&sql) {
        panic!("{e}");
    }
    cluster
}

/// curfew's connection as `user` (password [`PASSWORD`]).
pub async fn curfew_as(cluster: &Cluster, dir: &TempDir, user: &str) -> Connection {
    let file = dir.password_file(PASSWORD);
    match curfew_postgres::connect(&spec(&cluster.url(user, "postgres"), Some(file))).await {
        Ok(connected) => connected.connection,
        Err(e) => panic!("connect as {user}: {e}"),
    }
}

/// The ledger, then the gateway's function with `settings`, as the superuser.
pub async fn install(cluster: &Cluster, dir: &TempDir, settings: &GatewayAuth) {
    let mut admin = curfew_as(cluster, dir, "postgres").await;
    admin.install_ledger("curfew_agent").await.unwrap();
    let installed = admin.install_gateway_auth(settings).await.unwrap();
    assert!(installed.installed, "{installed:?}");
}

/// The settings a policy's `[gateway]` gives, its `auth_url` logging in as [`GATEWAY`].
pub fn settings(members_of: Option<&str>, superusers: bool) -> GatewayAuth {
    let mut gateway = format!(
        "[[target]]\nname = \"db\"\nurl = \"postgresql://curfew_agent@db1/postgres\"\n[gateway]\nauth_url = \"postgresql://gate%22way'%5C@db1/postgres\"\nserve_superusers = {superusers}\n"
    );
    if let Some(role) = members_of {
        let escaped = role.replace('\\', "\\\\").replace('"', "\\\"");
        gateway.push_str(&format!("serve_members_of = \"{escaped}\"\n"));
    }
    let parsed = curfew_policy::parse_policy_with(
        "t.toml",
        &gateway,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let settings = GatewayAuth::for_gateway(&parsed.policy.gateway.unwrap()).unwrap();
    assert_eq!(settings.gateway_role, GATEWAY);
    settings
}

/// A plain client logged in with SCRAM as `user`.
pub async fn login(cluster: &Cluster, user: &str) -> Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port())
        .user(user)
        .password(PASSWORD)
        .dbname("postgres")
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("login as {user}: {e}"));
    tokio::spawn(connection);
    client
}

/// What the function returns for `role`: its secret's kind and the verifier, or nothing when
/// the role is not served (kind `mock`, no verifier).
pub async fn secret(client: &Client, role: &str) -> Option<(String, Option<String>)> {
    let (kind, verifier, _, _) = answer(client, role).await;
    if kind == "mock" {
        assert_eq!(verifier, None, "{role}");
        return None;
    }
    Some((kind, verifier))
}

/// The function's one row for `role`: kind, verifier, mock salt (base64), mock iterations.
pub async fn answer(client: &Client, role: &str) -> (String, Option<String>, String, i32) {
    let rows = client.query(GATEWAY_SECRET_QUERY, &[&role]).await.unwrap();
    assert_eq!(rows.len(), 1, "{} rows for {role}", rows.len());
    let r = &rows[0];
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// The kind alone, checking that a verifier comes with SCRAM and only with SCRAM.
pub async fn kind(client: &Client, role: &str) -> Option<String> {
    let (kind, verifier) = secret(client, role).await?;
    match verifier {
        Some(v) => {
            assert_eq!(kind, "scram-sha-256", "{role}");
            assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{role}");
        }
        None => assert_ne!(kind, "scram-sha-256", "{role}"),
    }
    Some(kind)
}

/// The SQLSTATE of a statement that must fail.
pub async fn refused(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded"),
        Err(e) => e.code().unwrap().code().to_owned(),
    }
}

/// Installing with `settings` fails: the error's text.
pub async fn install_fails(cluster: &Cluster, dir: &TempDir, settings: &GatewayAuth) -> String {
    let mut admin = curfew_as(cluster, dir, "postgres").await;
    admin.install_ledger("curfew_agent").await.unwrap();
    match admin.install_gateway_auth(settings).await {
        Ok(installed) => panic!("installed: {installed:?}"),
        Err(e) => {
            assert!(matches!(e, PgError::Install { .. }), "{e}");
            e.to_string()
        }
    }
}
