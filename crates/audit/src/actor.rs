//! Who did it: the person behind an action recorded in the audit log (`lock`, `unlock`,
//! `verify`, `check`), as `detail.actor = {"os_user", "uid", "db_role"}`.
//!
//! The operating-system user comes from the process's real uid, never from `$USER` (which any
//! caller sets as it likes); the database role is the one curfew connected as. Incident locks
//! are recorded by the agent from the login-lock ledger, so the actor travels there as JSON in
//! the ledger's `created_by` / `released_by` text, with the release's reason.

use serde::{Deserialize, Serialize};

/// The person behind an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user name of the real uid (its passwd entry), or `None` when it has none.
    pub os_user: Option<String>,
    /// The process's real uid.
    pub uid: u32,
    /// The database role curfew connected as for the action, where there was one.
    pub db_role: Option<String>,
}

/// What the ledger's `created_by` / `released_by` holds for a person's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerActor {
    /// Who.
    pub actor: Actor,
    /// The host the command ran on.
    #[serde(default)]
    pub host: Option<String>,
    /// Why (the release of a lock; a lock's own reason has its own column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the database server stamped when the ledger function ran: the caller cannot
    /// choose it, unlike everything above (which the command states).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerStamp>,
}

/// The session a ledger change came from, as the database server saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStamp {
    /// The session's role (`session_user`).
    pub session_user: String,
    /// The client's address; `None` over a Unix socket.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// The session's backend process id.
    #[serde(default)]
    pub pid: Option<i32>,
}

impl Actor {
    /// The actor as the `detail.actor` value of a record.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "os_user": self.os_user,
            "uid": self.uid,
            "db_role": self.db_role,
        })
    }

    /// For people: `alice (uid 1000, database role curfew_agent)`.
    pub fn label(&self) -> String {
        let name = self.os_user.as_deref().unwrap_or("unnamed user");
        match &self.db_role {
            Some(role) => format!("{name} (uid {}, database role {role})", self.uid),
            None => format!("{name} (uid {})", self.uid),
        }
    }
}

impl LedgerActor {
    /// The text stored in the ledger.
    pub fn to_ledger_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.actor.label())
    }

    /// Read a ledger `created_by` / `released_by`; `None` for what is not a person's action
    /// (`expired`, the agent's own notes, rows written before actors were recorded).
    pub fn from_ledger_text(text: &str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// For people: the actor's label, on which host, and why. With the server's stamp, the
    /// command's own statements are marked as such and the role is the server's.
    pub fn label(&self) -> String {
        let Some(server) = &self.server else {
            let mut text = self.actor.label();
            if let Some(host) = &self.host {
                text.push_str(&format!(" on {host}"));
            }
            return text;
        };
        let name = self.actor.os_user.as_deref().unwrap_or("unnamed user");
        let host = self
            .host
            .as_deref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        let from = server.client_addr.as_deref().map_or_else(
            || " over a local socket".to_owned(),
            |a| format!(" from {a}"),
        );
        format!(
            "{name} (uid {}{host}, as the command states) as database role {}{from}",
            self.actor.uid, server.session_user
        )
    }

    /// The `detail.actor` value: the actor, with the role the server stamped (when it did) in
    /// place of the one the command states, and the stamp itself.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.actor.to_json();
        if let (Some(server), Some(map)) = (&self.server, json.as_object_mut()) {
            map.insert("db_role".to_owned(), serde_json::json!(server.session_user));
            map.insert(
                "server".to_owned(),
                serde_json::to_value(server).unwrap_or_default(),
            );
            map.insert(
                "os_user_source".to_owned(),
                serde_json::json!("stated by the curfew command; the server stamps only the role, address and process"),
            );
        }
        json
    }
}

/// How a ledger `created_by` / `released_by` reads for people: the actor's label, or the
/// text as it is.
pub fn ledger_label(text: &str) -> String {
    LedgerActor::from_ledger_text(text).map_or_else(|| text.to_owned(), |a| a.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_text_round_trips_and_other_text_is_not_an_actor() {
        let a = LedgerActor {
            actor: Actor {
                os_user: Some("alice".into()),
                uid: 1000,
                db_role: Some("curfew_agent".into()),
            },
            host: Some("ops1".into()),
            reason: Some("INC-4711 closed".into()),
            server: None,
        };
        let text = a.to_ledger_text();
        assert_eq!(LedgerActor::from_ledger_text(&text), Some(a.clone()));
        assert_eq!(
            ledger_label(&text),
            "alice (uid 1000, database role curfew_agent) on ops1"
        );
        assert_eq!(
            a.actor.to_json(),
            serde_json::json!({"os_user": "alice", "uid": 1000, "db_role": "curfew_agent"})
        );
        assert_eq!(LedgerActor::from_ledger_text("expired"), None);
        assert_eq!(ledger_label("expired"), "expired");
        assert_eq!(LedgerActor::from_ledger_text("{not json"), None);
    }

    #[test]
    fn the_servers_stamp_names_the_role_and_marks_what_the_command_states() {
        // As the ledger function stores it: the command's JSON plus the server's stamp.
        let text = r#"{"actor":{"os_user":"the_ciso","uid":0,"db_role":"ciso_role"},"host":"ciso-laptop","server":{"session_user":"curfew_agent","client_addr":"10.0.0.5","pid":4242}}"#;
        let a = LedgerActor::from_ledger_text(text).unwrap();
        assert_eq!(
            a.label(),
            "the_ciso (uid 0 on ciso-laptop, as the command states) as database role curfew_agent from 10.0.0.5"
        );
        let json = a.to_json();
        assert_eq!(
            json["db_role"], "curfew_agent",
            "the server's, not the claim"
        );
        assert_eq!(json["server"]["pid"], 4242);
    }
}
