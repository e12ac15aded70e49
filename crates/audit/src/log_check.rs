//! The part of an integrity check that needs only the log: its files read as one chain, and
//! its signed checkpoints checked with a public key. (The anchors kept on the targets are read
//! by the caller, which knows the targets.)

use std::path::{Path, PathBuf};

use crate::{AuditError, ChainVerification, Entry, KeyError, SignatureCheck, verify_chain};

/// Why the log could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LogCheckError {
    /// A path given does not exist.
    #[error("{}: no such file or directory", .0.display())]
    Missing(PathBuf),
    /// The files could not be read.
    #[error("reading {paths}")]
    Read {
        /// The paths given, joined by ", ".
        paths: String,
        /// Why.
        #[source]
        source: AuditError,
    },
    /// The paths hold no audit log file.
    #[error("no audit log file in {paths} (a directory's log files have .jsonl in their name)")]
    NoLogFile {
        /// The paths given, joined by ", ".
        paths: String,
    },
    /// The public key for the signed checkpoints could not be loaded.
    #[error("{0}")]
    PublicKey(#[source] KeyError),
}

impl LogCheckError {
    /// Whether what was given is at fault (a path, a key), rather than reading it.
    pub fn is_usage(&self) -> bool {
        !matches!(self, LogCheckError::Read { .. })
    }
}

/// The chain of a set of files, and its signatures when a key was given.
pub struct CheckedLog {
    /// The chain read from the files, and what is wrong with it.
    pub chain: ChainVerification,
    /// The signed checkpoints, when a public key was given.
    pub signatures: Option<SignatureCheck>,
}

/// Checks `paths` as one chain, handing each record to `each`, then the signed checkpoints
/// with the public key in the file `public_key` (when given).
pub fn check_log(
    paths: &[PathBuf],
    public_key: Option<&Path>,
    each: impl FnMut(&Entry),
) -> Result<CheckedLog, LogCheckError> {
    if let Some(path) = paths.iter().find(|p| !p.exists()) {
        return Err(LogCheckError::Missing(path.clone()));
    }
    let joined = || {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chain = verify_chain(paths, each).map_err(|source| LogCheckError::Read {
        paths: joined(),
        source,
    })?;
    if chain.files.is_empty() {
        return Err(LogCheckError::NoLogFile { paths: joined() });
    }
    let signatures = match public_key {
        Some(path) => {
            let key = chain
                .load_public_key(path)
                .map_err(LogCheckError::PublicKey)?;
            Some(chain.check_signatures(&key))
        }
        None => None,
    };
    Ok(CheckedLog { chain, signatures })
}

#[cfg(test)]
mod tests {
    use curfew_testkit::TempDir;

    use super::*;

    #[test]
    fn a_missing_path_or_a_directory_without_logs_is_the_caller_s_fault() {
        let dir = TempDir::new("audit-log-check", "faults");
        let missing = dir.join("nowhere.jsonl");
        let err = check_log(std::slice::from_ref(&missing), None, |_| {})
            .err()
            .expect("a missing file is refused");
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            format!("{}: no such file or directory", missing.display())
        );
        dir.write("notes.txt", "not a log\n", 0o600);
        let err = check_log(&[dir.path().to_path_buf()], None, |_| {})
            .err()
            .expect("a directory without log files is refused");
        assert!(err.is_usage());
        assert!(
            err.to_string().starts_with("no audit log file in "),
            "{err}"
        );
    }
}
