//! MariaDB/MySQL connection URLs: `mariadb://user@host:3306/db?sslmode=verify-full&...` (or
//! `mysql://`). Parsed strictly, as the PostgreSQL side: an unknown parameter or an embedded
//! password is an error, and no error quotes a text that may hold a password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use curfew_policy::{UrlValidator, ValidUrl};

/// MariaDB's and MySQL's port.
pub const DEFAULT_PORT: u16 = 3306;

/// How a connection uses TLS: libpq's `sslmode` words, or MySQL's `ssl-mode` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS (`disable`, `DISABLED`).
    Disable,
    /// TLS if the server offers it, unverified (`prefer`, `PREFERRED`; MySQL's default).
    Prefer,
    /// TLS always; verified only if `sslrootcert` is given (`require`, `REQUIRED`).
    Require,
    /// TLS always, the chain verified against `sslrootcert` (`verify-ca`, `VERIFY_CA`).
    VerifyCa,
    /// TLS always, chain and host name verified (`verify-full`, `VERIFY_IDENTITY`).
    VerifyFull,
}

impl TlsMode {
    /// The libpq spelling, as curfew writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's identity is checked.
    pub fn verifies_server(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }

    fn parse(value: &str) -> Option<TlsMode> {
        Some(
            match value.to_ascii_lowercase().replace('_', "-").as_str() {
                "disable" | "disabled" => TlsMode::Disable,
                "prefer" | "preferred" => TlsMode::Prefer,
                "require" | "required" => TlsMode::Require,
                "verify-ca" => TlsMode::VerifyCa,
                "verify-full" | "verify-identity" => TlsMode::VerifyFull,
                _ => return None,
            },
        )
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A host name or address and a port.
    Tcp {
        /// DNS name or IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// The server's Unix socket (`?socket=/run/mysqld/mysqld.sock`).
    Socket(PathBuf),
}

/// A parsed connection URL. It never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlUrl {
    /// `mariadb` or `mysql`, as written (the server's kind is learned at connect).
    pub scheme: &'static str,
    /// The account's user name (its host part is the server's business).
    pub user: String,
    /// Where.
    pub endpoint: Endpoint,
    /// The default database, if any.
    pub database: Option<String>,
    /// TLS mode.
    pub tls: TlsMode,
    /// CA certificate(s) to verify the server against.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate, for certificate authentication.
    pub sslcert: Option<PathBuf>,
    /// Client key for `sslcert`.
    pub sslkey: Option<PathBuf>,
    /// How long to wait for a connection.
    pub connect_timeout: Option<Duration>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `mariadb://` or `mysql://`.
    #[error("connection URL must start with mariadb:// or mysql:// (got \"{0}\")")]
    Scheme(String),
    /// A malformed URL that may hold a password, so none of it is shown.
    #[error(
        "malformed connection URL, not shown because it may hold a password (a ':' before an '@', or a password parameter); write mariadb://user@host:3306/db and keep the password in the file `password_file` names"
    )]
    Hidden,
    /// A password inside the URL.
    #[error(
        "the connection URL contains a password; remove it and name a file holding it with `password_file`"
    )]
    Password,
    /// No user.
    #[error(
        "the connection URL names no user; curfew connects as a dedicated account, e.g. mariadb://curfew_agent@db1:3306/"
    )]
    NoUser,
    /// A parameter curfew does not know.
    #[error(
        "unknown connection parameter \"{0}\"; supported: sslmode (or ssl-mode), sslrootcert (or ssl-ca), sslcert (or ssl-cert), sslkey (or ssl-key), connect_timeout, socket"
    )]
    UnknownParameter(String),
    /// A bad value.
    #[error("bad value for {key}: \"{value}\"; expected {expected}")]
    BadValue {
        /// The parameter.
        key: String,
        /// As written.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// Bad percent-encoding or structure.
    #[error("malformed connection URL: {0}")]
    Malformed(String),
}

