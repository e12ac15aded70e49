//! Warnings: a session inside the `warn` lead of the rule that will end it gets one
//! `session_warned` record (per session and rule), and the notify hooks are asked to pass it
//! on. The agent itself cannot reach a session's user (PostgreSQL has no way to send a message
//! to another backend's client), so the record says what happened — recorded for operators,
//! queued for the hooks — and never that the user was told.
//!
//! A warning is not an action: it has no intent record, and it is written last in its tick,
//! after the terminations and login changes, so that it never delays one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use curfew_audit::Event;
use curfew_audit::details::SessionWarning;
use curfew_backend::Snapshot;
use curfew_policy::{Decision, Session, SessionKey};
use jiff::Timestamp;

use crate::events::AgentEvent;
use crate::once::{OncePerRule, Subject};
use crate::records::{about, session_info, write_all};
use crate::shared::Shared;
use curfew_notify::{By, Hook, Warning, hooks};
use curfew_policy::LoadedPolicy;

/// Remembers which sessions were warned, so each is warned once per rule.
pub(crate) struct Warner {
    target: String,
    shared: Arc<Shared>,
    warned: OncePerRule,
}

impl Warner {
    pub(crate) fn new(target: String, shared: Arc<Shared>) -> Self {
        Self {
            target,
            shared,
            warned: OncePerRule::default(),
        }
    }

    /// Whether no warning is remembered.
    pub(crate) fn is_empty(&self) -> bool {
        self.warned.is_empty()
    }

    /// Forget sessions that are gone.
    pub(crate) fn forget(&mut self, live: &HashSet<SessionKey>) {
        self.warned.retain_live(live);
    }

    /// Record (one fsync for all) and pass on the warnings of a plan not yet given. A warning
    /// that cannot be recorded is tried again at the next snapshot.
    pub(crate) async fn warn(
        &mut self,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        warnings: &[Decision],
    ) {
        if warnings.is_empty() {
            return;
        }
        let by_key: HashMap<SessionKey, &Session> =
            snapshot.sessions.iter().map(|s| (s.key(), s)).collect();
        let due: Vec<(&Decision, &Session)> = self
            .warned
            .unsaid(warnings)
            .into_iter()
            .filter_map(|d| by_key.get(&d.session).map(|s| (d, *s)))
            .collect();
        if due.is_empty() {
            return;
        }
        let dry_run = self.shared.options.dry_run;
        // A dry run ends nothing: nobody is to be told that something will end.
        let asked = if dry_run {
            Vec::new()
        } else {
            hooks(&loaded.policy.notify)
        };
        let mut records = Vec::new();
        let mut told = Vec::new();
        for (d, session) in &due {
            let rule = &loaded.policy.rules[d.rule];
            let why = d.reason(&loaded.policy, snapshot.now);
            let reason = reason(&rule.name, d.deadline, &why, &asked, dry_run);
            let lead = rule.warn.map(|l| l.to_string()).unwrap_or_default();
            let mut record = about(Event::SessionWarned, &self.target);
            record.rule = Some(rule.name.clone());
            record.reason = Some(reason.clone());
            record.session = Some(session_info(session));
            record.result = Some(if dry_run { "dry_run" } else { "recorded" }.to_owned());
            let record = record.with_details(&SessionWarning {
                deadline: d.deadline,
                lead,
                ends_in_seconds: d
                    .deadline
                    .duration_since(snapshot.now)
                    .as_secs_f64()
                    .max(0.0),
                hooks: asked.iter().map(|h| h.as_str().to_owned()).collect(),
                policy_sha256: loaded.sha256.clone(),
            });
            records.push(record);
            told.push((*d, *session, rule.name.clone(), why, reason));
        }
        let Ok(appended) = write_all(&self.shared, records).await else {
            return;
        };
        for ((d, session, rule, why, reason), appended) in told.into_iter().zip(appended) {
            self.warned
                .insert(d.session, Subject::Rule(d.rule_id.clone()));
            tracing::info!(target: "curfew::agent",
                event = "session_warned",
                target = %self.target,
                pid = session.pid,
                role = %curfew_policy::visible(&session.role),
                database = %curfew_policy::visible(&session.database),
                rule = %rule,
                "target \"{}\": pid {} {}", self.target, session.pid, curfew_policy::visible(&reason));
            if !asked.is_empty() {
                let warning = Warning {
                    seq: Some(appended.seq),
                    ..warning(&self.target, &rule, session, d.deadline, &why, loaded)
                };
                self.shared
                    .notify
                    .send(warning, || self.shared.emit(AgentEvent::NotifyDropped));
            }
            self.shared.emit(AgentEvent::Warned {
                target: self.target.clone(),
                session: session.clone(),
                rule,
                deadline: d.deadline,
                at: snapshot.now,
                reason,
                hooks: asked.iter().map(|h| h.as_str()).collect(),
            });
        }
    }
}

/// The record's reason: what will happen, why, and who was told — never that the user was.
fn reason(rule: &str, deadline: Timestamp, why: &str, hooks: &[Hook], dry_run: bool) -> String {
    let at = deadline.strftime("%H:%M:%S UTC");
    if dry_run {
        return format!(
            "would be ended at {at} by rule {rule} ({why}), but this is a dry run and nothing is ended; recorded for operators — the agent cannot reach the user"
        );
    }
    let passed = match hooks {
        [] => String::new(),
        hooks => format!(
            " and queued for the notify {} ({})",
            if hooks.len() == 1 { "hook" } else { "hooks" },
            hooks
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "will be ended at {at} by rule {rule} ({why}); recorded for operators{passed} — the agent cannot reach the user"
    )
}

/// The warning the notify hooks receive (as one JSON object: names and values only, no URL,
/// password or other secret).
fn warning(
    target: &str,
    rule: &str,
    session: &Session,
    deadline: Timestamp,
    why: &str,
    loaded: &LoadedPolicy,
) -> Warning {
    Warning {
        by: By::Agent,
        target: target.to_owned(),
        rule: rule.to_owned(),
        role: session.role.to_string(),
        database: session.database.to_string(),
        application: session.application.to_string(),
        pid: session.pid,
        backend_start: Some(session.backend_start),
        deadline: Some(deadline),
        reason: why.to_owned(),
        policy_sha256: Some(loaded.sha256.clone()),
        seq: None,
        client: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_says_who_was_told_and_never_that_the_user_was() {
        let deadline = Timestamp::from_second(1_800_000_000 + 5).unwrap_or(Timestamp::UNIX_EPOCH);
        let plain = reason(
            "inactivity",
            deadline,
            "idle for 13m00s; limit 15m",
            &[],
            false,
        );
        assert_eq!(
            plain,
            format!(
                "will be ended at {} by rule inactivity (idle for 13m00s; limit 15m); recorded for operators — the agent cannot reach the user",
                deadline.strftime("%H:%M:%S UTC")
            )
        );
        let both = reason(
            "inactivity",
            deadline,
            "idle",
            &[Hook::Command, Hook::Webhook],
            false,
        );
        assert!(
            both.contains("queued for the notify hooks (command, webhook)"),
            "{both}"
        );
        let dry = reason("inactivity", deadline, "idle", &[], true);
        assert!(
            dry.starts_with("would be ended") && dry.contains("dry run"),
            "{dry}"
        );
        for text in [plain, both, dry] {
            assert!(!text.contains("user was"), "{text}");
            assert!(text.contains("cannot reach the user"), "{text}");
        }
    }
}
