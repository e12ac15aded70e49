//! A directory of its own for one test, removed when the test ends (passing or panicking).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory under the system temp dir, removed on drop. Its name holds the
/// suite, the process id, the test's name and a per-process counter, so tests running in
/// parallel (and several calls in one test) never share one.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/curfew-<suite>-<pid>-<name>-<n>`, created empty.
    ///
    /// # Panics
    /// When the directory cannot be created: a test cannot go on without it.
    pub fn new(suite: &str, name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("curfew-{suite}-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` with permissions `mode`; the file's path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        let written = std::fs::write(&path, contents)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)));
        if let Err(e) = written {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    /// A password file (mode 0600) named `password`, holding `password` and a newline.
    pub fn password_file(&self, password: &str) -> PathBuf {
        self.write("password", &format!("{password}\n"), 0o600)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::TempDir;

    #[test]
    fn each_directory_is_new_and_gone_after_drop() {
        let first = TempDir::new("testkit", "same");
        let second = TempDir::new("testkit", "same");
        assert_ne!(first.path(), second.path());
        let file = first.password_file("secret");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "secret\n");
        let kept = first.path().to_path_buf();
        drop(first);
        assert!(!kept.exists(), "{} is still there", kept.display());
        assert!(second.path().is_dir());
    }

    #[test]
    fn a_panicking_test_still_removes_its_directory() {
        let mut kept = None;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let dir = TempDir::new("testkit", "panic");
            kept = Some(dir.path().to_path_buf());
            panic!("the test fails");
        }));
        assert!(outcome.is_err());
        let kept = kept.unwrap();
        assert!(!kept.exists(), "{} is still there", kept.display());
    }
}
