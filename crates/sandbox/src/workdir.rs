//! Unique sandbox directories and free loopback ports.

use std::env;
use std::fs;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::config::HOST;
use crate::error::SandboxError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a fresh, empty, mode-0700 directory
/// `<temp dir>/curfew-sandbox-<pid>-<counter>-<random-ish>`.
pub(crate) fn create_unique_dir() -> Result<PathBuf, SandboxError> {
    let base = env::temp_dir();
    let mut last_error = None;
    for _ in 0..16 {
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!(
            "curfew-sandbox-{}-{counter}-{:08x}",
            process::id(),
            random_ish() & 0xffff_ffff
        ));
        match fs::create_dir(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(|e| {
                    let _ = fs::remove_dir(&path);
                    SandboxError::io(format!("setting permissions of {}", path.display()), e)
                })?;
                return Ok(path);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => {
                return Err(SandboxError::io(
                    format!("creating a directory in {}", base.display()),
                    e,
                ));
            }
        }
    }
    Err(SandboxError::io(
        format!("creating a unique directory in {}", base.display()),
        last_error.unwrap_or_else(|| ErrorKind::AlreadyExists.into()),
    ))
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16, SandboxError> {
    let listener = TcpListener::bind((HOST, 0))
        .map_err(|e| SandboxError::io(format!("binding a free port on {HOST}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SandboxError::io("reading the bound port", e))?;
    Ok(addr.port())
}

/// Not cryptographic: only to make directory names hard to predict.
fn random_ish() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_unique_and_private() {
        let a = create_unique_dir().unwrap();
        let b = create_unique_dir().unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("curfew-sandbox-{}-", process::id())));
        let mode = fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::remove_dir(a).unwrap();
        fs::remove_dir(b).unwrap();
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