impl MysqlUrl {
    /// Parse a URL. No error echoes a password, in any form the text may hold one.
    pub fn parse(text: &str) -> Result<MysqlUrl, UrlError> {
        let text = text.trim();
        parse_unchecked(text).map_err(|e| match e {
            UrlError::Password | UrlError::NoUser | UrlError::Hidden => e,
            _ if may_hold_password(text) => UrlError::Hidden,
            other => other,
        })
    }
}

fn parse_unchecked(text: &str) -> Result<MysqlUrl, UrlError> {
    let (scheme, rest) = if let Some(rest) = text.strip_prefix("mariadb://") {
        ("mariadb", rest)
    } else if let Some(rest) = text.strip_prefix("mysql://") {
        ("mysql", rest)
    } else {
        if may_hold_password(text) {
            return Err(UrlError::Hidden);
        }
        let shown: String = text.chars().take(120).collect();
        return Err(UrlError::Scheme(shown));
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if userinfo.is_some_and(|u| u.contains(':'))
        || (userinfo.is_none() && path.is_some_and(|p| p.contains('@')))
    {
        return Err(UrlError::Password);
    }
    let mut user = userinfo.map(decode).transpose()?;
    let mut endpoint = parse_host_port(hostport)?;
    let database = path.filter(|p| !p.is_empty()).map(decode).transpose()?;
    if database.as_deref().is_some_and(|d| d.contains('/')) {
        return Err(UrlError::Malformed(
            "a database name holds a '/'".to_owned(),
        ));
    }
    let mut url = MysqlUrl {
        scheme,
        user: String::new(),
        endpoint: Endpoint::Socket(PathBuf::new()),
        database,
        tls: TlsMode::Prefer,
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        connect_timeout: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key)?;
        if is_password_key(&key) {
            return Err(UrlError::Password);
        }
        let value = decode(value)?;
        match key.as_str() {
            "sslmode" | "ssl-mode" | "ssl_mode" => {
                url.tls = TlsMode::parse(&value).ok_or_else(|| UrlError::BadValue {
                    key: key.clone(),
                    value: value.clone(),
                    expected: "disable, prefer, require, verify-ca or verify-full (or MySQL's DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)",
                })?;
            }
            "sslrootcert" | "ssl-ca" => url.sslrootcert = Some(PathBuf::from(value)),
            "sslcert" | "ssl-cert" => url.sslcert = Some(PathBuf::from(value)),
            "sslkey" | "ssl-key" => url.sslkey = Some(PathBuf::from(value)),
            "connect_timeout" => {
                let secs: u64 = value.parse().map_err(|_| UrlError::BadValue {
                    key: key.clone(),
                    value: value.clone(),
                    expected: "a whole number of seconds",
                })?;
                url.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "socket" => {
                if !value.starts_with('/') {
                    return Err(UrlError::BadValue {
                        key,
                        value,
                        expected: "an absolute path to the server's socket",
                    });
                }
                endpoint = Some(Endpoint::Socket(PathBuf::from(value)));
            }
            "user" => user = Some(value),
            _ => return Err(UrlError::UnknownParameter(key)),
        }
    }
    url.user = user.filter(|u| !u.is_empty()).ok_or(UrlError::NoUser)?;
    url.endpoint = endpoint.unwrap_or_else(|| Endpoint::Tcp {
        host: "localhost".to_owned(),
        port: DEFAULT_PORT,
    });
    if url.sslkey.is_some() != url.sslcert.is_some() {
        return Err(UrlError::Malformed(
            "sslcert and sslkey must be given together".to_owned(),
        ));
    }
    Ok(url)
}

impl MysqlUrl {
    /// The host name, for certificate checks and messages (the socket's path for a socket).
    pub fn host(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp { host, .. } => host.clone(),
            Endpoint::Socket(path) => path.display().to_string(),
        }
    }
}

