//! The login trigger (`curfew compile --dialect postgres --login-trigger`) applied to real
//! PostgreSQL 17 and 18 with curfew's ledger (`curfew init`'s): a role in a closed allow window
//! or an open deny window is refused with FATAL 28000 and the shared message; a role outside any
//! rule, an exempt role, the break-glass role and a superuser log in; an incident lock refuses;
//! with the ledger unreadable the trigger fails open or closed as compiled; the documented
//! recovery command drops it. A server below 17 refuses the script.
//!
//! PostgreSQL 17 and 18 come from `CURFEW_PG17_BIN` / `CURFEW_PG18_BIN` (.ci/run exports them
//! from scripts/pg-versions), else Debian's directories or scripts/pg-versions' cache; the
//! tests fail, naming the variable, when a version is missing.
#![allow(clippy::unwrap_used)]

use curfew_testkit::pg_bin;
use std::process::Command;

use curfew_compile::{LoginTriggerOptions, OnError, RefusalCause, WindowRule};
use curfew_sandbox::{Cluster, Options};
use jiff::civil::DateTime;
use jiff::{ToSpan, Zoned};
use tokio_postgres::error::{DbError, SqlState};

/// The rule's zone: not UTC, and not the sessions' (they set another to show it does not count).
const ZONE: &str = "Asia/Tokyo";

/// What the client sets as its session time zone.
const CLIENT_ZONE: &str = "America/Los_Angeles";

/// The policy, with windows placed around `now` (in [`ZONE`]): `after-hours` allows logins of
/// the members of `humans` only two days from now, 00:00-00:01; `maintenance` denies `dave`
/// from an hour ago to two hours from now; `freeze` denies `frank` once, from an hour ago to
/// 26 hours from now. Returns the policy text and when each opens again.
fn policy(now: &Zoned) -> (String, DateTime, DateTime, DateTime) {
    let day = |d: DateTime| {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            [usize::try_from(d.weekday().to_monday_zero_offset()).unwrap()]
    };
    let local = now.datetime();
    let allow_opens = local.date().checked_add(2.days()).unwrap().at(0, 0, 0, 0);
    let deny_from = local
        .checked_sub(1.hour())
        .unwrap()
        .round(jiff::Unit::Minute)
        .unwrap();
    let deny_to = deny_from.checked_add(3.hours()).unwrap();
    let freeze_to = deny_from.checked_add(27.hours()).unwrap();
    let text = format!(
        r#"
[[target]]
name = "primary"
url = "postgres://curfew_agent@localhost/postgres"

[exempt]
roles = ["backup"]

[[rule]]
name = "after-hours"
allow = ["{} 00:00-00:01"]
timezone = "{ZONE}"
member_of = ["humans"]
lock_logins = true

[[rule]]
name = "maintenance"
deny = ["{} {}-{}"]
timezone = "{ZONE}"
roles = ["dave"]
lock_logins = true

[[rule]]
name = "freeze"
deny = ["{} - {}"]
timezone = "{ZONE}"
roles = ["frank"]
lock_logins = true

[[rule]]
name = "banner"
deny = ["{} {}-{}"]
timezone = "{ZONE}"
roles = ["gina"]
lock_logins = true
message = "Closed 100% by O'Brien's $$ policy %s"
"#,
        day(allow_opens),
        day(deny_from),
        deny_from.strftime("%H:%M"),
        deny_to.strftime("%H:%M"),
        deny_from.strftime("%Y-%m-%d %H:%M"),
        freeze_to.strftime("%Y-%m-%d %H:%M"),
        day(deny_from),
        deny_from.strftime("%H:%M"),
        deny_to.strftime("%H:%M"),
    );
    (text, allow_opens, deny_to, freeze_to)
}

