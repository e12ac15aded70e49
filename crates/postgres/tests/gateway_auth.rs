//! The gateway's auth function as `curfew init` installs it, on a real SCRAM server: who it
//! serves (and who not: unknown, NOLOGIN, expired, superusers, non-members), what it hands out
//! (a SCRAM verifier, never an MD5 hash), who may call or replace it (the gateway's role only;
//! nobody), that no `search_path` trick changes its answer, and that installing again replaces
//! its settings and grants.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "gateway_auth_fixtures/mod.rs"]
mod fixtures;

use common::{TempDir, spec};
use curfew_postgres::PgError;
use fixtures::*;
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_roles_get_their_scram_verifier_and_no_one_else_gets_anything() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-served");
    install(&cluster, &dir, &settings(None, false)).await;
    let gateway = login(&cluster, GATEWAY).await;
    let scram = Some("scram-sha-256".to_owned());
    assert_eq!(kind(&gateway, "ana").await, scram);
    assert_eq!(kind(&gateway, OBRIEN).await, scram);
    assert_eq!(kind(&gateway, "future").await, scram, "VALID UNTIL ahead");
    for unserved in ["nobody", "dormant", "expired", "boss", "Ana", ""] {
        assert_eq!(secret(&gateway, unserved).await, None, "{unserved}");
    }
    // An MD5 hash is as good as the password: named, never handed out.
    assert_eq!(
        secret(&gateway, "legacy").await,
        Some(("md5".to_owned(), None))
    );
    assert_eq!(
        secret(&gateway, "nopass").await,
        Some(("none".to_owned(), None))
    );
    // The verifier handed out is the server's own.
    let stored = cluster
        .psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'ana'")
        .unwrap();
    assert_eq!(secret(&gateway, "ana").await.unwrap().1, Some(stored));

    // Superusers only when configured, and then served like anyone else.
    install(&cluster, &dir, &settings(None, true)).await;
    assert_eq!(kind(&gateway, "boss").await, scram);
    assert_eq!(secret(&gateway, "expired").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_role_directly_or_not_are_served_and_settings_are_replaced() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-members");
    install(&cluster, &dir, &settings(Some(GROUP), true)).await;
    let gateway = login(&cluster, GATEWAY).await;
    // o'brien\ is a member through team; ana is none; a superuser is no member by its power.
    assert_eq!(
        kind(&gateway, OBRIEN).await.as_deref(),
        Some("scram-sha-256")
    );
    for unserved in ["ana", "boss", "team", GROUP] {
        assert_eq!(secret(&gateway, unserved).await, None, "{unserved}");
    }
    // Installing again replaces the served set (and is otherwise the same).
    install(&cluster, &dir, &settings(None, false)).await;
    install(&cluster, &dir, &settings(None, false)).await;
    assert_eq!(
        kind(&gateway, "ana").await.as_deref(),
        Some("scram-sha-256")
    );
    assert_eq!(secret(&gateway, "boss").await, None);
    // A new gateway role takes the grant; the old one keeps nothing.
    let mut moved = settings(None, false);
    moved.gateway_role = "other".to_owned();
    install(&cluster, &dir, &moved).await;
    assert_eq!(
        refused(&gateway, "SELECT * FROM curfew.gateway_secret('ana')").await,
        "42501"
    );
    let other = login(&cluster, "other").await;
    assert!(secret(&other, "ana").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateway_role_calls_it_nobody_replaces_it_and_search_path_tricks_fail() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-guard");
    install(&cluster, &dir, &settings(None, false)).await;
    for role in ["other", "curfew_agent"] {
        let client = login(&cluster, role).await;
        assert_eq!(
            refused(&client, "SELECT * FROM curfew.gateway_secret('ana')").await,
            "42501",
            "{role}"
        );
    }
    // The gateway's role may call it, not change it.
    cluster
        .psql("GRANT CREATE ON SCHEMA public TO \"gate\"\"way'\\\"")
        .unwrap();
    let gateway = login(&cluster, GATEWAY).await;
    for sql in [
        "CREATE OR REPLACE FUNCTION curfew.gateway_secret(role_name text)
           RETURNS TABLE (secret_kind text, verifier text)
           LANGUAGE sql AS $$ SELECT 'scram-sha-256', rolpassword FROM pg_authid $$",
        "ALTER FUNCTION curfew.gateway_secret(text) SECURITY INVOKER",
        "ALTER FUNCTION curfew.gateway_secret(text) RESET search_path",
        "DROP FUNCTION curfew.gateway_secret(text)",
        "CREATE FUNCTION curfew.starts_with(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
    ] {
        assert_eq!(refused(&gateway, sql).await, "42501", "{sql}");
    }
    // Lookalikes of what the function uses, in pg_temp and in public, first on the caller's
    // path: a temporary pg_authid with a row of its own, a starts_with that says yes to
    // anything (would hand out the MD5 hash), a now() in the past (would revive `expired`).
    gateway
        .batch_execute(
            "CREATE TEMP TABLE pg_authid AS SELECT * FROM pg_catalog.pg_roles WHERE false;
             INSERT INTO pg_temp.pg_authid (rolname, rolcanlogin, rolsuper, rolpassword)
               VALUES ('ghost', true, false, 'SCRAM-SHA-256$4096:fake');
             CREATE FUNCTION public.starts_with(text, text) RETURNS boolean
               LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION pg_temp.starts_with(text, text) RETURNS boolean
               LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION public.now() RETURNS timestamptz
               LANGUAGE sql AS $$ SELECT '1999-01-01'::timestamptz $$;
             CREATE FUNCTION pg_temp.now() RETURNS timestamptz
               LANGUAGE sql AS $$ SELECT '1999-01-01'::timestamptz $$;
             SET search_path = public, pg_temp, pg_catalog;",
        )
        .await
        .unwrap();
    assert_eq!(secret(&gateway, "ghost").await, None);
    assert_eq!(secret(&gateway, "expired").await, None);
    assert_eq!(
        secret(&gateway, "legacy").await,
        Some(("md5".to_owned(), None))
    );
    assert_eq!(
        kind(&gateway, "ana").await.as_deref(),
        Some("scram-sha-256")
    );
    // Its definition is the one installed: owned by the owner, with its fixed path.
    let facts = cluster
        .psql(
            "SELECT p.proowner::regrole::text, p.prosecdef, p.proconfig::text,
                    has_function_privilege('public', p.oid, 'EXECUTE')
             FROM pg_proc p WHERE p.oid = 'curfew.gateway_secret(text)'::regprocedure",
        )
        .unwrap();
    assert_eq!(
        facts,
        "curfew_gateway_auth|t|{\"search_path=pg_catalog, pg_temp\"}|f"
    );
    let owner = cluster
        .psql("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'curfew_gateway_auth'")
        .unwrap();
    assert_eq!(owner, "f|f");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_superuser_admin_is_told_what_to_do_and_a_missing_role_is_refused() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-admin");
    let mut admin = curfew_as(&cluster, &dir, "admin_x").await;
    let outcome = admin
        .install_gateway_auth(&settings(None, false))
        .await
        .unwrap();
    assert!(!outcome.installed);
    assert_eq!(outcome.notes.len(), 1);
    assert!(
        outcome.notes[0].contains("only a superuser can read")
            && outcome.notes[0].contains("--admin-user postgres"),
        "{:?}",
        outcome.notes
    );
    assert_eq!(
        cluster
            .psql("SELECT to_regprocedure('curfew.gateway_secret(text)') IS NULL")
            .unwrap(),
        "t"
    );

    let mut superuser = curfew_as(&cluster, &dir, "postgres").await;
    // Before the ledger: no schema to live in.
    let e = superuser
        .install_gateway_auth(&settings(None, false))
        .await
        .unwrap_err();
    assert!(matches!(e, PgError::Install { .. }), "{e}");
    assert!(e.to_string().contains("install the ledger first"), "{e}");
    superuser.install_ledger("curfew_agent").await.unwrap();
    let mut missing = settings(Some("no such group"), false);
    missing.gateway_role = "no such gateway".to_owned();
    let e = superuser.install_gateway_auth(&missing).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("there is no role named \"no such gateway\""),
        "{e}"
    );
    // A missing group is a note: the function serves no one until it exists.
    let installed = superuser
        .install_gateway_auth(&settings(Some("no such group"), false))
        .await
        .unwrap();
    assert!(installed.installed && installed.owner_created);
    assert!(
        installed.notes[0].contains("serves no one"),
        "{installed:?}"
    );
    let gateway = login(&cluster, GATEWAY).await;
    assert_eq!(secret(&gateway, "ana").await, None);
    // A member of the owner could act as it: refused.
    cluster.psql("GRANT curfew_gateway_auth TO other").unwrap();
    let e = superuser
        .install_gateway_auth(&settings(None, false))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has members"), "{e}");
}

