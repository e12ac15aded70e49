//! Locating the PostgreSQL server binaries and finding out their version.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::SandboxError;

/// Environment variable naming a directory with `initdb`, `pg_ctl`,
/// `postgres` and `psql`; it takes precedence over every other way of
/// finding them.
pub const PG_BIN_ENV: &str = "CURFEW_PG_BIN";

/// How to get binaries, quoted in every [`SandboxError::NoBinaries`].
const HOW_TO_GET: &str = "apt-get install -y postgresql (Debian/Ubuntu), \
     or set CURFEW_PG_BIN to a directory containing initdb and pg_ctl";

/// The programs a cluster needs from the bin directory.
const REQUIRED: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];

/// Where Debian and Ubuntu install one directory per major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Where the server binaries are.
///
/// In order: `CURFEW_PG_BIN` if set (it must contain `initdb`, `pg_ctl`,
/// `postgres` and `psql`); else `pg_config --bindir` if `pg_config` is on
/// `PATH` and that directory has `initdb`; else the newest
/// `/usr/lib/postgresql/<N>/bin` (highest numeric `N`) that has `initdb`.
/// Otherwise [`SandboxError::NoBinaries`] with instructions.
pub fn find_binaries() -> Result<PathBuf, SandboxError> {
    if let Some(dir) = env::var_os(PG_BIN_ENV).filter(|value| !value.is_empty()) {
        let dir = PathBuf::from(dir);
        check_bin_dir(&dir, PG_BIN_ENV)?;
        return Ok(dir);
    }
    if let Some(dir) = pg_config_bindir().filter(|dir| is_executable(&dir.join("initdb"))) {
        return Ok(dir);
    }
    if let Some(dir) = newest_versioned_bindir(Path::new(DEBIAN_ROOT)) {
        return Ok(dir);
    }
    Err(SandboxError::NoBinaries(format!(
        "looked at ${PG_BIN_ENV}, `pg_config --bindir` and {DEBIAN_ROOT}/<N>/bin; \
         to get them: {HOW_TO_GET}"
    )))
}

/// Checks that `dir` holds every program a cluster needs; `source` names
/// where the directory came from, for the error message.
pub(crate) fn check_bin_dir(dir: &Path, source: &str) -> Result<(), SandboxError> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|program| !is_executable(&dir.join(program)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(SandboxError::NoBinaries(format!(
        "{source} is {}, which lacks {}; to get them: {HOW_TO_GET}",
        dir.display(),
        missing.join(", ")
    )))
}

/// Extracts the major version from `postgres --version` output, e.g.
/// `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` gives 15 and
/// `postgres (PostgreSQL) 17devel` gives 17.
pub(crate) fn parse_major_version(version_output: &str) -> Option<u32> {
    let token = version_output
        .split_whitespace()
        .find(|token| token.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The `<root>/<N>/bin` with the highest numeric `N` that contains `initdb`.
fn newest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        let debian = "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n";
        assert_eq!(parse_major_version(debian), Some(15));
        assert_eq!(parse_major_version("postgres (PostgreSQL) 16.4"), Some(16));
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 18beta1"),
            Some(18)
        );
        assert_eq!(parse_major_version("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major_version("no version here"), None);
    }

    #[test]
    fn missing_programs_are_named() {
        let err = check_bin_dir(Path::new("/nonexistent/curfew"), "test").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("initdb, pg_ctl, postgres, psql"), "{msg}");
        assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
    }

    #[test]
    fn newest_versioned_bindir_ignores_non_numeric_and_incomplete() {
        let root = env::temp_dir().join(format!("curfew-bindir-test-{}", std::process::id()));
        for (name, with_initdb) in [("14", true), ("16", true), ("17", false), ("x", true)] {
            let bin = root.join(name).join("bin");
            fs::create_dir_all(&bin).unwrap();
            if with_initdb {
                let initdb = bin.join("initdb");
                fs::write(&initdb, "#!/bin/sh\n").unwrap();
                fs::set_permissions(&initdb, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let found = newest_versioned_bindir(&root);
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, Some(root.join("16").join("bin")));
    }
}
