//! `curfew verify`'s canary sessions on a MariaDB/MySQL target: a plain client logged in as the
//! canary account, reaching the server the way curfew's own connections do (the target URL's
//! endpoint and TLS), so the live test crosses the same network path and certificate checks.

use jiff::Timestamp;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::connect::{open, tls_options};
use crate::error::MysqlError;
use crate::grants::Flavor;
use crate::row::{column, micros};
use crate::target::MysqlTarget;
use crate::url::{Endpoint, TlsMode};

/// Logs in to `target`'s server as `user` with `password` (the canary's, made for one run),
/// presenting `program` as its `program_name`, over the URL's endpoint and TLS mode (CA,
/// client certificate, `prefer`'s fall-back without TLS), within its connect timeout, without
/// a default database (a canary account holds no privileges, so naming the URL's database
/// would have its login refused). The password is handed to the driver only: no error or
/// message carries it.
pub async fn connect_canary(
    target: &MysqlTarget,
    user: &str,
    password: &str,
    program: &str,
) -> Result<Conn, MysqlError> {
    let url = &target.url;
    let mut opts = OptsBuilder::default()
        .user(Some(user))
        .pass(Some(password))
        .connect_attribute("program_name", program);
    opts = match &url.endpoint {
        Endpoint::Tcp { host, port } => opts
            .ip_or_hostname(host.clone())
            .tcp_port(*port)
            .prefer_socket(false),
        Endpoint::Socket(path) => opts
            .socket(Some(path.display().to_string()))
            .prefer_socket(true),
    };
    match tls_options(target)? {
        Some(ssl) if url.tls == TlsMode::Prefer => {
            match open(target, opts.clone().ssl_opts(ssl)).await {
                Err(MysqlError::Connect {
                    source:
                        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer),
                    ..
                }) => open(target, opts).await,
                other => other,
            }
        }
        Some(ssl) => open(target, opts.ssl_opts(ssl)).await,
        None => open(target, opts).await,
    }
}

/// Creates canary account `user`@`host` with `password` for one `curfew verify` run, through
/// `curfew init`'s procedure `curfew.create_canary` (curfew's account holds no `CREATE USER`;
/// the procedure makes only new accounts without privileges). The password must be letters
/// and digits only; the server receives only its `mysql_native_password` hash
/// ([`native_password_hash`]), so a general or audit log holds no password. Nothing returned
/// carries the password.
pub async fn create_canary_account(
    conn: &mut Conn,
    target: &str,
    user: &str,
    host: &str,
    password: &str,
) -> Result<(), MysqlError> {
    if password.is_empty() || !password.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MysqlError::Unsupported {
            target: target.to_owned(),
            what: "a canary password other than letters and digits",
        });
    }
    conn.exec_drop(
        "CALL `curfew`.`create_canary`(?, ?, ?)",
        (user, host, native_password_hash(password)),
    )
    .await
    .map_err(|e| {
        MysqlError::query(
            target,
            "creating the canary account (curfew.create_canary)",
            e,
        )
    })
}

/// `mysql_native_password`'s stored form of `password`: `*` and the uppercase hexadecimal
/// SHA-1 of its SHA-1 (what `PASSWORD()` gives), letters and digits only.
pub fn native_password_hash(password: &str) -> String {
    use sha1::{Digest, Sha1};
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    let mut hash = String::with_capacity(41);
    hash.push('*');
    for b in twice {
        hash.push_str(&format!("{b:02X}"));
    }
    hash
}

/// Ends every session of canary user `user` (listed in the process list), then drops account
/// `user`@`host` if `curfew.create_canary` made it (`curfew.drop_canary`): run after every `curfew verify` run, whatever its outcome, so
/// no canary outlives it. Returns how many sessions were ended.
pub async fn drop_canary_account(
    conn: &mut Conn,
    target: &str,
    user: &str,
    host: &str,
) -> Result<usize, MysqlError> {
    let ids: Vec<u64> = conn
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user,),
        )
        .await
        .map_err(|e| MysqlError::query(target, "listing the canary's sessions", e))?;
    let mut ended = 0;
    for id in ids {
        match conn.query_drop(format!("KILL CONNECTION {id}")).await {
            Ok(()) => ended += 1,
            // 1094: unknown thread id, the session ended by itself meanwhile.
            Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
            Err(e) => return Err(MysqlError::query(target, "ending the canary's sessions", e)),
        }
    }
    conn.exec_drop("CALL `curfew`.`drop_canary`(?, ?)", (user, host))
        .await
        .map_err(|e| {
            MysqlError::query(
                target,
                "dropping the canary account (curfew.drop_canary)",
                e,
            )
        })?;
    Ok(ended)
}

