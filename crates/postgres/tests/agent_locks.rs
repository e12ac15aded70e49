//! Login locks on a real server: windows lock and restore logins on time, a role that was
//! NOLOGIN before stays so, odd names work, two reasons hold a lock, drift is corrected,
//! incident locks reach standbys; all with curfew's role at least privilege (no CREATEROLE:
//! login changes go through the functions `curfew init` installs), which refuse protected
//! roles; and a ledger curfew may not read is one record, never a leadership flap.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "agent_common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use curfew_sandbox::Cluster;

const WEIRD: &str = "we\"ird röle";

/// The README's recipe: curfew_agent at least privilege (pg_read_all_stats and
/// pg_signal_backend only), the roles made by the superuser, and `curfew init` as the superuser.
async fn lock_cluster() -> Cluster {
    let cluster = cluster_with(Default::default());
    cluster
        .psql(
            "CREATE ROLE ana LOGIN;
             CREATE ROLE \"we\"\"ird röle\" LOGIN;
             CREATE ROLE dormant NOLOGIN;",
        )
        .unwrap();
    let spec = curfew_postgres::TargetSpec {
        name: "test".into(),
        url: curfew_postgres::ConnectionUrl::parse(&cluster.url("postgres", "postgres")).unwrap(),
        password_file: None,
    };
    let mut admin = curfew_postgres::connect(&spec).await.unwrap().connection;
    admin.install_ledger("curfew_agent").await.unwrap();
    cluster
}

/// Whether a role can log in, as the catalog says.
fn can_login(cluster: &Cluster, role: &str) -> bool {
    let sql = format!(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{}'",
        role.replace('\'', "''")
    );
    cluster.psql(&sql).unwrap() == "t"
}

fn ledger_rows(cluster: &Cluster) -> String {
    cluster
        .psql("SELECT string_agg(role_name, ',' ORDER BY role_name) FROM curfew.disabled_login")
        .unwrap()
}

