//! Session caps and memberships at the gateway's login (issue 17), through the real auth
//! function and admission claims: `max_sessions` counts the role's sessions on the server,
//! direct ones and those of every gateway instance, and concurrent logins through two
//! gateways never exceed it; a cap counts only the sessions in its scope and not exempt, as
//! the agent does; a claim answered too late is released, not left counting; a rule scoped by
//! `member_of` refuses a member (an indirect one too) and not others.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::logs::Captured;
use common::policy::{policy, until_count_is, wait_for_no_sessions};
use common::{ALICE_PASSWORD, Harness, Setup, login_error};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

/// dave, a member of night_shift through ops.
const NIGHT_SHIFT: &str = "SET password_encryption = 'scram-sha-256';
     CREATE ROLE night_shift NOLOGIN;
     CREATE ROLE ops NOLOGIN IN ROLE night_shift;
     CREATE ROLE dave LOGIN PASSWORD 'dave-secret' IN ROLE ops;";

/// A login as alice through the gateway at `addr` (plaintext), kept open while the client
/// lives.
async fn through(addr: SocketAddr) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("alice")
        .password(ALICE_PASSWORD)
        .dbname("postgres")
        .ssl_mode(SslMode::Disable);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A direct (plaintext) session as alice to `database`, its connection task beside it.
async fn direct(
    harness: &Harness,
    database: &str,
) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let mut direct = tokio_postgres::Config::new();
    direct
        .host("127.0.0.1")
        .port(harness.cluster.port())
        .user("alice")
        .password(ALICE_PASSWORD)
        .dbname(database)
        .ssl_mode(SslMode::Disable);
    let (client, connection) = direct.connect(NoTls).await.expect("a direct session");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

// Several threads, so the logins (and both gateways) really run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_sessions_holds_across_two_gateways_and_a_direct_session() {
    let harness = Harness::start(
        "login-caps",
        Setup {
            auth_function: true,
            // Plaintext on the server leg: gateway B and the direct session connect so.
            server_tls: false,
            ..Setup::default()
        },
    )
    .await;
    let caps = policy("[[rule]]\nname = \"two-at-most\"\nroles = [\"alice\"]\nmax_sessions = 2\n");
    harness.gateway.enforce(caps.clone());
    let (b, _stop_b) = harness.another_gateway_enforcing(Some(caps)).await;

    // A direct session and one through gateway A: a login through gateway B is the third.
    let (direct, direct_task) = direct(&harness, "postgres").await;
    let via_a = through(harness.addr)
        .await
        .expect("a session through gateway A");
    let (code, message) = login_error(through(b).await);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("two-at-most")
            && message.contains("session 3 of 3")
            && message.contains("limit 2"),
        "{message}"
    );
    // Through A too, and over TLS alike.
    let (tls_code, tls_message) = login_error(
        harness
            .tls(
                "alice",
                ALICE_PASSWORD,
                tokio_postgres::config::ChannelBinding::Prefer,
            )
            .await,
    );
    assert_eq!((tls_code, tls_message), (code, message));

    // Both gone: twelve logins at once, alternating gateways, admit exactly two.
    drop(direct);
    drop(via_a);
    let _ = direct_task.await;
    wait_for_no_sessions(&harness, "alice", Duration::from_secs(10)).await;
    let attempts = (0..12).map(|i| {
        let addr = if i % 2 == 0 { harness.addr } else { b };
        tokio::spawn(through(addr))
    });
    let mut admitted = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.expect("the login task") {
            Ok(client) => admitted.push(client),
            Err(e) => {
                let (code, message) = login_error(Err(e));
                assert_eq!(code, "28000", "{message}");
                refused += 1;
            }
        }
    }
    assert_eq!((admitted.len(), refused), (2, 10));
}

#[tokio::test]
async fn a_cap_scoped_to_one_database_does_not_count_another_databases_sessions() {
    let harness = Harness::start(
        "login-caps-scoped",
        Setup {
            auth_function: true,
            server_tls: false,
            ..Setup::default()
        },
    )
    .await;
    harness
        .cluster
        .psql("CREATE DATABASE app; CREATE DATABASE reporting;")
        .expect("databases");
    harness.gateway.enforce(policy(
        "[exempt]\napplications = [\"backup-*\"]\n\n\
         [[rule]]\nname = \"reporting-two\"\nmax_sessions = 2\ndatabases = [\"reporting\"]\n",
    ));
    let to_reporting = |application: &str| {
        let mut config = harness.config("alice", ALICE_PASSWORD);
        config
            .dbname("reporting")
            .application_name(application)
            .ssl_mode(SslMode::Disable);
        async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, tokio_postgres::Error>(client)
        }
    };
    // Two sessions in app, outside the cap's scope: the first login to reporting is admitted.
    let _app = [direct(&harness, "app").await, direct(&harness, "app").await];
    let first = to_reporting("psql")
        .await
        .expect("a first session in reporting");
    // An exempt session in reporting does not count either.
    let backup = to_reporting("backup-nightly")
        .await
        .expect("an exempt session");
    let second = to_reporting("psql")
        .await
        .expect("a second session in reporting");
    let (code, message) = login_error(to_reporting("psql").await);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("reporting-two")
            && message.contains("session 3 of 3")
            && message.contains("limit 2"),
        "{message}"
    );
    for client in [&first, &backup, &second] {
        client.simple_query("SELECT 1").await.expect("still served");
    }
}