/// The statement a canary's session runs to switch MariaDB's own idle limit off for itself
/// (`wait_timeout`'s largest value, a year), so only curfew can end it within a run.
pub const SWITCH_OFF_WAIT_TIMEOUT: &str = "SET SESSION wait_timeout = 31536000";

/// The statement a canary's session runs to switch the server's own limits off for itself:
/// [`SWITCH_OFF_WAIT_TIMEOUT`]'s idle limit, and on MariaDB 10.3+ also the idle-transaction
/// limit and the statement limit (`max_statement_time`, which would end a busy canary's
/// `SLEEP`); MySQL's statement limit is `max_execution_time`.
pub fn switch_off_statement(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb { major, minor } if (major, minor) >= (10, 3) => {
            "SET SESSION wait_timeout = 31536000, idle_transaction_timeout = 0, max_statement_time = 0"
        }
        Flavor::MariaDb { .. } => SWITCH_OFF_WAIT_TIMEOUT,
        Flavor::MySql => "SET SESSION wait_timeout = 31536000, max_execution_time = 0",
    }
}

/// A canary's session as the agent's snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanarySeen {
    /// The process list's `HOST` (`127.0.0.1:50712`, `localhost`).
    pub host: String,
    /// Its default database, if any.
    pub database: Option<String>,
    /// Its start, estimated as the snapshot does at first sight: the server's clock minus the
    /// time spent in its current command (so never earlier than the truth).
    pub started_at: Timestamp,
}

/// Connection `id` as the process list shows it now; `None` when it is gone.
pub async fn canary_seen(
    conn: &mut Conn,
    target: &str,
    flavor: Flavor,
    id: u64,
) -> Result<Option<CanarySeen>, MysqlError> {
    const WHAT: &str = "reading the canary's session";
    let time_us = match flavor {
        Flavor::MariaDb { .. } => "CAST(TIME_MS * 1000 AS SIGNED)",
        Flavor::MySql => "CAST(TIME AS SIGNED) * 1000000",
    };
    let row: Option<mysql_async::Row> = conn
        .exec_first(
            format!(
                "SELECT HOST, DB, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) - {time_us} \
                 FROM information_schema.PROCESSLIST WHERE ID = ?"
            ),
            (id,),
        )
        .await
        .map_err(|e| MysqlError::query(target, WHAT, e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(CanarySeen {
        host: column(&row, 0, target, WHAT)?,
        database: column(&row, 1, target, WHAT)?,
        started_at: micros(column(&row, 2, target, WHAT)?, target, WHAT)?,
    }))
}

/// Whether the server is read-only (`read_only = ON`, as on a replica): no canary account
/// can be created there.
pub async fn read_only(conn: &mut Conn, target: &str) -> Result<bool, MysqlError> {
    let value: Option<i64> = conn
        .query_first("SELECT @@GLOBAL.read_only")
        .await
        .map_err(|e| MysqlError::query(target, "reading read_only", e))?;
    Ok(value.unwrap_or(0) != 0)
}

/// Whether connection `id` is still in the server's process list.
pub async fn session_exists(conn: &mut Conn, target: &str, id: u64) -> Result<bool, MysqlError> {
    let count: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
            (id,),
        )
        .await
        .map_err(|e| MysqlError::query(target, "looking for the canary's session", e))?;
    Ok(count.unwrap_or(0) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_hash_is_what_password_gives() {
        // SELECT PASSWORD('password') on MariaDB.
        assert_eq!(
            native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
    }

    #[test]
    fn the_switch_off_covers_the_servers_own_limits_where_it_has_them() {
        let maria = |major, minor| Flavor::MariaDb { major, minor };
        let full = switch_off_statement(maria(10, 11));
        for limit in [
            "wait_timeout = 31536000",
            "idle_transaction_timeout = 0",
            "max_statement_time = 0",
        ] {
            assert!(full.contains(limit), "{full}");
        }
        assert_eq!(switch_off_statement(maria(10, 2)), SWITCH_OFF_WAIT_TIMEOUT);
        let mysql = switch_off_statement(Flavor::MySql);
        assert!(mysql.contains("max_execution_time = 0"), "{mysql}");
        assert!(!mysql.contains("idle_transaction_timeout"), "{mysql}");
    }
}
