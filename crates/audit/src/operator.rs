//! Who runs this process, for the records of what a person did (`curfew lock`, `unlock`,
//! `verify`, `check`): the process's real uid and its passwd entry, never `$USER`, `$LOGNAME`
//! or `$SUDO_USER` (any caller sets those as it likes: `USER=the_ciso curfew unlock` must not
//! record the CISO).

use crate::{Actor, LedgerActor};

/// The person running this process, with the database role it acts as (if any).
pub fn current_actor(db_role: Option<&str>) -> Actor {
    let uid = rustix::process::getuid().as_raw();
    Actor {
        os_user: user_name(uid),
        uid,
        db_role: db_role.map(ToOwned::to_owned),
    }
}

/// For the login-lock ledger: the actor, this host, and a reason.
pub fn ledger_actor(db_role: &str, reason: Option<&str>) -> LedgerActor {
    LedgerActor {
        actor: current_actor(Some(db_role)),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty()),
        reason: reason.map(ToOwned::to_owned),
        // Stamped by the ledger function on the server, never by the command.
        server: None,
    }
}

/// The name of a uid: `/etc/passwd` first, then `getent passwd` (directory users: LDAP, SSSD).
/// `None` when neither knows it; the uid is recorded either way.
fn user_name(uid: u32) -> Option<String> {
    if let Some(name) = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| name_in_passwd(&text, uid))
    {
        return Some(name);
    }
    let output = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    name_in_passwd(&String::from_utf8_lossy(&output.stdout), uid)
}

/// The first user name with this uid in passwd(5) text (`name:x:uid:gid:...`); malformed lines
/// are skipped.
fn name_in_passwd(text: &str, uid: u32) -> Option<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let line_uid: u32 = fields.next()?.parse().ok()?;
            (line_uid == uid && !name.is_empty()).then(|| name.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_are_read_by_uid() {
        let text = "# comment\nroot:x:0:0:root:/root:/bin/bash\nbroken line\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n:x:1001:1001::/:/bin/sh\n";
        assert_eq!(name_in_passwd(text, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(text, 1000).as_deref(), Some("alice"));
        assert_eq!(name_in_passwd(text, 1001), None);
        assert_eq!(name_in_passwd(text, 4242), None);
    }

    #[test]
    fn the_actor_is_the_real_uid_not_the_environment() {
        // The environment is not consulted at all: whatever $USER says, the uid decides.
        let actor = current_actor(Some("curfew_agent"));
        assert_eq!(actor.uid, rustix::process::getuid().as_raw());
        assert_eq!(actor.db_role.as_deref(), Some("curfew_agent"));
    }
}