/// Installs as the superuser and returns the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_role_is_never_served_and_may_have_no_members() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-self");
    install(&cluster, &dir, &settings(None, false)).await;
    let gateway = login(&cluster, GATEWAY).await;
    assert_eq!(secret(&gateway, GATEWAY).await, None);
    assert!(secret(&gateway, "ana").await.is_some());
    cluster.psql("GRANT \"gate\"\"way'\\\" TO other").unwrap();
    let e = install_fails(&cluster, &dir, &settings(None, false)).await;
    assert!(
        e.contains("(the gateway's own role) has members") && e.contains("other"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_group_named_outside_latin1_breaks_no_login_in_a_latin1_database() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-latin1");
    cluster
        .psql(
            "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C';
             CREATE ROLE \"zespół\" NOLOGIN;
             GRANT \"zespół\" TO ana;",
        )
        .unwrap();
    let file = dir.password_file(PASSWORD);
    let mut admin = curfew_postgres::connect(&spec(&cluster.url("postgres", "latin"), Some(file)))
        .await
        .unwrap()
        .connection;
    admin.install_ledger("curfew_agent").await.unwrap();
    let installed = admin
        .install_gateway_auth(&settings(Some("zespół"), false))
        .await
        .unwrap();
    assert!(installed.installed, "{installed:?}");
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port())
        .user(GATEWAY)
        .password(PASSWORD)
        .dbname("latin")
        .connect(NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The name cannot be held in LATIN1: the function answers (nobody is served) rather than
    // failing every login with a conversion error.
    assert_eq!(secret(&client, "ana").await, None);
    assert_eq!(secret(&client, "other").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_one_row_with_a_mock_salt_kept_across_installs_and_the_servers_iterations()
{
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-mock");
    install(&cluster, &dir, &settings(None, false)).await;
    let gateway = login(&cluster, GATEWAY).await;
    let (kind, verifier, salt, iterations) = answer(&gateway, "nobody").await;
    assert_eq!((kind.as_str(), verifier), ("mock", None));
    assert_eq!(salt.len(), 24, "16 bytes of base64: {salt}");
    // The server's default count (what a real verifier made now has).
    let real = secret(&gateway, "ana").await.unwrap().1.unwrap();
    assert!(
        real.starts_with(&format!("SCRAM-SHA-256${iterations}:")),
        "{real}"
    );
    // A different name, a different salt; the same name, the same salt, installing again too.
    assert_ne!(answer(&gateway, "nobody2").await.2, salt);
    install(&cluster, &dir, &settings(Some(GROUP), false)).await;
    let again = login(&cluster, GATEWAY).await;
    assert_eq!(answer(&again, "nobody").await.2, salt);
    // A served role's MD5 secret, and a role not served, carry a mock salt too.
    assert_eq!(answer(&again, "legacy").await.0, "mock", "not in the group");
    // The key is the owner's to read, nobody else's (the gateway's role included).
    for role in [GATEWAY, "curfew_agent"] {
        let client = login(&cluster, role).await;
        assert_eq!(
            refused(&client, "SELECT key FROM curfew.gateway_mock_key").await,
            "42501",
            "{role}"
        );
    }
    let version: i32 = cluster
        .psql("SHOW server_version_num")
        .unwrap()
        .parse()
        .unwrap();
    if version >= 160_000 {
        cluster
            .psql("ALTER SYSTEM SET scram_iterations = 5000; SELECT pg_reload_conf();")
            .unwrap();
        let fresh = login(&cluster, GATEWAY).await;
        assert_eq!(answer(&fresh, "nobody").await.3, 5000);
        assert_eq!(answer(&fresh, "nobody").await.2, salt);
    } else {
        assert_eq!(
            iterations, 4096,
            "PostgreSQL {version} has no scram_iterations"
        );
        eprintln!(
            "PostgreSQL {version}: no scram_iterations before 16; the changed count is tested with CURFEW_PG_BIN set to 16 or later"
        );
    }
}
