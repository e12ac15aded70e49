//! A warning as the hooks receive it: one JSON object of names and values, the same from the
//! agent and the gateway (`by` says which gave it). No URL, password or other secret is in it.

use jiff::Timestamp;
use serde_json::{Value, json};

/// Which enforcement point gave the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The agent (its `session_warned` record; the user is not told by it).
    Agent,
    /// The gateway (it also sent the user a WARNING notice in the session).
    Gateway,
}

impl By {
    /// `agent` or `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            By::Agent => "agent",
            By::Gateway => "gateway",
        }
    }
}

/// A session warned that a rule will end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Who warned.
    pub by: By,
    /// The target (database server) the session is on.
    pub target: String,
    /// The rule's name.
    pub rule: String,
    /// The session's role.
    pub role: String,
    /// Its database.
    pub database: String,
    /// Its `application_name` (the client's own setting).
    pub application: String,
    /// The server process behind it.
    pub pid: i64,
    /// When it started (server clock), when known.
    pub backend_start: Option<Timestamp>,
    /// When it will be ended; None for a `violations` rule's warning, whose end comes with
    /// the next error of its kinds rather than at a time.
    pub deadline: Option<Timestamp>,
    /// Why, in words ("idle for 13m00s; limit 15m").
    pub reason: String,
    /// The SHA-256 of the policy that decided it, when known.
    pub policy_sha256: Option<String>,
    /// The sequence number of the `session_warned` record in the sender's audit log.
    pub seq: Option<u64>,
    /// The client's address behind the gateway, when it came through one.
    pub client: Option<String>,
}

impl Warning {
    /// The JSON object the hooks receive (`event` is always `session_warned`; absent values
    /// are left out).
    pub fn to_json(&self) -> Value {
        let mut event = json!({
            "event": "session_warned",
            "by": self.by.as_str(),
            "target": self.target,
            "rule": self.rule,
            "role": self.role,
            "database": self.database,
            "application": self.application,
            "pid": self.pid,
            "reason": self.reason,
        });
        if let Some(deadline) = self.deadline {
            event["deadline"] = json!(deadline.to_string());
        }
        if let Some(start) = self.backend_start {
            event["backend_start"] = json!(start.to_string());
        }
        if let Some(sha) = &self.policy_sha256 {
            event["policy_sha256"] = json!(sha);
        }
        if let Some(seq) = self.seq {
            event["seq"] = json!(seq);
        }
        if let Some(client) = &self.client {
            event["client"] = json!(client);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::*;

    fn warning(by: By) -> Warning {
        Warning {
            by,
            target: "db".to_owned(),
            rule: "inactivity".to_owned(),
            role: "kim".to_owned(),
            database: "app".to_owned(),
            application: "psql".to_owned(),
            pid: 4242,
            backend_start: Some("2026-11-27T12:00:00Z".parse().unwrap()),
            deadline: Some("2026-11-27T12:15:00Z".parse().unwrap()),
            reason: "idle for 13m00s; limit 15m".to_owned(),
            policy_sha256: Some("abc".to_owned()),
            seq: Some(7),
            client: None,
        }
    }

    #[test]
    fn the_json_names_who_warned_and_leaves_out_what_is_not_known() {
        let agent = warning(By::Agent).to_json();
        assert_eq!(
            agent,
            json!({
                "event": "session_warned",
                "by": "agent",
                "target": "db",
                "rule": "inactivity",
                "role": "kim",
                "database": "app",
                "application": "psql",
                "pid": 4242,
                "backend_start": "2026-11-27T12:00:00Z",
                "deadline": "2026-11-27T12:15:00Z",
                "reason": "idle for 13m00s; limit 15m",
                "policy_sha256": "abc",
                "seq": 7,
            })
        );
        let gateway = Warning {
            backend_start: None,
            policy_sha256: None,
            seq: None,
            client: Some("10.0.0.7:50123".to_owned()),
            ..warning(By::Gateway)
        }
        .to_json();
        assert_eq!(gateway["by"], "gateway");
        assert_eq!(gateway["client"], "10.0.0.7:50123");
        for absent in ["backend_start", "policy_sha256", "seq"] {
            assert!(gateway.get(absent).is_none(), "{gateway}");
        }
    }
}
