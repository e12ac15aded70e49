//! The error type shared by everything in this crate.

use std::io;

/// Everything that can go wrong while setting up or driving a sandbox cluster.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No usable PostgreSQL server binaries; the message says how to get them.
    #[error("PostgreSQL server binaries not found: {0}")]
    NoBinaries(String),

    /// A filesystem or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being attempted, e.g. "writing /tmp/.../pg_hba.conf".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An external program (initdb, pg_ctl, psql, postgres) failed.
    #[error("{what} failed ({}): {output}", describe_status(*status))]
    Command {
        /// The command that failed, e.g. "pg_ctl start".
        what: String,
        /// Its exit code, if it exited normally.
        status: Option<i32>,
        /// Its diagnostic output (and the server log tail where relevant).
        output: String,
    },

    /// Running as root but there is no `postgres` user to run the server as.
    #[error(
        "running as root, but /etc/passwd has no `postgres` user to run the server as \
         (initdb refuses to run as root): create one with `useradd --system postgres`, \
         or run as a normal user"
    )]
    NoPostgresUser,

    /// Running as root but there is no such OS user to run a server as (MariaDB runs as `mysql`,
    /// which Debian's `mariadb-server` package creates).
    #[error(
        "running as root, but /etc/passwd has no `{user}` user to run the server as \
         (the server refuses to run as root): install the server's package, which creates it, \
         or create one with `useradd --system {user}`"
    )]
    NoServerUser {
        /// The missing user.
        user: String,
    },

    /// MariaDB's server programs (`mariadbd`, `mariadb-install-db`, `mariadb`) were not found;
    /// the message says how to get them.
    #[error("MariaDB server programs not found: {0}")]
    NoMariaDb(String),

    /// The server did not become ready in time.
    #[error("{what} did not become ready within {seconds}s; last lines of its log:\n{log}")]
    NotReady {
        /// Which server.
        what: String,
        /// How long it was given.
        seconds: u64,
        /// The end of its log.
        log: String,
    },

    /// Generating test certificates failed.
    #[error("certificate generation failed: {0}")]
    Certificate(String),
}

impl SandboxError {
    /// Builds an [`SandboxError::Io`] with the given context.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}

fn describe_status(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exit status {code}"),
        None => "terminated by a signal".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_error_mentions_status_and_output() {
        let err = SandboxError::Command {
            what: "pg_ctl start".into(),
            status: Some(1),
            output: "boom".into(),
        };
        assert_eq!(err.to_string(), "pg_ctl start failed (exit status 1): boom");
    }

    #[test]
    fn no_postgres_user_says_how_to_fix() {
        let msg = SandboxError::NoPostgresUser.to_string();
        assert!(msg.contains("useradd --system postgres"), "{msg}");
        assert!(msg.contains("normal user"), "{msg}");
    }
}
