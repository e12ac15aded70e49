//! The demo while it runs: waiting for the agent's first look, then each termination, warning
//! and change told as it happens.

use std::time::{Duration, Instant};

use curfew_agent::AgentEvent;
use tokio::sync::broadcast;

use crate::Narrator;
use crate::cast::{Actor, told};
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

/// What the agent did to one session.
pub(super) struct Outcome {
    pub(super) pid: i64,
    pub(super) rule: String,
    pub(super) at: Instant,
    pub(super) lateness: jiff::SignedDuration,
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
            .map_or(format!("pid {pid}"), |a| {
                format!("pid {pid} ({}, {}, {})", a.role, a.label, a.route.name())
            })
    };
    let expected = actors.iter().filter(|a| a.expected.is_some()).count();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let hard_stop = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut settle: Option<tokio::time::Instant> = None;
    loop {
        let until = settle.unwrap_or(hard_stop).min(hard_stop);
        let event = match tokio::time::timeout_at(until, events.recv()).await {
            Err(_) => break,
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
                    lateness,
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
    outcomes
}
