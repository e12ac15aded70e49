//! Passwords read from files, never from the policy, the URL or the environment.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A password. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Password(pub(crate) String);

impl Password {
    /// The password itself, for the authentication exchange only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Why a password file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    /// Missing, unreadable, not UTF-8.
    #[error("cannot read password file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Nothing in it.
    #[error("password file {0} is empty")]
    Empty(String),
    /// Larger than any password file needs to be (it is read whole, so its size is bounded).
    #[error(
        "password file {0} is larger than {MAX_PASSWORD_FILE_BYTES} bytes; it should hold the password on its first line and nothing else"
    )]
    TooLarge(String),
}

/// The most a password file may hold. Read before the file is trusted, so the read is bounded
/// by this, not by the file's size; far beyond any real password (PostgreSQL's own password
/// packets are limited to a few kilobytes).
pub(crate) const MAX_PASSWORD_FILE_BYTES: u64 = 8192;

/// Read a password file: its first line, without the line ending. Returns the password and a
/// warning when the file is readable by group or others (as libpq warns about `.pgpass`).
pub fn read_password_file(path: &Path) -> Result<(Password, Option<String>), PasswordFileError> {
    let shown = path.display().to_string();
    let unreadable = |reason: String| PasswordFileError::Unreadable {
        path: shown.clone(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    let mode = metadata.permissions().mode() & 0o777;
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "password file {shown} is readable by group or others (mode {mode:04o}); run chmod 600 {shown}"
        )
    });
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, MAX_PASSWORD_FILE_BYTES + 1),
                &mut bytes,
            )
        })
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE_BYTES {
        return Err(PasswordFileError::TooLarge(shown));
    }
    let text = String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(PasswordFileError::Empty(shown));
    }
    Ok((Password(password), warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    use curfew_testkit::TempDir;

    /// A password file in a directory of its own; the file lives as long as the `TempDir`.
    fn file(name: &str, body: &str, mode: u32) -> (TempDir, std::path::PathBuf) {
        let dir = TempDir::new("pw", name);
        let path = dir.write("pw", body, mode);
        (dir, path)
    }

    #[test]
    fn first_line_without_its_ending() {
        let (_dir, path) = file("ok", "s3cret\r\n", 0o600);
        let (pw, warning) = read_password_file(&path).unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert!(warning.is_none());
        assert_eq!(format!("{pw:?}"), "Password(***)");
    }

    #[test]
    fn open_permissions_warn() {
        let (_dir, path) = file("open", "x\n", 0o644);
        let (_, warning) = read_password_file(&path).unwrap();
        assert!(warning.unwrap().contains("mode 0644"));
    }

    #[test]
    fn an_oversized_file_is_refused_without_reading_it_whole() {
        let big = "x".repeat(usize::try_from(MAX_PASSWORD_FILE_BYTES).unwrap() + 1);
        let (_big_dir, path) = file("big", &big, 0o600);
        let err = read_password_file(&path).unwrap_err();
        assert!(matches!(err, PasswordFileError::TooLarge(_)), "{err}");
        assert!(!err.to_string().contains("xxx"), "{err}");
        let just = "y".repeat(usize::try_from(MAX_PASSWORD_FILE_BYTES).unwrap());
        let (_just_dir, path) = file("just", &just, 0o600);
        let (pw, _) = read_password_file(&path).unwrap();
        assert_eq!(pw.expose().len(), just.len());
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        let (_dir, path) = file("empty", "\n", 0o600);
        assert!(matches!(
            read_password_file(&path),
            Err(PasswordFileError::Empty(_))
        ));
        assert!(matches!(
            read_password_file(Path::new("/no/such/file")),
            Err(PasswordFileError::Unreadable { .. })
        ));
    }
}
