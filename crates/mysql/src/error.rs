//! The adapter's errors: each names the target and what was being done, and keeps the
//! driver's error (with the server's error number) as its source.

use crate::secret::PasswordFileError;

/// What went wrong talking to a MariaDB/MySQL target.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// The password file could not be read.
    #[error("target \"{target}\": {source}")]
    PasswordFile {
        /// The target.
        target: String,
        /// Why.
        source: PasswordFileError,
    },
    /// A TLS file (CA, client certificate or key) could not be used.
    #[error("target \"{target}\": TLS: {reason}")]
    Tls {
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// The connection could not be made (refused, authentication, TLS handshake).
    #[error("target \"{target}\": cannot connect to {url}: {source}")]
    Connect {
        /// The target.
        target: String,
        /// The URL, as it is safe to show.
        url: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// No answer within the connect timeout.
    #[error("target \"{target}\": no connection to {url} within {seconds}s")]
    ConnectTimeout {
        /// The target.
        target: String,
        /// The URL, as it is safe to show.
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// The account lacks privileges curfew needs; each missing one is named with the exact
    /// statement an administrator runs.
    #[error(
        "target \"{target}\": account {account} lacks privileges curfew needs; an administrator must run: {}",
        missing.join("; ")
    )]
    MissingPrivileges {
        /// The target.
        target: String,
        /// The account, quoted as MariaDB writes it (`'user'@'host'`).
        account: String,
        /// The `GRANT ... ON *.* TO ...` statements, one per missing privilege.
        missing: Vec<String>,
    },
    /// A statement failed.
    #[error("target \"{target}\": {what} failed: {source}")]
    Query {
        /// The target.
        target: String,
        /// What the statement was for.
        what: &'static str,
        /// The driver's error (a server error keeps its number and SQLSTATE).
        source: mysql_async::Error,
        /// Whether the connection is gone with it.
        lost: bool,
    },
    /// The leader lock is no longer held by the leader this connection's kills and account
    /// changes are fenced on (checked by the server in the statement that kills or alters).
    #[error(
        "target \"{target}\": this agent no longer holds the leader lock; nothing was ended or changed"
    )]
    NotLeading {
        /// The target.
        target: String,
    },
    /// Another session holds one of curfew's announcement locks (`curfew_leader:*`), so the
    /// leader cannot say which policy it enforces.
    #[error(
        "target \"{target}\": another session holds one of curfew's announcement locks (curfew_leader:*), so this agent cannot announce its policy"
    )]
    AnnouncementTaken {
        /// The target.
        target: String,
    },
    /// Something this adapter does not do yet on this server.
    #[error("target \"{target}\": not supported yet: {what}")]
    Unsupported {
        /// The target.
        target: String,
        /// What.
        what: &'static str,
    },
    /// `curfew init` found no account with curfew's user name (the administrator creates it,
    /// with its password, first).
    #[error(
        "target \"{target}\": no account named {user} exists: create it first (CREATE USER {user}@`HOST` IDENTIFIED BY ...)"
    )]
    NoSuchAccount {
        /// The target.
        target: String,
        /// The user name, quoted as an identifier.
        user: String,
    },
    /// A row the server sent could not be read.
    #[error("target \"{target}\": {what}: unexpected row from the server: {reason}")]
    Decode {
        /// The target.
        target: String,
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl MysqlError {
    /// A failed statement, noting whether the connection is gone.
    pub(crate) fn query(target: &str, what: &'static str, source: mysql_async::Error) -> Self {
        let lost = connection_lost(&source);
        MysqlError::Query {
            target: target.to_owned(),
            what,
            source,
            lost,
        }
    }

    /// A row that could not be read.
    pub(crate) fn decode(target: &str, what: &'static str, reason: impl Into<String>) -> Self {
        MysqlError::Decode {
            target: target.to_owned(),
            what,
            reason: reason.into(),
        }
    }

    /// The server's error number, where the server refused something.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            MysqlError::Query {
                source: mysql_async::Error::Server(e),
                ..
            }
            | MysqlError::Connect {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// Whether the connection is gone (reconnect and retry).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, MysqlError::Query { lost: true, .. })
    }
}

/// Server errors that end the session they arrive on: shutdown in progress (1053), the
/// connection killed (1927), too many connections for the server (1040).
const ENDS_SESSION: [u16; 3] = [1053, 1927, 1040];

/// Whether `e` leaves the connection unusable.
pub(crate) fn connection_lost(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => true,
        mysql_async::Error::Server(s) => ENDS_SESSION.contains(&s.code),
        _ => false,
    }
}