impl fmt::Display for MysqlUrl {
    /// A form safe for logs (there is never a password to hide).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}@", self.scheme, self.user)?;
        match &self.endpoint {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}")?,
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}")?,
            Endpoint::Socket(_) => {}
        }
        write!(f, "/{}", self.database.as_deref().unwrap_or(""))?;
        write!(f, "?sslmode={}", self.tls.as_str())?;
        if let Endpoint::Socket(path) = &self.endpoint {
            write!(f, "&socket={}", path.display())?;
        }
        Ok(())
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or empty (none given).
fn parse_host_port(text: &str) -> Result<Option<Endpoint>, UrlError> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains(',') {
        return Err(UrlError::Malformed(
            "one host only: MariaDB and MySQL have no multi-host URLs".to_owned(),
        ));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| UrlError::Malformed(format!("unclosed [ in host \"{text}\"")))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (decode(h)?, Some(p)),
            None => (decode(text)?, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| UrlError::BadValue {
                key: "port".to_owned(),
                value: p.to_owned(),
                expected: "a port number",
            })?,
        None => DEFAULT_PORT,
    };
    Ok(Some(Endpoint::Tcp { host, port }))
}

/// `password` or `pass` however written: a secret is a secret.
fn is_password_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key == "password" || key == "pass" || key == "passwd"
}

/// Whether a text may hold a password anywhere (a `:` before some `@` after the scheme, or a
/// password key): errors about such a text quote none of it.
fn may_hold_password(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let colon_before_at = match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) => colon < at,
        _ => false,
    };
    let lower = text.to_ascii_lowercase();
    colon_before_at || lower.contains("pass")
}

/// Percent-decoding (`%2F` -> `/`), strict about malformed escapes.
fn decode(text: &str) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UrlError::Malformed(format!("bad percent-escape in \"{text}\"")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Malformed(format!("\"{text}\" is not UTF-8")))
}

/// MariaDB's and MySQL's reading of policy URLs, for the policy parser (`curfew validate`
/// reports a bad URL at its `file:line:col`).
pub static MYSQL_URLS: MysqlUrls = MysqlUrls;

/// The [`UrlValidator`] for `mariadb://` and `mysql://` URLs (see [`MYSQL_URLS`]).
#[derive(Debug, Clone, Copy)]
pub struct MysqlUrls;

/// Whether `url` starts with one of [`MYSQL_URLS`]' schemes and `://` (case aside): the one
/// test every command uses to pick this adapter. Never panics on any text.
pub fn is_mysql_url(url: &str) -> bool {
    let text = url.trim();
    MYSQL_URLS.schemes().iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            && text[scheme.len()..].starts_with("://")
    })
}

impl UrlValidator for MysqlUrls {
    fn schemes(&self) -> &[&str] {
        &["mariadb", "mysql"]
    }

    fn validate(&self, text: &str) -> Result<ValidUrl, String> {
        let url = MysqlUrl::parse(text).map_err(|e| e.to_string())?;
        let mut warnings = Vec::new();
        if matches!(url.endpoint, Endpoint::Tcp { .. }) && !url.tls.verifies_server() {
            warnings.push(format!(
                "uses sslmode={}: the server's identity is not verified; use sslmode=verify-full with sslrootcert",
                url.tls.as_str()
            ));
        }
        Ok(ValidUrl {
            login_role: url.user,
            warnings,
            limits: LIMITS,
        })
    }
}

/// What curfew cannot do on MariaDB/MySQL targets yet (issue 18): the policy is warned about
/// at the target's URL, at start and on reload. Login locks are kept (`crate::ledger`; the
/// privileges they need are named when the agent first reads the ledger).
pub(crate) const LIMITS: curfew_policy::AdapterLimits = curfew_policy::AdapterLimits {
    no_login_locks: None,
    no_role_memberships: Some("is MariaDB/MySQL, whose roles curfew does not read yet"),
};

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
