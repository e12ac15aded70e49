//! The enforcer's timers and warnings under tokio's paused clock.

use std::sync::Mutex;
use std::time::Duration;

use curfew_policy::parse_policy;
use curfew_wire::Direction;

use super::*;
use crate::activity::Clock;

fn policy(rule: &str) -> Option<Arc<Policy>> {
    let text = format!("[[rule]]\nname = \"inactivity\"\n{rule}\n");
    let parsed = parse_policy("t.toml", &text, jiff::tz::db()).ok()?;
    Some(Arc::new(parsed.policy))
}

fn identity(started: Timestamp) -> SessionIdentity {
    SessionIdentity {
        pid: 42,
        started,
        role: Arc::from("alice"),
        member_of: Arc::from(Vec::new()),
        database: Arc::from("postgres"),
        application: Arc::from("psql"),
        client_addr: None,
    }
}

async fn poll_once(enforcer: &mut Enforcer<'_>) -> Poll<Fatal> {
    std::future::poll_fn(|cx| Poll::Ready(enforcer.poll(cx))).await
}

const START: i64 = 1_800_000_000;

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_warned_then_ended_at_its_deadline() {
    let start = Timestamp::from_second(START).unwrap_or(Timestamp::UNIX_EPOCH);
    let (_publisher, feed) = watch::channel(policy("idle = \"15m\"\nwarn = \"2m\""));
    let warned = Mutex::new(Vec::new());
    let mut enforcer = Enforcer::new(
        Watched::new(Clock::starting_at(start)),
        identity(start),
        feed,
        Arc::new(ViolationBook::new()),
        Arc::new(Metrics::new()),
        Box::new(|w: &Warned| {
            warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(w.clone())
        }),
    );
    assert!(poll_once(&mut enforcer).await.is_pending());
    tokio::time::advance(Duration::from_secs(12 * 60)).await;
    assert!(poll_once(&mut enforcer).await.is_pending());
    assert!(enforcer.take_notice().is_none());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(poll_once(&mut enforcer).await.is_pending());
    let notice = enforcer.take_notice().unwrap_or_default();
    let text = String::from_utf8_lossy(&notice);
    assert!(
        text.contains("WARNING") && text.contains("rule inactivity"),
        "{text}"
    );
    assert!(
        text.contains("run any statement to keep the session"),
        "{text}"
    );
    // Once per deadline.
    assert!(poll_once(&mut enforcer).await.is_pending());
    assert!(enforcer.take_notice().is_none());
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    let Poll::Ready(fatal) = poll_once(&mut enforcer).await else {
        panic!("not ended at the deadline");
    };
    assert_eq!(fatal.code, sqlstate::IDLE_SESSION_TIMEOUT);
    assert_eq!(
        fatal.message,
        "terminating connection: idle for 15m00s; limit 15m (rule inactivity)"
    );
    assert_eq!(fatal.hint.as_deref(), Some("reconnect to continue"));
    assert_eq!(
        enforcer.ended().map(|e| e.rule.as_str()),
        Some("inactivity")
    );
    drop(enforcer);
    assert_eq!(warned.into_inner().unwrap_or_default().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_statement_re_arms_and_a_reload_applies_at_once() {
    let start = Timestamp::from_second(START).unwrap_or(Timestamp::UNIX_EPOCH);
    let (publisher, feed) = watch::channel(policy("idle = \"15m\""));
    let mut enforcer = Enforcer::new(
        Watched::new(Clock::starting_at(start)),
        identity(start),
        feed,
        Arc::new(ViolationBook::new()),
        Arc::new(Metrics::new()),
        Box::new(|_: &Warned| {}),
    );
    assert!(poll_once(&mut enforcer).await.is_pending());
    tokio::time::advance(Duration::from_secs(10 * 60)).await;
    // A query and its answer: idle again from now.
    enforcer
        .watched
        .observe(Direction::Frontend, &[b'Q', 0, 0, 0, 5, 0]);
    enforcer
        .watched
        .observe(Direction::Backend, &[b'Z', 0, 0, 0, 5, b'I']);
    assert!(poll_once(&mut enforcer).await.is_pending());
    tokio::time::advance(Duration::from_secs(6 * 60)).await;
    assert!(poll_once(&mut enforcer).await.is_pending());
    // A reload to 5m: idle for 6m already, ended at once.
    publisher.send_replace(policy("idle = \"5m\""));
    tokio::task::yield_now().await;
    let Poll::Ready(fatal) = poll_once(&mut enforcer).await else {
        panic!("the reload did not apply");
    };
    assert!(fatal.message.contains("limit 5m"), "{}", fatal.message);
}
