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
    // The audit record's deadline and lateness come from here: the deadline the engine gave,
    // the moment the gateway stopped the session (at it, on the paused clock).
    let deadline = start + SignedDuration::from_mins(15);
    assert_eq!(enforcer.ended().and_then(|e| e.deadline), Some(deadline));
    let at = enforcer.ended().map(|e| e.at).unwrap_or(start);
    assert!(
        at >= deadline && at.duration_since(deadline) < SignedDuration::from_secs(1),
        "{at}"
    );
    drop(enforcer);
    let warned = warned.into_inner().unwrap_or_default();
    assert_eq!(warned.len(), 1);
    assert!(
        matches!(&warned[0].about, WarnedOf::Deadline { deadline: d, lead, .. } if *d == deadline && lead == "2m"),
        "{warned:?}"
    );
}

/// An ErrorResponse from the server with `code`, then ReadyForQuery.
fn server_error(code: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', code),
        (b'M', "denied"),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
    frame
}

#[tokio::test(start_paused = true)]
async fn a_violation_warning_is_recorded_without_a_deadline_and_the_end_has_none() {
    let start = Timestamp::from_second(START).unwrap_or(Timestamp::UNIX_EPOCH);
    // A violations rule needs the gateway (only it sees the server's errors).
    let rule = "violations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\n\
                [[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n[gateway]";
    let policy = policy(rule);
    assert!(policy.is_some(), "the test's policy does not parse");
    let (_publisher, feed) = watch::channel(policy);
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
    for _ in 0..2 {
        enforcer
            .watched
            .observe(Direction::Frontend, &[b'Q', 0, 0, 0, 5, 0]);
        enforcer
            .watched
            .observe(Direction::Backend, &server_error("42501"));
        assert!(poll_once(&mut enforcer).await.is_pending());
    }
    assert!(enforcer.take_notice().is_some(), "no WARNING at count - 1");
    enforcer
        .watched
        .observe(Direction::Frontend, &[b'Q', 0, 0, 0, 5, 0]);
    enforcer
        .watched
        .observe(Direction::Backend, &server_error("42501"));
    let ended = loop {
        if let Poll::Ready(fatal) = poll_once(&mut enforcer).await {
            break fatal;
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    };
    assert_eq!(ended.code, sqlstate::ADMIN_SHUTDOWN);
    let end = enforcer.ended().cloned();
    assert_eq!(end.as_ref().map(|e| e.counted.len()), Some(3));
    assert_eq!(end.and_then(|e| e.deadline), None);
    drop(enforcer);
    let warned = warned.into_inner().unwrap_or_default();
    assert_eq!(
        warned.iter().map(|w| &w.about).collect::<Vec<_>>(),
        [&WarnedOf::NextViolation {
            counted: 2,
            limit: 3
        }],
        "{warned:?}"
    );
    assert!(warned[0].reason.contains("one more error"), "{warned:?}");
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