fn compile(text: &str, on_error: OnError) -> String {
    let policy = curfew_policy::parse_policy_with(
        "curfew.toml",
        text,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap()
    .policy;
    let options = LoginTriggerOptions {
        break_glass: Some("oncall".to_owned()),
        on_error,
    };
    curfew_compile::login_trigger(&policy, "curfew.toml", "0", &options)
}

/// A login as `role` over TCP, with the client's own session time zone: Ok, or the server's
/// error.
async fn login(cluster: &Cluster, role: &str) -> Result<(), Box<DbError>> {
    login_with(cluster, role, "").await
}

/// As [`login`], with more `-c` options.
async fn login_with(cluster: &Cluster, role: &str, options: &str) -> Result<(), Box<DbError>> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(cluster.port())
        .user(role)
        .dbname("postgres")
        .options(format!("-c TimeZone={CLIENT_ZONE} {options}"));
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            let driver = tokio::spawn(connection);
            client.simple_query("SELECT 1").await.unwrap();
            drop(client);
            driver.await.unwrap().unwrap();
            Ok(())
        }
        Err(e) => match e.as_db_error() {
            Some(db) => Err(Box::new(db.clone())),
            None => panic!("login as {role}: {e}"),
        },
    }
}

async fn refused(cluster: &Cluster, role: &str) -> String {
    let error = login(cluster, role)
        .await
        .expect_err(&format!("{role} should be refused"));
    assert_eq!(
        error.code(),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "{error:?}"
    );
    assert_eq!(error.severity(), "FATAL", "{error:?}");
    error.message().to_owned()
}

async fn admitted(cluster: &Cluster, role: &str) {
    if let Err(e) = login(cluster, role).await {
        panic!("{role} should log in: {e:?}");
    }
}

fn apply(cluster: &Cluster, script: &str) {
    cluster.psql(script).unwrap_or_else(|e| panic!("{e}"));
}

/// The ledger as `curfew init` installs it.
async fn install_ledger(cluster: &Cluster) {
    let spec = curfew_postgres::TargetSpec {
        name: "t".to_owned(),
        url: curfew_postgres::ConnectionUrl::parse(&cluster.url("postgres", "postgres")).unwrap(),
        password_file: None,
    };
    let mut admin = curfew_postgres::connect(&spec).await.unwrap().connection;
    admin.install_ledger("curfew_agent").await.unwrap();
}

