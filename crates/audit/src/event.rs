//! The kinds of things an audit record can report.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened. Serialized in snake_case, e.g. `"session_terminated"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The agent started.
    AgentStarted,
    /// The agent stopped.
    AgentStopped,
    /// A policy was loaded and is in force.
    PolicyLoaded,
    /// A policy was rejected (the previous one stays in force).
    PolicyRejected,
    /// The agent is about to end a session; an outcome record must follow and name this
    /// record's seq in its `intent` field.
    TerminationIntent,
    /// A session was ended.
    SessionTerminated,
    /// A termination was not carried out (e.g. the session no longer matched).
    TerminationSkipped,
    /// A termination was attempted and failed.
    TerminationFailed,
    /// A session was reported only (report mode).
    SessionReported,
    /// A login was locked.
    LoginLocked,
    /// A locked login was restored.
    LoginRestored,
    /// A lock was created.
    LockCreated,
    /// A lock was released.
    LockReleased,
    /// A lock had drifted from its intended state and was corrected.
    LockDriftCorrected,
    /// This agent became the leader.
    LeaderAcquired,
    /// This agent lost leadership.
    LeaderLost,
    /// `curfew verify` tested the control; `result` says whether it worked, the detail has the
    /// evidence rule by rule.
    ControlVerified,
    /// `curfew check` read a server's configuration; the detail has its findings.
    ConfigurationChecked,
    /// The agent is about to change a role's login (lock, restore, or correct drift); an
    /// outcome record must follow and name this record's seq in its `intent` field.
    LoginChangeIntent,
    /// A login change was attempted and failed.
    LoginChangeFailed,
    /// A login change was not needed after all (the state had changed since it was read).
    LoginChangeSkipped,
    /// The outcome of an intent is unknown: the process stopped (crash, kill) before recording
    /// it. Written at the next start, which re-checks the actual state.
    ActionInterrupted,
    /// A session of a role other than curfew's held or blocked curfew's leader lock; the
    /// record says whether it was ended.
    LeaderSquatted,
    /// A target's worker stopped unexpectedly and is restarted; the target was not enforced
    /// meanwhile.
    WorkerFailed,
    /// The first record of a file that continues the chain of a previous file (the log was
    /// rotated, truncated in place, or deleted): its `seq` and `prev` follow that file's last
    /// record, whose seq and hash the detail repeats.
    LogContinued,
    /// Records could be written again after a time when they could not (a full disk, a failed
    /// write); nothing was done meanwhile. The detail says since when and why.
    AuditResumed,
    /// A periodic (and on every change of state) statement of what the agent is doing for a
    /// target: enforcing, standing by and why, unreachable, dry run, stopped.
    Heartbeat,
    /// A session entered the warning lead of the rule that will end it; the record says who
    /// was told (the agent cannot reach the user: operators and hooks only).
    SessionWarned,
    /// A checkpoint of the chain: the head (`seq`, hash) of the records before it, signed when
    /// a signing key is configured.
    Checkpoint,
    /// `curfew gateway` started serving; the detail has its listen addresses and target.
    GatewayStarted,
    /// The gateway stopped; the detail says how its sessions ended (drained or ended).
    GatewayStopped,
    /// The gateway reloaded its policy and certificate on SIGHUP (`result` ok or failed; the
    /// old configuration stays on a failure).
    GatewayReloaded,
    /// A client's session through the gateway began (authenticated, logged in upstream).
    SessionStarted,
    /// A client's session through the gateway ended; the detail says how, with its duration
    /// and bytes.
    SessionEnded,
    /// Failed logins at the gateway over a period, counted together (one record per period,
    /// not per attempt, so a flood of bad logins cannot make the gateway fsync without bound).
    LoginsFailed,
    /// The gateway refused an authenticated login by a rule of the policy (a window).
    LoginRefused,
}

impl Event {
    /// Every event, in declaration order.
    pub const ALL: [Event; 36] = [
        Event::AgentStarted,
        Event::AgentStopped,
        Event::PolicyLoaded,
        Event::PolicyRejected,
        Event::TerminationIntent,
        Event::SessionTerminated,
        Event::TerminationSkipped,
        Event::TerminationFailed,
        Event::SessionReported,
        Event::LoginLocked,
        Event::LoginRestored,
        Event::LockCreated,
        Event::LockReleased,
        Event::LockDriftCorrected,
        Event::LeaderAcquired,
        Event::LeaderLost,
        Event::ControlVerified,
        Event::ConfigurationChecked,
        Event::LoginChangeIntent,
        Event::LoginChangeFailed,
        Event::LoginChangeSkipped,
        Event::ActionInterrupted,
        Event::LeaderSquatted,
        Event::WorkerFailed,
        Event::LogContinued,
        Event::AuditResumed,
        Event::Heartbeat,
        Event::SessionWarned,
        Event::Checkpoint,
        Event::GatewayStarted,
        Event::GatewayStopped,
        Event::GatewayReloaded,
        Event::SessionStarted,
        Event::SessionEnded,
        Event::LoginsFailed,
        Event::LoginRefused,
    ];

    /// Whether this event announces an action whose outcome must be recorded later
    /// (verification reports intents that never got one).
    pub fn is_intent(&self) -> bool {
        matches!(self, Event::TerminationIntent | Event::LoginChangeIntent)
    }

    /// The serialized name, e.g. `"session_terminated"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Event::AgentStarted => "agent_started",
            Event::AgentStopped => "agent_stopped",
            Event::PolicyLoaded => "policy_loaded",
            Event::PolicyRejected => "policy_rejected",
            Event::TerminationIntent => "termination_intent",
            Event::SessionTerminated => "session_terminated",
            Event::TerminationSkipped => "termination_skipped",
            Event::TerminationFailed => "termination_failed",
            Event::SessionReported => "session_reported",
            Event::LoginLocked => "login_locked",
            Event::LoginRestored => "login_restored",
            Event::LockCreated => "lock_created",
            Event::LockReleased => "lock_released",
            Event::LockDriftCorrected => "lock_drift_corrected",
            Event::LeaderAcquired => "leader_acquired",
            Event::LeaderLost => "leader_lost",
            Event::ControlVerified => "control_verified",
            Event::ConfigurationChecked => "configuration_checked",
            Event::LoginChangeIntent => "login_change_intent",
            Event::LoginChangeFailed => "login_change_failed",
            Event::LoginChangeSkipped => "login_change_skipped",
            Event::ActionInterrupted => "action_interrupted",
            Event::LeaderSquatted => "leader_squatted",
            Event::WorkerFailed => "worker_failed",
            Event::LogContinued => "log_continued",
            Event::AuditResumed => "audit_resumed",
            Event::Heartbeat => "heartbeat",
            Event::SessionWarned => "session_warned",
            Event::Checkpoint => "checkpoint",
            Event::GatewayStarted => "gateway_started",
            Event::GatewayStopped => "gateway_stopped",
            Event::GatewayReloaded => "gateway_reloaded",
            Event::SessionStarted => "session_started",
            Event::SessionEnded => "session_ended",
            Event::LoginsFailed => "logins_failed",
            Event::LoginRefused => "login_refused",
        }
    }

    /// The event with this serialized name, if there is one.
    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for event in Event::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(Event::from_name(event.as_str()), Some(event));
        }
        assert!(Event::TerminationIntent.is_intent());
        assert!(Event::LoginChangeIntent.is_intent());
        assert!(!Event::SessionTerminated.is_intent());
    }
}
