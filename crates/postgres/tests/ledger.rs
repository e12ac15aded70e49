//! The login-lock ledger as `curfew init` installs it, on a real server: curfew's role holds no
//! CREATEROLE (so no way to `pg_execute_server_program` on PostgreSQL 14/15), writes only through
//! the functions, which refuse protected roles even when called directly and refuse a deposed
//! leader; an older ledger is upgraded in place; a schema curfew may not enter is no error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use curfew_postgres::{LedgerProblem as _, LedgerStatus, LoginChange, PgError, RoleInfo};
use curfew_sandbox::Cluster;
use tokio_postgres::Client;

const WEIRD: &str = "we\"ird röle";

/// The README's recipe: curfew_agent with pg_read_all_stats and pg_signal_backend only, then
/// `curfew init` as the superuser. Plus roles to lock and to protect.
async fn recipe() -> Cluster {
    let cluster = curfew_testkit::cluster_with_agent_role(
        "CREATE ROLE ana LOGIN;
             CREATE ROLE \"we\"\"ird röle\" LOGIN;
             CREATE ROLE dormant NOLOGIN;
             CREATE ROLE admin_x LOGIN CREATEROLE;
             CREATE ROLE deputy LOGIN IN ROLE admin_x;",
    );
    let mut admin = connect_trust(&cluster, "postgres").await;
    let installed = admin.install_ledger("curfew_agent").await.unwrap();
    assert!(!installed.schema_existed);
    cluster
}

/// The SQLSTATE of a statement that must fail.
async fn refused(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded"),
        Err(e) => e.code().unwrap().code().to_owned(),
    }
}

async fn role(connection: &curfew_postgres::Connection, name: &str) -> RoleInfo {
    connection
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
}