/// The documented recovery: a superuser with event triggers off drops the trigger.
fn recover(cluster: &Cluster) {
    let output = Command::new(cluster.bin_dir().join("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args([
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", "DROP EVENT TRIGGER curfew_login"])
        .env("PGOPTIONS", "-c event_triggers=false")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn refuses_and_admits_on(major: u32) {
    let cluster = Cluster::start(Options {
        bin_dir: Some(pg_bin(major)),
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.major_version(), major);
    apply(
        &cluster,
        &format!(
            "{}\nCREATE ROLE humans NOLOGIN;
             CREATE ROLE alice LOGIN IN ROLE humans; CREATE ROLE backup LOGIN IN ROLE humans;
             CREATE ROLE oncall LOGIN IN ROLE humans; CREATE ROLE carol LOGIN;
             CREATE ROLE dave LOGIN; CREATE ROLE erin LOGIN; CREATE ROLE frank LOGIN;
             CREATE ROLE gina LOGIN;",
            curfew_testkit::AGENT_ROLE
        ),
    );
    install_ledger(&cluster).await;

    let now = Zoned::now().with_time_zone(jiff::tz::db().get(ZONE).unwrap());
    let (text, allow_opens, deny_ends, freeze_ends) = policy(&now);
    apply(&cluster, &compile(&text, OnError::Closed));
    // Applying again replaces it.
    apply(&cluster, &compile(&text, OnError::Closed));
    // curfew init still accepts its schema with the trigger's functions in it.
    install_ledger(&cluster).await;

    let opens = curfew_compile::opening_time(now.datetime(), allow_opens);
    let expected = curfew_compile::login_refusal_message(
        "alice",
        &RefusalCause::Window {
            rule: "after-hours",
            kind: WindowRule::Allow,
            windows: text
                .lines()
                .find_map(|l| l.strip_prefix("allow = [\""))
                .unwrap()
                .trim_end_matches("\"]"),
            opens: Some(&opens),
            zone: ZONE,
        },
    );
    assert_eq!(refused(&cluster, "alice").await, expected);
    assert!(
        expected.contains(" 00:00 Asia/Tokyo (window "),
        "{expected}"
    );
    // Only a superuser may switch event triggers off: a user who tries is refused all the same.
    let bypass = login_with(&cluster, "alice", "-c event_triggers=false")
        .await
        .expect_err("event_triggers=false must not let alice in");
    assert_eq!(
        bypass.code(),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "{bypass:?}"
    );

    let dave = refused(&cluster, "dave").await;
    let until = curfew_compile::opening_time(
        Zoned::now()
            .with_time_zone(now.time_zone().clone())
            .datetime(),
        deny_ends,
    );
    assert!(
        dave.starts_with(&format!(
            "logins for role dave are closed by rule maintenance until {until} Asia/Tokyo (deny window "
        )),
        "{dave}"
    );

    let frank = refused(&cluster, "frank").await;
    let freeze = text
        .lines()
        .find_map(|l| l.strip_prefix("deny = [\"20"))
        .unwrap()
        .trim_end_matches("\"]");
    assert_eq!(
        frank,
        format!(
            "logins for role frank are closed by rule freeze until {} Asia/Tokyo (deny window 20{freeze})",
            freeze_ends.strftime("%a %Y-%m-%d %H:%M")
        )
    );

    // A rule's `message` is what the client reads, as written (quotes, `%`, `$$` kept);
    // curfew's words, naming the rule, are the DETAIL.
    let gina = login(&cluster, "gina").await.expect_err("gina is refused");
    assert_eq!(gina.code(), &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    assert_eq!(gina.message(), "Closed 100% by O'Brien's $$ policy %s");
    assert!(
        gina.detail()
            .unwrap_or_default()
            .starts_with("logins for role gina are closed by rule banner until "),
        "{gina:?}"
    );

    // Outside every rule, exempt, break-glass, superuser, curfew's own role: they log in.
    for role in ["carol", "backup", "oncall", "postgres", "curfew_agent"] {
        admitted(&cluster, role).await;
    }

    // An incident lock (curfew lock) refuses, with its reason.
    apply(
        &cluster,
        "SELECT curfew.create_incident_lock('erin'::regrole, 'laptop stolen', 'test', NULL)",
    );
    assert_eq!(
        refused(&cluster, "erin").await,
        "logins for role erin are closed by an incident lock until it is released (curfew \
         unlock) (reason: laptop stolen)"
    );

    // The ledger unreadable: closed refuses everyone the check covers, open lets them in.
    apply(&cluster, "ALTER TABLE curfew.lock RENAME TO lock_moved");
    let failed = refused(&cluster, "carol").await;
    assert!(
        failed.contains("curfew's login check failed (42P01")
            && failed.contains("fails closed (--on-error closed)"),
        "{failed}"
    );
    for role in ["oncall", "postgres"] {
        admitted(&cluster, role).await;
    }
    // The recovery command from the header drops it; then anyone logs in again.
    recover(&cluster);
    admitted(&cluster, "carol").await;
    admitted(&cluster, "alice").await;

    apply(&cluster, &compile(&text, OnError::Open));
    for role in ["carol", "alice", "erin"] {
        admitted(&cluster, role).await;
    }
    apply(&cluster, "ALTER TABLE curfew.lock_moved RENAME TO lock");
    refused(&cluster, "alice").await;
    refused(&cluster, "erin").await;

    // NOLOGIN (what the agent sets) stays the hard lock underneath: PostgreSQL refuses the
    // role itself, before the trigger runs.
    apply(&cluster, "ALTER ROLE carol NOLOGIN");
    let nologin = refused(&cluster, "carol").await;
    assert!(nologin.contains("is not permitted to log in"), "{nologin}");
}

#[tokio::test]
async fn the_trigger_refuses_with_the_reason_on_postgresql_17() {
    refuses_and_admits_on(17).await;
}

#[tokio::test]
async fn the_trigger_refuses_with_the_reason_on_postgresql_18() {
    refuses_and_admits_on(18).await;
}

#[test]
fn a_server_below_17_refuses_the_script() {
    let cluster = Cluster::start(Options {
        bin_dir: Some(pg_bin(16)),
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let now = Zoned::now().with_time_zone(jiff::tz::db().get(ZONE).unwrap());
    let error = cluster
        .psql(&compile(&policy(&now).0, OnError::Open))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("curfew: the login trigger needs PostgreSQL 17 or later"),
        "{error}"
    );
    // Nothing was left behind: the script is one transaction.
    let left = cluster
        .psql("SELECT count(*) FROM pg_proc WHERE proname LIKE 'login\\_%'")
        .unwrap();
    assert_eq!(left, "0");
}
