//! `curfew verify`'s canary sessions on a MariaDB/MySQL target: a plain client logged in as the
//! canary account, reaching the server the way curfew's own connections do (the target URL's
//! endpoint and TLS), so the live test crosses the same network path and certificate checks.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::connect::{open, tls_options};
use crate::error::MysqlError;
use crate::grants::account_name;
use crate::target::MysqlTarget;
use crate::url::{Endpoint, TlsMode};

/// Logs in to `target`'s server as `user` with `password` (the canary's, made for one run),
/// presenting `program` as its `program_name`, over the URL's endpoint and TLS mode (CA,
/// client certificate, `prefer`'s fall-back without TLS), within its connect timeout. The
/// password is handed to the driver only: no error or message carries it.
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
        .db_name(url.database.clone())
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

/// Creates canary account `user`@`host` with `password` for one `curfew verify` run. The
/// password must be letters and digits only: `IDENTIFIED BY` takes a string literal, not an
/// expression, and such a password reads the same under every SQL mode. Nothing returned
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
    let sql = format!(
        "CREATE USER {} IDENTIFIED BY '{password}'",
        account_name(user, host)
    );
    conn.query_drop(sql)
        .await
        .map_err(|e| MysqlError::query(target, "creating the canary account", e))
}

/// Ends every session of canary user `user` (listed in the process list), then drops account
/// `user`@`host` if it exists: run after every `curfew verify` run, whatever its outcome, so
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
    conn.query_drop(format!("DROP USER IF EXISTS {}", account_name(user, host)))
        .await
        .map_err(|e| MysqlError::query(target, "dropping the canary account", e))?;
    Ok(ended)
}

/// The statement a canary's session runs to switch MariaDB's own idle limit off for itself
/// (`wait_timeout`'s largest value, a year), so only curfew can end it within a run.
pub const SWITCH_OFF_WAIT_TIMEOUT: &str = "SET SESSION wait_timeout = 31536000";

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
