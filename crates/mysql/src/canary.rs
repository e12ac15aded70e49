//! `curfew verify`'s canary sessions on a MariaDB/MySQL target: a plain client logged in as the
//! canary account, reaching the server the way curfew's own connections do (the target URL's
//! endpoint and TLS), so the live test crosses the same network path and certificate checks.

use mysql_async::{Conn, OptsBuilder};

use crate::connect::{open, tls_options};
use crate::error::MysqlError;
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
