//! The demo while it runs: waiting for the agent's first look, then each termination, warning
//! and change told as it happens.

use std::time::{Duration, Instant};

use curfew_agent::AgentEvent;
use tokio::sync::broadcast;

use crate::Narrator;
use crate::cast::{Actor, Route, told};
use crate::error::DemoError;

/// `+1.2s`: how long after `t0`.
pub(super) fn since(t0: Instant, at: Instant) -> String {
    format!("+{:.1}s", at.saturating_duration_since(t0).as_secs_f64())
}

pub(super) async fn wait_for_first_evaluation(
    events: &mut broadcast::Receiver<AgentEvent>,
) -> Result<(), DemoError> {
    let wait = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(AgentEvent::Evaluated { .. }) => return Ok(()),
                Ok(AgentEvent::Disconnected { error, .. }) => return Err(error),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err("the agent stopped".into()),
            }
        }
    });
    match wait.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DemoError::AgentNotStarted(e)),
        Err(_) => Err(DemoError::AgentSlow),
    }
}

/// What ended one session: the agent (on the server) or the gateway (inside the session).
pub(super) struct Outcome {
    pub(super) pid: i64,
    pub(super) rule: String,
    pub(super) at: Instant,
    /// After the deadline (the agent's figure; the gateway's FATAL does not carry one).
    pub(super) lateness: Option<jiff::SignedDuration>,
    /// Ended by the gateway (else by the agent).
    pub(super) by_gateway: bool,
}

/// `pid 123 (analyst_kim, idle in psql, through the gateway)`.
fn actor_label(a: &Actor) -> String {
    format!(
        "pid {} ({}, {}, {})",
        a.pid,
        a.role,
        a.label,
        a.route.name()
    )
}

/// How often the clients are looked at for an end the gateway gave them.
const LOOK: Duration = Duration::from_millis(100);

/// The rule a gateway FATAL names: its message ends `(rule NAME)`.
pub(super) fn rule_named(told: &str) -> Option<&str> {
    let start = told.rfind("(rule ")? + "(rule ".len();
    let len = told[start..].find(')')?;
    Some(&told[start..start + len])
}

/// The actor's last words: what its connection, or the statement it was running, received.
async fn settle_saw(a: &mut Actor) {
    a.check_ended();
    // A running statement receives the server's message; the connection just closes.
    if let Some(task) = a.running.take_if(|t| t.is_finished())
        && let Ok(Err(e)) = task.await
        && e.as_db_error().is_some()
        && let Some(saw) = &mut a.saw
    {
        saw.1 = told(&e);
    }
}

/// Print events as they come until every session expected to end has ended (and a moment more,
/// to show the others survive), or 20 s.
pub(super) async fn watch_live(
    n: &Narrator<'_>,
    events: &mut broadcast::Receiver<AgentEvent>,
    actors: &mut [Actor],
    t0: Instant,
) -> Vec<Outcome> {
    let label = |actors: &[Actor], pid: i64| {
        actors
            .iter()
            .find(|a| i64::from(a.pid) == pid)
            .map_or(format!("pid {pid}"), actor_label)
    };
    let expected = actors.iter().filter(|a| a.expected.is_some()).count();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let hard_stop = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut settle: Option<tokio::time::Instant> = None;
    loop {
        let until = settle.unwrap_or(hard_stop).min(hard_stop);
        let tick = (tokio::time::Instant::now() + LOOK).min(until);
        let received = tokio::time::timeout_at(tick, events.recv()).await;
        // The gateway's ends reach only the clients: look at them.
        for a in actors.iter_mut() {
            if a.route != Route::Gateway || outcomes.iter().any(|o| o.pid == i64::from(a.pid)) {
                continue;
            }
            settle_saw(a).await;
            let Some((at, saw)) = &a.saw else { continue };
            let Some(rule) = rule_named(saw) else {
                continue;
            };
            n.say(format!(
                "  {:>6}  ended {} by {rule}, in the gateway; the user read: {saw}",
                since(t0, *at),
                actor_label(a),
            ));
            outcomes.push(Outcome {
                pid: i64::from(a.pid),
                rule: rule.to_owned(),
                at: *at,
                lateness: None,
                by_gateway: true,
            });
        }
        if settle.is_none() && outcomes.len() >= expected {
            settle = Some(tokio::time::Instant::now() + Duration::from_millis(1500));
        }
        let event = match received {
            Err(_) if tokio::time::Instant::now() >= until => break,
            Err(_) => continue,
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => break,
            Ok(Ok(event)) => event,
        };
        let now = Instant::now();
        match event {
            AgentEvent::Terminated {
                session,
                rule,
                reason,
                lateness,
                ..
            } => {
                n.say(format!(
                    "  {:>6}  ended {} by {rule}: {reason} ({} after the deadline)",
                    since(t0, now),
                    label(actors, session.pid),
                    curfew_policy::format_age(lateness)
                ));
                outcomes.push(Outcome {
                    pid: session.pid,
                    rule,
                    at: now,
                    lateness: Some(lateness),
                    by_gateway: false,
                });
            }
            AgentEvent::Warned {
                session,
                rule,
                deadline,
                at,
                ..
            } => n.say(format!(
                "  {:>6}  warning recorded (session_warned; the user is not told): {} will be ended in {} by {rule}",
                since(t0, now),
                label(actors, session.pid),
                curfew_policy::format_age(deadline.duration_since(at))
            )),
            AgentEvent::NoLongerMatched { session, rule, .. } => n.say(format!(
                "  {:>6}  {} changed before {rule} could end it; left alone",
                since(t0, now),
                label(actors, session.pid)
            )),
            AgentEvent::TerminationFailed {
                session,
                rule,
                error,
                ..
            } => n.say(format!(
                "  {:>6}  could not end {} ({rule}): {error}",
                since(t0, now),
                label(actors, session.pid)
            )),
            _ => {}
        }
        if settle.is_none() && outcomes.len() >= expected {
            settle = Some(tokio::time::Instant::now() + Duration::from_millis(1500));
        }
    }
    for a in actors.iter_mut() {
        settle_saw(a).await;
    }
    outcomes
}
