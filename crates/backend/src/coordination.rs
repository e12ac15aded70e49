//! Coordination between agent replicas: who holds a target's leader lock, and what a leading
//! agent announces about itself (its mode and policy) where the others can read it.

use jiff::Timestamp;

/// Who holds the leader lock, as far as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's backend pid.
    pub pid: i64,
    /// Its client address, if it connected over TCP.
    pub client_addr: Option<String>,
    /// When its session started (about when it became leader, or shortly before).
    pub backend_start: Option<Timestamp>,
    /// The database it is connected to.
    pub database: Option<String>,
    /// Its `application_name`: a curfew agent announces its mode and policy there
    /// ([`crate::Coordination::announce`]).
    pub application: Option<String>,
    /// The holder's role (None: not a client session, e.g. a prepared transaction).
    pub role: Option<String>,
    /// Whether the holder is a session of the role curfew is connected as. Only such a session
    /// can be a curfew agent: any role can take an advisory lock and set its application name.
    pub own_role: bool,
    /// Whether it holds the lock (else it waits for it).
    pub granted: bool,
}

impl LockHolder {
    /// The holder in words: "session 4242 of role \"mallory\" from 10.0.0.5 on database
    /// \"app\", since ...".
    pub fn describe(&self) -> String {
        if self.backend_start.is_none() && self.role.is_none() {
            return format!(
                "a prepared transaction on database \"{}\" (no session to end: a superuser must ROLLBACK PREPARED it; see pg_prepared_xacts)",
                curfew_policy::visible(self.database.as_deref().unwrap_or("?"))
            );
        }
        // Names and addresses are the holder's own: shown, never obeyed.
        curfew_policy::visible(&format!(
            "session {} of role \"{}\" from {} on database \"{}\", since {}",
            self.pid,
            self.role.as_deref().unwrap_or("?"),
            self.client_addr.as_deref().unwrap_or("a local socket"),
            self.database.as_deref().unwrap_or("?"),
            self.backend_start.map_or_else(
                || "?".to_owned(),
                |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()
            ),
        ))
        .into_owned()
    }
}

/// What a leading agent shows as its lock session's `application_name`: its mode and the
/// start of its policy's SHA-256, e.g. `curfew agent: enforcing policy sha256:0123456789ab`
/// (at most 63 bytes, PostgreSQL's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The agent only records what it would do.
    pub dry_run: bool,
    /// The first 12 hex digits of its policy's SHA-256.
    pub sha256_prefix: String,
}

impl Announcement {
    /// The text for an agent in this mode with this policy.
    pub fn text(dry_run: bool, sha256: &str) -> String {
        format!(
            "curfew agent: {} policy sha256:{}",
            if dry_run { "dry run of" } else { "enforcing" },
            sha256.get(..12).unwrap_or(sha256)
        )
    }

    /// Read an announcement back; `None` for any other application name.
    pub fn parse(text: &str) -> Option<Announcement> {
        let rest = text.strip_prefix("curfew agent: ")?;
        let (dry_run, rest) = match rest.strip_prefix("dry run of policy sha256:") {
            Some(sha) => (true, sha),
            None => (false, rest.strip_prefix("enforcing policy sha256:")?),
        };
        // Exactly the 12 hex digits an agent writes: an empty or short prefix would match any
        // policy's hash.
        if rest.len() != 12 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Announcement {
            dry_run,
            sha256_prefix: rest.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_fit_and_read_back() {
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for dry_run in [false, true] {
            let text = Announcement::text(dry_run, sha);
            assert!(text.len() <= 63, "{text}");
            assert_eq!(
                Announcement::parse(&text),
                Some(Announcement {
                    dry_run,
                    sha256_prefix: "0123456789ab".to_owned()
                })
            );
        }
        assert_eq!(Announcement::parse("curfew"), None);
        assert_eq!(
            Announcement::parse("curfew agent: enforcing policy sha256:"),
            None
        );
        assert_eq!(
            Announcement::parse("curfew agent: enforcing policy sha256:0123"),
            None
        );
        assert_eq!(Announcement::parse("psql"), None);
    }
}
