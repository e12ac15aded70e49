//! Passwords read from files, never from the policy, the URL or the environment (as the
//! PostgreSQL adapter does; the two adapters do not depend on each other).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A password. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

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
}

/// Read a password file: its first line, without the line ending; with a warning when the
/// file is readable by group or others.
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
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(PasswordFileError::Empty(shown));
    }
    Ok((Password(password), warning))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn first_line_without_its_ending_never_shown() {
        let dir = curfew_testkit::TempDir::new("mysql-pw", "first-line");
        let path = dir.write("pw", "s3cret\r\nrest\n", 0o640);
        let (pw, warning) = read_password_file(&path).unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert_eq!(format!("{pw:?}"), "Password(***)");
        assert!(warning.unwrap().contains("mode 0640"));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_password_file(&path),
            Err(PasswordFileError::Empty(_))
        ));
    }
}
