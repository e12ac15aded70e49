//! The gateway auth function's owner and grants, on a real SCRAM server: the owner is no
//! superuser and reads only six columns of pg_authid, a pre-existing owner holding anything else
//! is refused, and default privileges leave EXECUTE to the owner and the gateway role alone.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "gateway_auth_fixtures/mod.rs"]
mod fixtures;

use common::TempDir;
use fixtures::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_no_superuser_reads_six_columns_of_pg_authid_and_an_old_superuser_owner_is_demoted()
 {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-owner");
    // An earlier install made it a superuser: demoted, and the function still works.
    cluster
        .psql("CREATE ROLE curfew_gateway_auth NOLOGIN SUPERUSER")
        .unwrap();
    install(&cluster, &dir, &settings(None, false)).await;
    let facts = cluster
        .psql(
            "SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
                    has_table_privilege('curfew_gateway_auth', 'pg_authid', 'SELECT'),
                    has_column_privilege('curfew_gateway_auth', 'pg_authid', 'rolpassword', 'SELECT'),
                    has_column_privilege('curfew_gateway_auth', 'pg_authid', 'rolcreaterole', 'SELECT'),
                    has_column_privilege('curfew_gateway_auth', 'pg_authid', 'rolpassword', 'UPDATE')
             FROM pg_roles WHERE rolname = 'curfew_gateway_auth'",
        )
        .unwrap();
    assert_eq!(facts, "f|f|f|f|f|f|f|t|f|f");
    let gateway = login(&cluster, GATEWAY).await;
    assert_eq!(
        kind(&gateway, "ana").await.as_deref(),
        Some("scram-sha-256")
    );
    assert_eq!(
        kind(&gateway, "future").await.as_deref(),
        Some("scram-sha-256")
    );
    assert_eq!(secret(&gateway, "expired").await, None);
    // Installing again over its own install is accepted.
    install(&cluster, &dir, &settings(Some(GROUP), false)).await;
    assert_eq!(
        kind(&gateway, OBRIEN).await.as_deref(),
        Some("scram-sha-256")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_existing_owner_that_holds_anything_else_is_refused_by_name() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-squat");
    cluster
        .psql(
            "CREATE ROLE curfew_gateway_auth NOLOGIN;
             CREATE TABLE public.planted (x int);
             ALTER TABLE public.planted OWNER TO curfew_gateway_auth;",
        )
        .unwrap();
    let e = install_fails(&cluster, &dir, &settings(None, false)).await;
    assert!(
        e.contains("curfew_gateway_auth exists and holds more")
            && e.contains("owner of table planted")
            && e.contains("DROP OWNED BY \"curfew_gateway_auth\""),
        "{e}"
    );
    // A function it owns, before curfew's function exists (its allowance must not hide it).
    cluster
        .psql(
            "DROP TABLE public.planted;
             CREATE FUNCTION public.planted_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
             ALTER FUNCTION public.planted_fn() OWNER TO curfew_gateway_auth;",
        )
        .unwrap();
    let e = install_fails(&cluster, &dir, &settings(None, false)).await;
    assert!(e.contains("owner of function planted_fn()"), "{e}");
    cluster
        .psql(
            "DROP FUNCTION public.planted_fn();
             GRANT SELECT ON pg_catalog.pg_class TO curfew_gateway_auth;",
        )
        .unwrap();
    let e = install_fails(&cluster, &dir, &settings(None, false)).await;
    assert!(e.contains("privileges on table pg_class"), "{e}");
    cluster
        .psql(
            "REVOKE SELECT ON pg_catalog.pg_class FROM curfew_gateway_auth;
             ALTER ROLE curfew_gateway_auth SET search_path = public;",
        )
        .unwrap();
    let e = install_fails(&cluster, &dir, &settings(None, false)).await;
    assert!(e.contains("settings (ALTER ROLE ... SET)"), "{e}");
    cluster
        .psql(
            "ALTER ROLE curfew_gateway_auth RESET ALL;
             GRANT pg_read_all_stats TO curfew_gateway_auth;",
        )
        .unwrap();
    let e = install_fails(&cluster, &dir, &settings(None, false)).await;
    assert!(e.contains("member of role pg_read_all_stats"), "{e}");
    // Nothing left but the role: accepted, and it stays no superuser.
    cluster
        .psql("REVOKE pg_read_all_stats FROM curfew_gateway_auth")
        .unwrap();
    install(&cluster, &dir, &settings(None, false)).await;
    assert_eq!(
        cluster
            .psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'curfew_gateway_auth'")
            .unwrap(),
        "f"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_privileges_leave_execute_to_the_owner_and_the_gateway_role_alone() {
    let cluster = cluster();
    let dir = TempDir::new("pg-it", "gw-auth-defacl");
    let mut admin = curfew_as(&cluster, &dir, "postgres").await;
    admin.install_ledger("curfew_agent").await.unwrap();
    cluster
        .psql(
            "ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO other WITH GRANT OPTION;
             ALTER DEFAULT PRIVILEGES IN SCHEMA curfew GRANT EXECUTE ON FUNCTIONS TO curfew_agent;",
        )
        .unwrap();
    install(&cluster, &dir, &settings(None, false)).await;
    for role in ["other", "curfew_agent"] {
        let client = login(&cluster, role).await;
        assert_eq!(
            refused(&client, "SELECT * FROM curfew.gateway_secret('ana')").await,
            "42501",
            "{role}"
        );
    }
    let acl = cluster
        .psql(
            "SELECT string_agg(COALESCE(r.rolname, '-') || ':' || e.privilege_type, ',' ORDER BY 1)
             FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) e
             LEFT JOIN pg_roles r ON r.oid = e.grantee
             WHERE p.oid = 'curfew.gateway_secret(text)'::regprocedure",
        )
        .unwrap();
    assert_eq!(acl, "curfew_gateway_auth:EXECUTE,gate\"way'\\:EXECUTE");
}
