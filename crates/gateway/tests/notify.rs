//! Warnings out of band (issue 17): a rule's `warn` reaches the `[notify]` webhook as well as
//! the session. A warned client that runs a statement before the deadline keeps its session;
//! one that does not is ended at the deadline; the webhook (a local receiver) hears of both
//! warnings from the gateway, with the session's role, server pid, rule, deadline and client.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ALICE_PASSWORD, Harness, Setup};
use curfew_testkit::WebhookReceiver;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// What a driven connection saw: its notices (with when) and the error it ended with.
type Seen = (Vec<Duration>, Option<tokio_postgres::Error>);

/// A session of alice's, its connection driven by hand to see its notices.
async fn session(harness: &Harness, t0: Instant) -> (Client, i32, JoinHandle<Seen>) {
    let mut config = harness.config("alice", ALICE_PASSWORD);
    config.ssl_mode(SslMode::Disable);
    let (client, mut connection) = config.connect(NoTls).await.expect("login");
    let driver = tokio::spawn(async move {
        let mut notices = Vec::new();
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notice(_))) => notices.push(t0.elapsed()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return (notices, Some(e)),
                None => return (notices, None),
            }
        }
    });
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("the pid")
        .get(0);
    (client, pid, driver)
}

#[tokio::test]
async fn a_warned_session_that_runs_a_statement_stays_and_the_webhook_hears_each_warning() {
    let hook = WebhookReceiver::start(vec![200]).await;
    let harness = Harness::start("notify-webhook", Setup::default()).await;
    let text = format!(
        "[notify]\nwebhook = \"http://127.0.0.1:{}/hook\"\n\n\
         [[rule]]\nname = \"inactivity\"\nidle = \"4s\"\nwarn = \"2s\"\n",
        hook.port
    );
    let policy = curfew_policy::parse_policy("notify.toml", &text, jiff::tz::db())
        .expect("the policy")
        .policy;
    harness.gateway.enforce(Arc::new(policy));
    let t0 = Instant::now();
    let (keeper, keeper_pid, keeper_seen) = session(&harness, t0).await;
    // The keeper's idle began before this: its warning is due by 2 s after, its end by 4 s.
    let keeper_idle = Instant::now();
    let (silent, silent_pid, silent_seen) = session(&harness, t0).await;

    // Both are warned about 2 s in; the keeper answers with a statement, the other does not.
    // Timed from the keeper's idle, not after the second login (slow on a loaded machine).
    tokio::time::sleep_until((keeper_idle + Duration::from_millis(3000)).into()).await;
    keeper
        .simple_query("SELECT 1")
        .await
        .expect("the keeper's statement");
    let (notices, error) = tokio::time::timeout(Duration::from_secs(10), silent_seen)
        .await
        .expect("the silent session was ended")
        .expect("its driver");
    let ended_at = t0.elapsed();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let error = error.expect("ended with an error");
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(db.code().code(), "57P05", "{db:?}");
    assert!(ended_at >= Duration::from_millis(3900), "{ended_at:?}");
    drop(silent);

    // Past the first deadline the keeper is still there (its own deadline moved on).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!keeper_seen.is_finished(), "the keeper was ended");
    keeper.simple_query("SELECT 1").await.expect("still served");

    // The webhook heard of both warnings, from the gateway.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the webhook heard {:?}",
            hook.seen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pids = Vec::new();
    for (head, body, _) in hook.seen() {
        assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
        let event: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(event["event"], "session_warned", "{event}");
        assert_eq!(event["by"], "gateway", "{event}");
        assert_eq!(event["rule"], "inactivity", "{event}");
        assert_eq!(event["role"], "alice", "{event}");
        assert!(event["deadline"].as_str().is_some(), "{event}");
        assert!(
            event["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1:")),
            "{event}"
        );
        pids.push(event["pid"].as_i64().expect("a pid"));
    }
    // The keeper may have been warned a second time since (its new deadline is 7 s in).
    pids.sort_unstable();
    pids.dedup();
    let mut expected = vec![i64::from(keeper_pid), i64::from(silent_pid)];
    expected.sort_unstable();
    assert_eq!(pids, expected);
    drop(keeper);
}