async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn events(agent_audit: &std::path::Path) -> Vec<String> {
    curfew_audit::read(agent_audit)
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_locks_logins_then_restores_them_and_never_enables_a_dormant_role() {
    let cluster = lock_cluster().await;
    let dir = scratch("window-lock");
    let mut ana = connect(&cluster, "ana", "psql").await;
    // A deny window from a minute ago until 10 seconds from now.
    let now = jiff::Timestamp::now();
    let until = now + jiff::SignedDuration::from_secs(10);
    let text = format!(
        "[[rule]]\nname = \"maintenance\"\ndeny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"ana\", \"dormant\", {WEIRD:?}]\n",
        stamp(now - jiff::SignedDuration::from_mins(1)),
        stamp(until)
    );
    let mut agent = Agent::start(policy(&cluster, &text), &dir).await;

    // Locked: sessions ended, logins off, the dormant role untouched (no ledger row).
    assert!(ana.ended_within(Duration::from_secs(5)).await.is_some());
    wait_until("logins disabled", Duration::from_secs(5), || {
        !can_login(&cluster, "ana") && !can_login(&cluster, WEIRD)
    })
    .await;
    assert_eq!(ledger_rows(&cluster), format!("ana,{WEIRD}"));
    let refused = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=ana dbname=postgres",
            cluster.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .err()
    .expect("ana could log in during the window");
    let said = refused
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(said.contains("not permitted to log in"), "{said}");

    // The window ends by itself: logins come back, within seconds of its end (loosely: the test polls with psql).
    wait_until("logins restored", Duration::from_secs(15), || {
        can_login(&cluster, "ana") && can_login(&cluster, WEIRD)
    })
    .await;
    let late = jiff::Timestamp::now().duration_since(until);
    assert!(
        late < jiff::SignedDuration::from_secs(3),
        "restored {late:?} after the window"
    );
    assert!(
        !can_login(&cluster, "dormant"),
        "a role that was NOLOGIN before was enabled"
    );
    assert_eq!(ledger_rows(&cluster), "");
    let mut again = connect(&cluster, "ana", "psql").await;
    let mut weird = connect(&cluster, WEIRD, "psql").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!again.is_ended() && !weird.is_ended());

    let audit = agent.audit_path.clone();
    agent.ready().await;
    agent.stop().await;
    let recorded = events(&audit);
    let count = |e: &str| recorded.iter().filter(|r| *r == e).count();
    assert_eq!(count("login_locked"), 2, "{recorded:?}");
    assert_eq!(count("login_restored"), 2, "{recorded:?}");
    assert_eq!(count("lock_created"), 3, "{recorded:?}");
    assert_eq!(count("lock_released"), 3, "{recorded:?}");
    assert_eq!(count("login_change_intent"), 4, "{recorded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reasons_keep_a_role_locked_until_both_are_gone_and_drift_is_corrected() {
    let cluster = lock_cluster().await;
    let dir = scratch("two-reasons");
    let now = jiff::Timestamp::now();
    let window = format!(
        "[[rule]]\nname = \"night\"\ndeny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"ana\"]\n",
        stamp(now - jiff::SignedDuration::from_mins(1)),
        stamp(now + jiff::SignedDuration::from_hours(1))
    );
    let agent = Agent::start(policy(&cluster, &window), &dir).await;
    wait_until("the window lock", Duration::from_secs(5), || {
        !can_login(&cluster, "ana")
    })
    .await;

    // An incident lock on top, recorded as `curfew lock` records it.
    let (ledger, ana) = ledger_and_role(&cluster, "ana").await;
    ledger
        .create_incident_lock(&ana, "INC-1: suspicious queries", "tester@host", None)
        .await
        .unwrap();

    // Drift: someone turns the login back on by hand; the agent turns it off again.
    cluster.psql("ALTER ROLE ana LOGIN").unwrap();
    wait_until("drift corrected", Duration::from_secs(5), || {
        !can_login(&cluster, "ana")
    })
    .await;

    // Lifting the incident lock while the window is still closed leaves the role locked.
    ledger
        .release_incident_lock(ana.oid, "tester@host")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !can_login(&cluster, "ana"),
        "lifting one reason of two unlocked the role"
    );

    // Removing the window rule (a reload) lifts the last reason.
    agent
        .policy
        .send(std::sync::Arc::new(policy(&cluster, "")))
        .unwrap();
    wait_until("login restored", Duration::from_secs(5), || {
        can_login(&cluster, "ana")
    })
    .await;

    let audit = agent.audit_path.clone();
    agent.stop().await;
    let recorded = events(&audit);
    assert!(
        recorded.iter().any(|e| e == "lock_drift_corrected"),
        "{recorded:?}"
    );
    assert_eq!(recorded.iter().filter(|e| *e == "lock_created").count(), 2);
    assert_eq!(recorded.iter().filter(|e| *e == "lock_released").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_lock_ends_sessions_on_a_standby_too() {
    let primary = lock_cluster().await;
    let standby = lock_cluster().await;
    let dir = scratch("standby");
    let text = format!(
        "[[target]]\nname = \"replica\"\nurl = \"{}\"\nstandby = true\n",
        standby.url("curfew_agent", "postgres")
    );
    let mut on_standby = connect(&standby, "ana", "psql").await;
    let mut agent = Agent::start(policy(&primary, &text), &dir).await;
    agent.ready().await;
    let (ledger, ana) = ledger_and_role(&primary, "ana").await;
    ledger
        .create_incident_lock(&ana, "INC-2: stolen laptop", "tester@host", None)
        .await
        .unwrap();
    assert!(
        on_standby
            .ended_within(Duration::from_secs(15))
            .await
            .is_some(),
        "the standby session survived the lock"
    );
    assert!(!can_login(&primary, "ana"));
    assert!(
        can_login(&standby, "ana"),
        "a standby is read-only: its roles are not altered"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_curfew_never_locks_are_refused_and_others_locked_without_createrole() {
    let cluster = lock_cluster().await;
    // Made by the superuser: curfew's role holds nothing on them, on any version.
    cluster
        .psql("CREATE ROLE outsider LOGIN; CREATE ROLE admin_x LOGIN CREATEROLE;")
        .unwrap();
    let dir = scratch("protected");
    let text = format!(
        "[[rule]]\nname = \"closed\"\ndeny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"outsider\", \"admin_x\"]\n",
        stamp(jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1)),
        stamp(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1))
    );
    let agent = Agent::start(policy(&cluster, &text), &dir).await;
    let audit = agent.audit_path.clone();
    wait_until("the lock", Duration::from_secs(5), || {
        !can_login(&cluster, "outsider")
    })
    .await;
    let mut failure = None;
    for _ in 0..25 {
        failure = curfew_audit::read(&audit)
            .unwrap()
            .into_iter()
            .filter_map(Result::ok)
            .find(|e| e.event == "login_change_failed");
        if failure.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let detail = failure
        .expect("no login_change_failed for the administrator")
        .detail
        .unwrap()
        .to_string();
    assert!(
        detail.contains("admin_x") && detail.contains("CREATEROLE"),
        "{detail}"
    );
    assert!(can_login(&cluster, "admin_x"));
    assert_eq!(
        cluster
            .psql("SELECT rolcreaterole FROM pg_roles WHERE rolname = 'curfew_agent'")
            .unwrap(),
        "f"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_curfew_may_not_read_is_one_record_and_no_leadership_flap() {
    // Least privilege, and a curfew schema someone else made: no lock rule in the policy.
    let cluster = cluster_with(Default::default());
    cluster
        .psql("CREATE SCHEMA curfew; CREATE TABLE curfew.lock (id int); CREATE TABLE curfew.disabled_login (role_oid oid);")
        .unwrap();
    let dir = scratch("no-access");
    let text = "[[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n";
    let mut kim = connect(&cluster, "kim", "psql").await;
    let mut agent = Agent::start(policy(&cluster, text), &dir).await;
    assert!(
        kim.ended_within(Duration::from_secs(10)).await.is_some(),
        "the idle session was not ended"
    );
    // Several rounds more: the ledger is not retried into a flap.
    for _ in 0..6 {
        agent.ready().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let audit = agent.audit_path.clone();
    agent.stop().await;
    let records: Vec<_> = curfew_audit::read(&audit)
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let count = |event: &str| records.iter().filter(|r| r.event == event).count();
    assert_eq!(count("leader_acquired"), 1, "{:?}", events(&audit));
    // (One leader_lost, at the stop.)
    assert!(count("leader_lost") <= 1, "{:?}", events(&audit));
    assert_eq!(count("session_terminated"), 1);
    let unavailable: Vec<_> = records
        .iter()
        .filter(|r| r.result.as_deref() == Some("ledger_unavailable"))
        .collect();
    assert_eq!(unavailable.len(), 1, "{:?}", events(&audit));
    let reason = unavailable[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("curfew init"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_lock_expires_by_itself() {
    let cluster = lock_cluster().await;
    let dir = scratch("expiry");
    let agent = Agent::start(policy(&cluster, ""), &dir).await;
    let (ledger, ana) = ledger_and_role(&cluster, "ana").await;
    // Long enough for the agent to apply it and the test to see it on a loaded machine.
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8);
    ledger
        .create_incident_lock(
            &ana,
            "INC-3: until the password is rotated",
            "tester@host",
            Some(until),
        )
        .await
        .unwrap();
    wait_until("the lock", Duration::from_secs(5), || {
        !can_login(&cluster, "ana")
    })
    .await;
    wait_until("the expiry", Duration::from_secs(10), || {
        can_login(&cluster, "ana")
    })
    .await;
    let late = jiff::Timestamp::now().duration_since(until);
    assert!(
        late < jiff::SignedDuration::from_secs(3),
        "restored {late:?} after the expiry"
    );
    let released = ledger.locks(true).await.unwrap();
    assert_eq!(released[0].released_by.as_deref(), Some("expired"));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_and_a_report_rule_change_no_login() {
    let cluster = lock_cluster().await;
    let now = jiff::Timestamp::now();
    let closed = format!(
        "deny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true",
        stamp(now - jiff::SignedDuration::from_mins(1)),
        stamp(now + jiff::SignedDuration::from_hours(1))
    );
    // A report-only rule on its own takes no lock.
    let dir = scratch("report-lock");
    let mut ana = connect(&cluster, "ana", "psql").await;
    let text =
        format!("[[rule]]\nname = \"staged\"\n{closed}\naction = \"report\"\nroles = [\"ana\"]\n");
    let mut agent = Agent::start(policy(&cluster, &text), &dir).await;
    agent.ready().await;
    agent.ready().await;
    assert!(can_login(&cluster, "ana") && !ana.is_ended());
    agent.stop().await;

    // A dry run of an enforcing rule plus an incident lock: still nothing changes.
    let dir = scratch("dry-run-lock");
    let (ledger, info) = ledger_and_role(&cluster, "ana").await;
    ledger
        .create_incident_lock(&info, "INC-4", "tester@host", None)
        .await
        .unwrap();
    let text = format!("[[rule]]\nname = \"enforced\"\n{closed}\nroles = [\"ana\"]\n");
    let options = curfew_agent::AgentOptions {
        dry_run: true,
        ..Default::default()
    };
    let mut agent = Agent::start_with(policy(&cluster, &text), &dir, options).await;
    agent.ready().await;
    agent.ready().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(can_login(&cluster, "ana"), "a dry run disabled a login");
    assert!(!ana.is_ended(), "a dry run ended a session");
    assert_eq!(ledger_rows(&cluster), "");
    let audit = agent.audit_path.clone();
    agent.stop().await;
    let recorded = events(&audit);
    assert!(
        recorded.iter().any(|e| e == "session_reported"),
        "{recorded:?}"
    );
    assert!(
        !recorded.iter().any(|e| e.starts_with("login_")),
        "{recorded:?}"
    );
}

/// Regression (issue 13, item 11): the endings of a window lock ignored `[exempt]`, so a backup
/// job exempt by role *and* application was ended with the locked role's other sessions. An
/// incident lock still ends every session of the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_session_survives_a_window_lock_but_not_an_incident_lock() {
    let cluster = lock_cluster().await;
    let dir = scratch("exempt-window-lock");
    let mut backup = connect(&cluster, "ana", "pg_dump").await;
    let mut human = connect(&cluster, "ana", "psql").await;
    let now = jiff::Timestamp::now();
    let text = format!(
        "[[exempt]]\nroles = [\"ana\"]\napplications = [\"pg_dump\"]\n\n\
         [[rule]]\nname = \"maintenance\"\ndeny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"ana\"]\n",
        stamp(now - jiff::SignedDuration::from_mins(1)),
        stamp(now + jiff::SignedDuration::from_mins(10))
    );
    let agent = Agent::start(policy(&cluster, &text), &dir).await;
    assert!(human.ended_within(Duration::from_secs(5)).await.is_some());
    wait_until("the login disabled", Duration::from_secs(5), || {
        !can_login(&cluster, "ana")
    })
    .await;
    // Several rounds with the login locked: the exempt backup goes on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!backup.is_ended(), "the exempt backup session was ended");

    let (ledger, ana) = ledger_and_role(&cluster, "ana").await;
    ledger
        .create_incident_lock(&ana, "INC-11: credentials leaked", "tester@host", None)
        .await
        .unwrap();
    assert!(
        backup.ended_within(Duration::from_secs(5)).await.is_some(),
        "an incident lock spared an exempt session"
    );
    agent.stop().await;
}
