//! The log file itself: creating it, the agent's claim on it, and what its path names now.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// Take the agent claim on `<log>.agent-lock`, recording who holds it for the next one's
/// message.
pub(crate) fn claim(path: &Path) -> Result<File, AuditError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".agent-lock");
    let claim_path = PathBuf::from(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&claim_path)
        .map_err(|e| AuditError::io(&claim_path, "cannot open the agent claim", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&claim_path)
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty());
            return Err(AuditError::InUse {
                path: path.to_owned(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(AuditError::io(
                &claim_path,
                "cannot lock the agent claim",
                e,
            ));
        }
    }
    let holder = format!(
        "pid {} since {}",
        std::process::id(),
        jiff::Timestamp::now()
    );
    file.set_len(0)
        .and_then(|()| file.write_all(holder.as_bytes()))
        .map_err(|e| AuditError::io(&claim_path, "cannot write the agent claim", e))?;
    Ok(file)
}

/// Opens the file for reading and appending; `true` if it was created now.
pub(crate) fn open_file(path: &Path) -> Result<(File, bool), AuditError> {
    let created = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map(|file| (file, false))
            .map_err(|e| AuditError::io(path, "cannot open", e)),
        Err(e) => Err(AuditError::io(path, "cannot create", e)),
    }
}

/// Opens the log at `path`, creating it with mode 0600 if needed (and making its directory
/// entry durable); warnings for an existing file whose mode is too open.
pub(crate) fn open_log(path: &Path) -> Result<(File, Vec<String>), AuditError> {
    let (file, created) = open_file(path)?;
    let mut warnings = Vec::new();
    if created {
        // umask may have taken bits away, never added; set 0600 exactly so the owner can
        // still append, then make the new directory entry durable.
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(|e| AuditError::io(path, "cannot set permissions", e))?;
        sync_parent(path)?;
    } else {
        let metadata = file
            .metadata()
            .map_err(|e| AuditError::io(path, "cannot stat", e))?;
        warnings.extend(mode_warning(path, metadata.permissions().mode()));
    }
    Ok((file, warnings))
}

/// Fsyncs the directory holding `path`, so a crash cannot lose the new file's entry.
pub(crate) fn sync_parent(path: &Path) -> Result<(), AuditError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io(path, "cannot sync the parent directory", e))
}

/// A warning if group or others have any access to the log.
pub(crate) fn mode_warning(path: &Path, mode: u32) -> Option<String> {
    let mode = mode & 0o7777;
    if mode & 0o077 == 0 {
        return None;
    }
    let access = match (mode & 0o044 != 0, mode & 0o022 != 0) {
        (true, true) => "readable and writable",
        (true, false) => "readable",
        (false, true) => "writable",
        (false, false) => "accessible",
    };
    Some(format!(
        "audit log {} is {access} by group/others (mode {mode:04o}); chmod 600 it",
        path.display()
    ))
}

/// What the path and the open file are now, to tell whether the path still names the file
/// being written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    /// The open file's length.
    pub(crate) size: u64,
    /// The open file still has a name (it was not deleted).
    pub(crate) linked: bool,
    /// The path names the open file.
    pub(crate) same: bool,
    /// Nothing is at the path.
    pub(crate) missing: bool,
}

impl Seen {
    /// Looks at the open `file` and at `path`.
    pub(crate) fn now(file: &File, path: &Path) -> io::Result<Seen> {
        let held = file.metadata()?;
        let (same, missing) = match std::fs::metadata(path) {
            Ok(named) => (
                (named.dev(), named.ino()) == (held.dev(), held.ino()),
                false,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (false, true),
            Err(e) => return Err(e),
        };
        Ok(Seen {
            size: held.len(),
            linked: held.nlink() > 0,
            same,
            missing,
        })
    }

    /// Why nothing may be appended before acting, if so: the path must name the open file and
    /// the file must not have shrunk below `len`, the length after the last append seen.
    pub(crate) fn problem(&self, len: u64) -> Option<String> {
        if self.missing {
            Some(if self.linked {
                "the file was moved away while in use (rotated?), and nothing is at its path"
                    .to_owned()
            } else {
                "the file was deleted while in use".to_owned()
            })
        } else if !self.same {
            Some(if self.linked {
                "the path names another file: the log was moved away (rotated) and a new file put in its place".to_owned()
            } else {
                "the file was deleted while in use, and another file put in its place".to_owned()
            })
        } else if self.size < len {
            Some(format!(
                "the file shrank from {len} to {} bytes while in use (truncated in place, as logrotate's copytruncate does)",
                self.size
            ))
        } else {
            None
        }
    }

    /// Whether the records of actions already under way may still be appended to the open file
    /// (it was only moved: they belong next to their intents), though no new action may be.
    pub(crate) fn takes_outcomes(&self, len: u64) -> bool {
        self.linked && self.size >= len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_warnings() {
        let p = Path::new("/var/log/curfew/audit.jsonl");
        assert_eq!(mode_warning(p, 0o100600), None);
        assert_eq!(
            mode_warning(p, 0o100644).as_deref(),
            Some(
                "audit log /var/log/curfew/audit.jsonl is readable by group/others (mode 0644); chmod 600 it"
            )
        );
        assert!(mode_warning(p, 0o620).unwrap().contains("writable by"));
    }
}