fn can_login(cluster: &Cluster, name: &str) -> bool {
    let sql = format!(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{}'",
        name.replace('\'', "''")
    );
    cluster.psql(&sql).unwrap() == "t"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curfews_role_cannot_reach_a_shell_and_the_functions_refuse_protected_roles() {
    let cluster = recipe().await;
    let agent = client(cluster.port(), "curfew_agent", "stolen").await;
    // The escalation CREATEROLE allowed on PostgreSQL 14/15: closed.
    assert_eq!(
        refused(
            &agent.client,
            "GRANT pg_execute_server_program TO curfew_agent"
        )
        .await,
        "42501"
    );
    assert_eq!(
        refused(&agent.client, "COPY (SELECT 1) TO PROGRAM 'true'").await,
        "42501"
    );
    // No direct write, and not the table lock that serializes login changes.
    for sql in [
        "INSERT INTO curfew.lock (role_oid, role_name, kind, reason, created_by)
         SELECT oid, rolname, 'incident', 'x', 'x' FROM pg_roles WHERE rolname = 'postgres'",
        "DELETE FROM curfew.disabled_login",
        "BEGIN; LOCK TABLE curfew.disabled_login IN SHARE ROW EXCLUSIVE MODE",
        "ALTER ROLE ana NOLOGIN",
    ] {
        let _ = agent.client.batch_execute("ROLLBACK").await;
        assert_eq!(refused(&agent.client, sql).await, "42501", "{sql}");
    }
    let _ = agent.client.batch_execute("ROLLBACK").await;
    // Another login role sees nothing.
    let ana = client(cluster.port(), "ana", "psql").await;
    assert_eq!(
        refused(&ana.client, "SELECT * FROM curfew.lock").await,
        "42501"
    );
    assert_eq!(
        refused(
            &ana.client,
            "SELECT curfew.create_incident_lock(10, 'x', 'x', NULL)"
        )
        .await,
        "42501"
    );
    // Owned by the NOLOGIN owner, SECURITY DEFINER with a fixed search_path, not PUBLIC's.
    let functions = cluster
        .psql(
            "SELECT count(*) FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
             WHERE p.pronamespace = 'curfew'::regnamespace AND o.rolname = 'curfew_owner'
               AND NOT o.rolcanlogin AND p.prosecdef
               AND p.proconfig = '{\"search_path=pg_catalog, pg_temp\"}'
               AND NOT has_function_privilege('ana', p.oid, 'EXECUTE')",
        )
        .unwrap();
    assert_eq!(functions, "9"); // the ledger's 8 and curfew.anchor

    // Called directly by curfew's role, with a live fence of its own: protected roles refused.
    let mut lock = connect_trust(&cluster, "curfew_agent").await;
    let leadership = lock.try_lead().await.unwrap().unwrap();
    let mut ledger = connect_trust(&cluster, "curfew_agent").await;
    ledger.fence(Some(leadership));
    assert_eq!(ledger.ledger_status().await.unwrap(), LedgerStatus::Ready);
    // What `curfew check` reads: all as installed, nothing more for curfew's role.
    let facts = ledger.ledger_facts().await.unwrap();
    assert_eq!(facts.schema_owner.as_deref(), Some("curfew_owner"));
    assert!(facts.current && !facts.owner_can_login);
    assert!(facts.agent_excess.is_empty(), "{facts:?}");
    assert_eq!(facts.functions.len(), 8);
    for f in &facts.functions {
        assert!(
            f.present
                && f.security_definer
                && f.fixed_search_path
                && !f.public_execute
                && f.agent_execute
                && f.owner.as_deref() == Some("curfew_owner"),
            "{f:?}"
        );
    }
    // deputy can SET ROLE admin_x: locking it would lock out an administrator.
    for name in [
        "postgres",
        "curfew_agent",
        "admin_x",
        "curfew_owner",
        "deputy",
    ] {
        let info = role(&ledger, name).await;
        let error = ledger
            .create_incident_lock(&info, "INC", "me@host", None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, PgError::LoginRefused { .. }),
            "{name}: {error}"
        );
        assert!(
            error
                .to_string()
                .contains("curfew does not change the login"),
            "{error}"
        );
    }
    // Even with a lock row planted in the ledger (by a superuser), the function refuses.
    cluster
        .psql(
            "INSERT INTO curfew.lock (role_oid, role_name, kind, reason, created_by)
             SELECT oid, rolname, 'incident', 'planted', 'x' FROM pg_roles
             WHERE rolname IN ('postgres', 'curfew_agent', 'admin_x')",
        )
        .unwrap();
    let sql = format!(
        "SELECT curfew.change_login(oid, true, {}, '{}') FROM pg_roles WHERE rolname = $1",
        leadership.pid, leadership.backend_start
    );
    for name in ["postgres", "curfew_agent", "admin_x"] {
        let error = agent.client.query_one(&sql, &[&name]).await.unwrap_err();
        assert_eq!(error.code().unwrap().code(), "CF002", "{name}: {error}");
        assert!(can_login(&cluster, name), "{name}");
        let oid = role(&ledger, name).await.oid;
        let error = ledger
            .disable_login(oid, &|_: &'static str| {})
            .await
            .unwrap_err();
        assert!(matches!(error, PgError::LoginRefused { .. }), "{error}");
    }

    // An ordinary role with an odd name: locked and restored, transactionally with its row.
    // Any login role may hold the advisory key login changes used to take: it blocks nothing
    // now, and the table lock that replaced it is not theirs to take.
    let weird = role(&ledger, WEIRD).await;
    simple_value(
        &ana.client,
        &format!(
            "select pg_advisory_lock(7166912342400000000 + {}::oid::bigint)",
            weird.oid
        ),
    )
    .await;
    assert_eq!(
        refused(
            &ana.client,
            "BEGIN; LOCK TABLE curfew.disabled_login IN ACCESS EXCLUSIVE MODE"
        )
        .await,
        "42501"
    );
    let _ = ana.client.batch_execute("ROLLBACK").await;
    let row = ledger
        .create_incident_lock(&weird, "INC-1", "me@host", None)
        .await
        .unwrap();
    assert_eq!(
        ledger
            .disable_login(weird.oid, &|_: &'static str| {})
            .await
            .unwrap(),
        LoginChange::Disabled
    );
    assert!(!can_login(&cluster, WEIRD));
    assert_eq!(ledger.locked_roles().await.unwrap().len(), 4);
    ledger.mark_announced(row.id).await.unwrap();
    ledger
        .release_incident_lock(weird.oid, "me@host")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ledger
            .restore_login(weird.oid, &|_: &'static str| {})
            .await
            .unwrap(),
        LoginChange::Restored
    );
    assert!(can_login(&cluster, WEIRD));
    // A role that was NOLOGIN before stays so.
    let dormant = role(&ledger, "dormant").await;
    ledger
        .create_incident_lock(&dormant, "INC-2", "me@host", None)
        .await
        .unwrap();
    assert_eq!(
        ledger
            .disable_login(dormant.oid, &|_: &'static str| {})
            .await
            .unwrap(),
        LoginChange::NotNeeded
    );
    ledger
        .release_incident_lock(dormant.oid, "me@host")
        .await
        .unwrap();
    assert_eq!(
        ledger
            .restore_login(dormant.oid, &|_: &'static str| {})
            .await
            .unwrap(),
        LoginChange::NotNeeded
    );
    assert!(!can_login(&cluster, "dormant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_fence_makes_the_functions_refuse() {
    let cluster = recipe().await;
    let mut ledger = connect_trust(&cluster, "curfew_agent").await;
    let ana = role(&ledger, "ana").await;
    ledger
        .create_incident_lock(&ana, "INC-3", "me@host", None)
        .await
        .unwrap();
    let noop = |_: &'static str| {};
    // No fence at all: only a leader writes.
    let error = ledger.disable_login(ana.oid, &noop).await.unwrap_err();
    assert!(error.is_not_leading(), "{error}");
    // Another role's live session is no fence.
    let other = client(cluster.port(), "ana", "psql").await;
    let mut probe = connect_trust(&cluster, "postgres").await;
    let session = find(&mut probe, other.pid).await.unwrap();
    ledger.fence(Some(curfew_postgres::Leadership {
        pid: i32::try_from(session.pid).unwrap(),
        backend_start: session.backend_start,
    }));
    let error = ledger.disable_login(ana.oid, &noop).await.unwrap_err();
    assert!(error.is_not_leading(), "{error}");

    // The leader's lock session ends behind its back: every write refuses.
    let mut lock = connect_trust(&cluster, "curfew_agent").await;
    let leadership = lock.try_lead().await.unwrap().unwrap();
    ledger.fence(Some(leadership));
    let killer = client(cluster.port(), "postgres", "killer").await;
    simple_value(
        &killer.client,
        &format!("select pg_terminate_backend({}, 5000)", leadership.pid),
    )
    .await;
    let error = ledger.disable_login(ana.oid, &noop).await.unwrap_err();
    assert!(error.is_not_leading(), "{error}");
    let error = ledger
        .sync_window_locks("closed", &[(ana.oid, "ana".to_owned())], "x")
        .await
        .unwrap_err();
    assert!(error.is_not_leading(), "{error}");
    for error in [
        ledger.expire_locks().await.map(drop).unwrap_err(),
        ledger.forget_dropped_roles().await.unwrap_err(),
        ledger.mark_announced(1).await.unwrap_err(),
        ledger
            .release_window_locks_except(&[])
            .await
            .map(drop)
            .unwrap_err(),
    ] {
        assert!(error.is_not_leading(), "{error}");
    }
    assert!(can_login(&cluster, "ana"));
    assert_eq!(
        cluster
            .psql("SELECT count(*) FROM curfew.lock WHERE kind = 'window'")
            .unwrap(),
        "0"
    );

    // The live leader acts.
    let mut lock = connect_trust(&cluster, "curfew_agent").await;
    ledger.fence(lock.try_lead().await.unwrap());
    assert_eq!(
        ledger.disable_login(ana.oid, &noop).await.unwrap(),
        LoginChange::Disabled
    );
    assert!(!can_login(&cluster, "ana"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_ledger_is_upgraded_by_init_and_keeps_its_rows() {
    let cluster = Cluster::start(Default::default()).unwrap_or_else(|e| panic!("{e}"));
    // The old recipe: CREATEROLE and a schema of its own.
    cluster
        .psql(
            "CREATE ROLE curfew_agent LOGIN CREATEROLE;
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE SCHEMA curfew AUTHORIZATION curfew_agent;
             CREATE ROLE ana LOGIN;",
        )
        .unwrap();
    let agent = client(cluster.port(), "curfew_agent", "old").await;
    if cluster.major_version() < 16 {
        // What the old recipe allowed: the hole this version closes.
        agent
            .client
            .batch_execute("GRANT pg_execute_server_program TO curfew_agent")
            .await
            .unwrap();
        cluster
            .psql("REVOKE pg_execute_server_program FROM curfew_agent")
            .unwrap();
    }
    agent
        .client
        .batch_execute(
            "CREATE TABLE curfew.lock (id bigserial PRIMARY KEY, role_oid oid NOT NULL,
                 role_name text NOT NULL, kind text NOT NULL, rule text, reason text NOT NULL,
                 created_by text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                 expires_at timestamptz, released_at timestamptz, released_by text,
                 announced_created boolean NOT NULL DEFAULT false,
                 announced_released boolean NOT NULL DEFAULT false);
             CREATE UNIQUE INDEX lock_one_active ON curfew.lock (role_oid, kind, coalesce(rule, ''))
                 WHERE released_at IS NULL;
             CREATE TABLE curfew.disabled_login (role_oid oid PRIMARY KEY, role_name text NOT NULL,
                 disabled_at timestamptz NOT NULL DEFAULT clock_timestamp());
             INSERT INTO curfew.lock (role_oid, role_name, kind, reason, created_by)
                 SELECT oid, rolname, 'incident', 'INC-old', 'me@host' FROM pg_roles
                 WHERE rolname = 'ana';",
        )
        .await
        .unwrap();
    let mut ledger = connect_trust(&cluster, "curfew_agent").await;
    assert_eq!(
        ledger.ledger_status().await.unwrap(),
        LedgerStatus::Outdated
    );
    let facts = ledger.ledger_facts().await.unwrap();
    assert!(!facts.current);
    assert!(
        facts
            .agent_excess
            .iter()
            .any(|e| e == "ownership of schema curfew")
            && facts
                .agent_excess
                .iter()
                .any(|e| e == "ownership on curfew.lock"),
        "{facts:?}"
    );
    let problem = LedgerStatus::Outdated
        .problem("t", "curfew_agent", false)
        .unwrap();
    assert!(problem.contains("curfew init"), "{problem}");
    // Readable: the agent still ends the sessions of locked roles.
    assert_eq!(ledger.locked_roles().await.unwrap().len(), 1);
    let ana = role(&ledger, "ana").await;
    let mut lock = connect_trust(&cluster, "curfew_agent").await;
    ledger.fence(lock.try_lead().await.unwrap());
    let error = ledger
        .disable_login(ana.oid, &|_: &'static str| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("curfew init"), "{error}");

    let mut admin = connect_trust(&cluster, "postgres").await;
    let installed = admin.install_ledger("curfew_agent").await.unwrap();
    assert!(installed.schema_existed);
    assert!(
        installed.notes.iter().any(|n| n.contains("NOCREATEROLE")),
        "{installed:?}"
    );
    assert_eq!(ledger.ledger_status().await.unwrap(), LedgerStatus::Ready);
    assert!(ledger.ledger_facts().await.unwrap().agent_excess.is_empty());
    assert_eq!(ledger.locks(false).await.unwrap()[0].reason, "INC-old");
    assert_eq!(
        refused(&agent.client, "DELETE FROM curfew.lock").await,
        "42501"
    );
    cluster
        .psql("ALTER ROLE curfew_agent NOCREATEROLE")
        .unwrap();
    assert_eq!(
        ledger
            .disable_login(ana.oid, &|_: &'static str| {})
            .await
            .unwrap(),
        LoginChange::Disabled
    );
    // Installing again changes nothing.
    admin.install_ledger("curfew_agent").await.unwrap();
    assert_eq!(ledger.ledger_status().await.unwrap(), LedgerStatus::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_curfew_may_not_enter_is_a_status_not_an_error() {
    let cluster = curfew_testkit::cluster_with_agent_role("");
    let ledger = connect_trust(&cluster, "curfew_agent").await;
    assert_eq!(ledger.ledger_status().await.unwrap(), LedgerStatus::Missing);
    assert!(!ledger.ledger_exists().await.unwrap());
    cluster
        .psql(
            "CREATE SCHEMA curfew;
             CREATE TABLE curfew.lock (id int);
             CREATE TABLE curfew.disabled_login (role_oid oid);",
        )
        .unwrap();
    assert_eq!(
        ledger.ledger_status().await.unwrap(),
        LedgerStatus::NoAccess
    );
    assert!(!ledger.ledger_exists().await.unwrap());
    // init refuses a role that is not an administrator, and says what to do.
    let mut not_admin = connect_trust(&cluster, "curfew_agent").await;
    let error = not_admin.install_ledger("curfew_agent").await.unwrap_err();
    assert!(error.to_string().contains("--admin-user"), "{error}");
}

/// Review of issue 13: `curfew init` took over whatever an existing `curfew` schema held. A
/// trigger planted by curfew's old role (which owned the schema up to version 1) would then run
/// as `curfew_owner`, a superuser on PostgreSQL 16 and later; a `curfew_owner` made beforehand
/// with a member would hand that member the owner's rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_a_schema_or_owner_role_it_cannot_trust() {
    let cluster = Cluster::start(Default::default()).unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "CREATE ROLE curfew_agent LOGIN CREATEROLE;
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE SCHEMA curfew AUTHORIZATION curfew_agent;
             CREATE SCHEMA mine AUTHORIZATION curfew_agent;",
        )
        .unwrap();
    let agent = client(cluster.port(), "curfew_agent", "old").await;
    agent
        .client
        .batch_execute(
            "CREATE TABLE curfew.disabled_login (role_oid oid PRIMARY KEY, role_name text NOT NULL,
                 disabled_at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE FUNCTION mine.payload() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER planted BEFORE INSERT ON curfew.disabled_login
                 FOR EACH ROW EXECUTE FUNCTION mine.payload();",
        )
        .await
        .unwrap();
    let mut admin = connect_trust(&cluster, "postgres").await;
    let error = admin.install_ledger("curfew_agent").await.unwrap_err();
    let said = error.to_string();
    assert!(
        said.contains("trigger planted on curfew.disabled_login"),
        "{said}"
    );
    assert!(matches!(error, PgError::Install { .. }), "{error:?}");
    // Nothing was handed over.
    assert_eq!(
        cluster
            .psql("SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'curfew'")
            .unwrap(),
        "curfew_agent"
    );

    cluster
        .psql(
            "DROP SCHEMA curfew CASCADE;
             CREATE ROLE mallory LOGIN; CREATE ROLE curfew_owner NOLOGIN;
             GRANT curfew_owner TO mallory;",
        )
        .unwrap();
    let said = admin
        .install_ledger("curfew_agent")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        said.contains("member mallory of role curfew_owner"),
        "{said}"
    );
    assert_eq!(
        cluster
            .psql("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = 'curfew_owner'")
            .unwrap(),
        "f"
    );
    cluster.psql("REVOKE curfew_owner FROM mallory").unwrap();
    admin.install_ledger("curfew_agent").await.unwrap();
}