#[tokio::test]
async fn a_claim_function_from_an_earlier_install_fails_open_and_says_to_run_init_again() {
    let captured = Captured::install();
    let harness = Harness::start(
        "login-caps-old-claim",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    // A curfew upgraded without `curfew init`: the server keeps the earlier function.
    harness
        .cluster
        .psql(
            "DROP FUNCTION curfew.claim_gateway_admission(text, text, text, inet, uuid);
             CREATE FUNCTION curfew.claim_gateway_admission(p_role text)
                 RETURNS TABLE (claim uuid, live int4) LANGUAGE sql AS 'SELECT NULL::uuid, 0';",
        )
        .expect("the earlier function");
    harness.gateway.enforce(policy(
        "[[rule]]\nname = \"one\"\nroles = [\"alice\"]\nmax_sessions = 1\n",
    ));
    let _first = harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("admitted");
    let _second = harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("admitted uncounted: the agent still ends it");
    let logged = captured.text();
    assert!(
        logged.contains("max_sessions is not checked at this login")
            && logged.contains("run curfew init again"),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_answered_after_the_gateway_stopped_waiting_is_released_not_left_counting() {
    let harness = Harness::start(
        "login-caps-late-claim",
        Setup {
            auth_function: true,
            // The product's: the gateway stops waiting after it.
            registry_timeout: curfew_gateway::REGISTRY_CALL_TIMEOUT,
            ..Setup::default()
        },
    )
    .await;
    harness.gateway.enforce(policy(
        "[[rule]]\nname = \"one\"\nroles = [\"alice\"]\nmax_sessions = 1\n",
    ));
    // alice's gate row, held by another transaction: her next claim waits for it.
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(harness.cluster.socket_dir())
        .port(harness.cluster.port())
        .user(harness.cluster.superuser())
        .dbname("postgres");
    let (mut holder, connection) = config.connect(NoTls).await.expect("superuser");
    tokio::spawn(connection);
    holder
        .batch_execute(
            "INSERT INTO curfew.gateway_admission_gate VALUES ('alice'::regrole) ON CONFLICT DO NOTHING",
        )
        .await
        .expect("the gate row");
    let hold = holder.transaction().await.expect("a transaction");
    hold.batch_execute(
        "SELECT 1 FROM curfew.gateway_admission_gate WHERE role_oid = 'alice'::regrole FOR UPDATE",
    )
    .await
    .expect("the gate held");
    // The gateway stops waiting after 2 s and admits the login uncounted (said in its log).
    let first = tokio::time::timeout(
        Duration::from_secs(20),
        harness.plain("alice", ALICE_PASSWORD),
    )
    .await
    .expect("the login does not wait for the gate")
    .expect("admitted uncounted");
    // The claim still runs once the gate is free, then its release, queued behind it.
    hold.commit().await.expect("the gate released");
    until_count_is(
        &harness,
        "SELECT count(*) FROM curfew.gateway_admissions",
        0,
    )
    .await;
    // With the late claim gone, the cap counts the one live session only.
    let (code, message) = login_error(harness.plain("alice", ALICE_PASSWORD).await);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("session 2 of 2") && message.contains("limit 1"),
        "{message}"
    );
    drop(first);
    wait_for_no_sessions(&harness, "alice", Duration::from_secs(10)).await;
    harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("admitted once the first has gone");
}

#[tokio::test]
async fn a_member_of_rule_refuses_members_at_the_gateway_and_not_others() {
    let harness = Harness::start(
        "login-member-of",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    harness.cluster.psql(NIGHT_SHIFT).expect("roles");
    harness.gateway.enforce(common::policy::deny_now(
        "night-only",
        "member_of = [\"night_shift\"]",
    ));
    let (code, message) = login_error(harness.plain("dave", "dave-secret").await);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.starts_with("logins for role dave are closed by rule night-only until "),
        "{message}"
    );
    harness
        .plain("alice", ALICE_PASSWORD)
        .await
        .expect("alice is no member");
}

#[tokio::test]
async fn a_member_of_rule_times_a_members_gateway_session_and_not_others() {
    let harness = Harness::start(
        "timer-member-of",
        Setup {
            auth_function: true,
            ..Setup::default()
        },
    )
    .await;
    harness.cluster.psql(NIGHT_SHIFT).expect("roles");
    harness.gateway.enforce(policy(
        "[[rule]]\nname = \"night-idle\"\nmember_of = [\"night_shift\"]\nidle = \"2s\"\n",
    ));
    let connect = |user: &'static str, password: &'static str| {
        let config = harness.config(user, password);
        async move {
            let (client, connection) = config
                .connect(NoTls)
                .await
                .unwrap_or_else(|e| panic!("{user}: {e}"));
            (client, tokio::spawn(connection))
        }
    };
    let (dave, dave_connection) = connect("dave", "dave-secret").await;
    let (alice, _alice_connection) = connect("alice", ALICE_PASSWORD).await;
    dave.simple_query("SELECT 1").await.expect("dave's query");
    alice.simple_query("SELECT 1").await.expect("alice's query");
    let ended = tokio::time::timeout(Duration::from_secs(10), dave_connection)
        .await
        .expect("dave's session ends")
        .expect("the connection task");
    let error = ended.expect_err("an error ends it");
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(db.code().code(), "57P05", "{db:?}");
    assert!(
        db.message().contains("(rule night-idle)"),
        "{}",
        db.message()
    );
    alice
        .simple_query("SELECT 1")
        .await
        .expect("alice, no member, is not timed by the rule");
}
