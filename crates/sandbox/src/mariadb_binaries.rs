//! Locating MariaDB's server programs: `mariadbd`, `mariadb-install-db` and the `mariadb`
//! client (Debian puts the server in `/usr/sbin` and the others in `/usr/bin`).

use std::env;
use std::path::{Path, PathBuf};

use crate::binaries::is_executable;
use crate::error::SandboxError;

/// Environment variable naming a directory that holds `mariadbd`, `mariadb-install-db` and
/// `mariadb`; it takes precedence over every other way of finding them.
pub const MARIADB_BIN_ENV: &str = "CURFEW_MARIADB_BIN";

/// How to get the programs, quoted in every [`SandboxError::NoMariaDb`].
const HOW_TO_GET: &str = "apt-get install -y --no-install-recommends mariadb-server \
     (Debian/Ubuntu; the system service need not run), or set CURFEW_MARIADB_BIN to a \
     directory containing mariadbd, mariadb-install-db and mariadb";

/// Where distributions install them, searched in order after `PATH`.
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// The programs a MariaDB sandbox runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbPrograms {
    /// The server.
    pub server: PathBuf,
    /// The data directory initializer.
    pub install_db: PathBuf,
    /// The command-line client, for fixtures.
    pub client: PathBuf,
}

impl MariaDbPrograms {
    /// The programs in one directory, or which of them it lacks; `source` names where the
    /// directory came from, for the error.
    pub(crate) fn in_dir(dir: &Path, source: &str) -> Result<MariaDbPrograms, SandboxError> {
        let programs = MariaDbPrograms {
            server: dir.join("mariadbd"),
            install_db: dir.join("mariadb-install-db"),
            client: dir.join("mariadb"),
        };
        let missing: Vec<&str> = [
            (&programs.server, "mariadbd"),
            (&programs.install_db, "mariadb-install-db"),
            (&programs.client, "mariadb"),
        ]
        .into_iter()
        .filter(|(path, _)| !is_executable(path))
        .map(|(_, name)| name)
        .collect();
        if missing.is_empty() {
            return Ok(programs);
        }
        Err(SandboxError::NoMariaDb(format!(
            "{source} is {}, which lacks {}; to get them: {HOW_TO_GET}",
            dir.display(),
            missing.join(", ")
        )))
    }
}

/// Where MariaDB's programs are: in `CURFEW_MARIADB_BIN` if set (it must hold all three), else
/// each found on `PATH` or in the system directories. Otherwise [`SandboxError::NoMariaDb`]
/// with instructions.
pub fn find_mariadb() -> Result<MariaDbPrograms, SandboxError> {
    if let Some(dir) = env::var_os(MARIADB_BIN_ENV).filter(|value| !value.is_empty()) {
        return MariaDbPrograms::in_dir(Path::new(&dir), MARIADB_BIN_ENV);
    }
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    let find = |name: &str| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|path| is_executable(path))
    };
    match (
        find("mariadbd"),
        find("mariadb-install-db"),
        find("mariadb"),
    ) {
        (Some(server), Some(install_db), Some(client)) => Ok(MariaDbPrograms {
            server,
            install_db,
            client,
        }),
        _ => Err(SandboxError::NoMariaDb(format!(
            "looked at ${MARIADB_BIN_ENV}, PATH and {}; to get them: {HOW_TO_GET}",
            SYSTEM_DIRS.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_the_programs_names_what_it_lacks() {
        let err = MariaDbPrograms::in_dir(Path::new("/nonexistent/curfew"), "test").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("mariadbd, mariadb-install-db, mariadb"),
            "{msg}"
        );
        assert!(msg.contains("apt-get install"), "{msg}");
    }
}
