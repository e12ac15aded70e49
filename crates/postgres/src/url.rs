//! libpq-style connection URLs: `postgresql://user@host:port/dbname?sslmode=verify-full&...`.
//!
//! Parsed strictly: an unknown parameter or an embedded password is an error, not something
//! silently ignored, because a typo in `sslmode` must not quietly weaken the connection.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use curfew_policy::{UrlValidator, ValidUrl};

/// How a connection uses TLS, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, without verifying it (libpq's default).
    Prefer,
    /// TLS always; the certificate is verified only if `sslrootcert` is given (as libpq does).
    Require,
    /// TLS always, certificate chain verified against `sslrootcert`.
    VerifyCa,
    /// TLS always, chain verified and the host name checked against the certificate.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's identity is checked (an attacker in the middle is detected).
    pub fn verifies_server(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Where to connect: a host name or address, or a Unix-socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// DNS name or IP address.
    Tcp(String),
    /// Directory holding the server's Unix socket (`host=/var/run/postgresql`).
    Socket(PathBuf),
}

/// A parsed connection URL. It never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionUrl {
    /// The role to log in as.
    pub user: String,
    /// Hosts to try in order, each with its port.
    pub hosts: Vec<(Host, u16)>,
    /// The database to connect to (default: the user name, as libpq).
    pub dbname: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA certificate(s) to verify the server against.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate and key, for certificate authentication.
    pub sslcert: Option<PathBuf>,
    /// Client key for `sslcert`.
    pub sslkey: Option<PathBuf>,
    /// How long to wait for a connection.
    pub connect_timeout: Option<Duration>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `postgresql://` or `postgres://` (the text shown has any password masked).
    #[error("connection URL must start with postgresql:// (got \"{0}\")")]
    Scheme(String),
    /// libpq's `host=... user=...` form, which curfew does not read (the text shown has any
    /// password masked).
    #[error(
        "connection URL must start with postgresql:// (got \"{0}\", libpq's keyword=value form); write it as postgresql://user@host:5432/dbname?sslmode=verify-full and keep any password in the file `password_file` names"
    )]
    KeywordForm(String),
    /// A malformed URL that may hold a password, so none of it is shown.
    #[error(
        "malformed connection URL, not shown because it may hold a password (a ':' before an '@', or a password parameter); write postgresql://user@host:5432/dbname and keep the password in the file `password_file` names"
    )]
    Hidden,
    /// A password inside the URL.
    #[error(
        "the connection URL contains a password; remove it and name a file holding it with `password_file`"
    )]
    Password,
    /// No user.
    #[error(
        "the connection URL names no user; curfew connects as a dedicated role, e.g. postgresql://curfew_agent@db1:5432/postgres"
    )]
    NoUser,
    /// A parameter curfew does not know.
    #[error(
        "unknown connection parameter \"{0}\"; supported: sslmode, sslrootcert, sslcert, sslkey, connect_timeout, host, port, user, dbname"
    )]
    UnknownParameter(String),
    /// A parameter curfew sets itself.
    #[error("connection parameter \"{0}\" is set by curfew and cannot be overridden")]
    Reserved(String),
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

impl ConnectionUrl {
    /// Parse a URL. No error echoes a password, in any form the text may hold one.
    pub fn parse(text: &str) -> Result<ConnectionUrl, UrlError> {
        let text = text.trim();
        Self::parse_unchecked(text).map_err(|e| match e {
            // These show nothing of the text, or only a redacted copy.
            UrlError::Password
            | UrlError::NoUser
            | UrlError::Hidden
            | UrlError::Scheme(_)
            | UrlError::KeywordForm(_) => e,
            // The others quote a piece of the text: a piece of a password, when the text was
            // split where a password was not expected (`u:pa/ss@h`, `u:p?ss@h`).
            _ if may_hold_password(text) => UrlError::Hidden,
            other => other,
        })
    }

    fn parse_unchecked(text: &str) -> Result<ConnectionUrl, UrlError> {
        let Some(rest) = text
            .strip_prefix("postgresql://")
            .or_else(|| text.strip_prefix("postgres://"))
        else {
            return Err(if !text.contains("://") && text.contains('=') {
                UrlError::KeywordForm(redact(text))
            } else {
                UrlError::Scheme(redact(text))
            });
        };
        if has_userinfo_password(rest) {
            return Err(UrlError::Password);
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
            None => (before_query, None),
        };
        if !authority.contains('@')
            && authority.contains(':')
            && path.is_some_and(|p| p.contains('@'))
        {
            // `user:pass/word@host`: a password holding a '/', which would otherwise become a
            // port and a database name, and be shown as such.
            return Err(UrlError::Hidden);
        }
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut user = None;
        if let Some(userinfo) = userinfo {
            user = Some(decode(userinfo)?);
        }
        let mut hosts = parse_hosts(hostlist)?;
        let mut dbname = path.filter(|p| !p.is_empty()).map(decode).transpose()?;
        let mut url = ConnectionUrl {
            user: String::new(),
            hosts: Vec::new(),
            dbname: String::new(),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            connect_timeout: None,
        };
        let mut port_override = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            if is_password_key(&key) {
                return Err(UrlError::Password);
            }
            let value = decode(value)?;
            match key.as_str() {
                "sslmode" => {
                    url.sslmode = match value.as_str() {
                        "disable" => SslMode::Disable,
                        "prefer" | "allow" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => {
                            return Err(UrlError::BadValue {
                                key,
                                value,
                                expected: "disable, prefer, require, verify-ca or verify-full",
                            });
                        }
                    }
                }
                "sslrootcert" => url.sslrootcert = Some(PathBuf::from(value)),
                "sslcert" => url.sslcert = Some(PathBuf::from(value)),
                "sslkey" => url.sslkey = Some(PathBuf::from(value)),
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| UrlError::BadValue {
                        key: key.clone(),
                        value: value.clone(),
                        expected: "a whole number of seconds",
                    })?;
                    url.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "host" => hosts = parse_host_param(&value)?,
                "port" => {
                    port_override = Some(value.parse::<u16>().map_err(|_| UrlError::BadValue {
                        key: key.clone(),
                        value: value.clone(),
                        expected: "a port number",
                    })?)
                }
                "user" => user = Some(value),
                "dbname" => dbname = Some(value),
                "application_name" | "fallback_application_name" | "options" => {
                    return Err(UrlError::Reserved(key));
                }
                _ => return Err(UrlError::UnknownParameter(key)),
            }
        }
        if let Some(port) = port_override {
            for (_, p) in &mut hosts {
                *p = port;
            }
        }
        if hosts.is_empty() {
            hosts.push((Host::Tcp("localhost".to_owned()), 5432));
        }
        url.user = user.filter(|u| !u.is_empty()).ok_or(UrlError::NoUser)?;
        url.dbname = dbname.unwrap_or_else(|| url.user.clone());
        url.hosts = hosts;
        if url.sslkey.is_some() != url.sslcert.is_some() {
            return Err(UrlError::Malformed(
                "sslcert and sslkey must be given together".to_owned(),
            ));
        }
        Ok(url)
    }

    /// The first TCP host name, for certificate checks and messages.
    pub fn primary_host(&self) -> String {
        match self.hosts.first() {
            Some((Host::Tcp(h), _)) => h.clone(),
            Some((Host::Socket(p), _)) => p.display().to_string(),
            None => "localhost".to_owned(),
        }
    }
}

impl fmt::Display for ConnectionUrl {
    /// A form safe for logs (there is never a password to hide).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(h, p)| match h {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{p}"),
                Host::Tcp(name) => format!("{name}:{p}"),
                Host::Socket(dir) => format!("{}:{p}", dir.display()),
            })
            .collect();
        write!(
            f,
            "postgresql://{}@{}/{}?sslmode={}",
            self.user,
            hosts.join(","),
            self.dbname,
            self.sslmode.as_str()
        )
    }
}

/// Whether the userinfo (as libpq finds it: the text before the first `/` or `@`, when an `@`
/// ends it) holds a `:`, i.e. `user:password@`.
fn has_userinfo_password(rest: &str) -> bool {
    match rest.find(['@', '/']) {
        Some(i) if rest.as_bytes()[i] == b'@' => rest[..i].contains(':'),
        _ => false,
    }
}

/// `password` however written (`Password`, `PASSWORD`): libpq's keys are case-sensitive, but a
/// secret is a secret.
fn is_password_key(key: &str) -> bool {
    key.trim().eq_ignore_ascii_case("password")
}

/// Whether a text that failed to parse may hold a password anywhere: a `:` before some `@`
/// after the scheme (a password the parser split elsewhere, e.g. holding `/` or `?`), or a
/// password key. Errors about such a text quote none of it.
fn may_hold_password(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let colon_before_at = match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) => colon < at,
        _ => false,
    };
    colon_before_at || text.to_ascii_lowercase().contains("password")
}

/// The text with every password masked as `***`, for messages about a text that did not parse:
/// a URL's userinfo after its `:` and `password` parameters, or the `password` value of libpq's
/// keyword=value form (quoted or not). Long texts are cut.
pub(crate) fn redact(text: &str) -> String {
    let masked = match text.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", redact_url_rest(rest)),
        None => redact_keywords(text),
    };
    let mut shown: String = masked.chars().take(120).collect();
    if shown.len() < masked.len() {
        shown.push_str("...");
    }
    shown
}

fn redact_url_rest(rest: &str) -> String {
    // The userinfo, as generously as possible: up to the last '@'.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let mut out = String::new();
    if let Some(u) = userinfo {
        match u.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push_str(":***");
            }
            None => out.push_str(u),
        }
    }
    match after.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_password_key(&decode(key).unwrap_or_default()) => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(after),
    }
    out
}

/// libpq's keyword=value form with `password` values masked. Values may be single-quoted with
/// backslash escapes; an unterminated quote masks the rest of the text.
fn redact_keywords(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    loop {
        // Whitespace between pairs.
        while let Some(c) = chars.next_if(|c| c.is_whitespace()) {
            out.push(c);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        out.push_str(&key);
        while let Some(c) = chars.next_if(|c| c.is_whitespace()) {
            out.push(c);
        }
        if chars.next_if_eq(&'=').is_none() {
            // Not a pair (or the end): show the rest only if it cannot hold a secret.
            let rest: String = chars.collect();
            if !rest.is_empty() {
                out.push_str(if rest.to_ascii_lowercase().contains("password") {
                    "***"
                } else {
                    &rest
                });
            }
            return out;
        }
        out.push('=');
        while let Some(c) = chars.next_if(|c| c.is_whitespace()) {
            out.push(c);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            let mut closed = false;
            while let Some(c) = chars.next() {
                value.push(c);
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => {
                        closed = true;
                        break;
                    }
                    _ => {}
                }
            }
            if !closed {
                out.push_str("***");
                return out;
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
                if c == '\\' {
                    value.extend(chars.next());
                }
            }
        }
        out.push_str(if is_password_key(&key) { "***" } else { &value });
        if chars.peek().is_none() {
            return out;
        }
    }
}

fn parse_hosts(list: &str) -> Result<Vec<(Host, u16)>, UrlError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|item| {
            let (host, port) = if let Some(rest) = item.strip_prefix('[') {
                let (h, after) = rest
                    .split_once(']')
                    .ok_or_else(|| UrlError::Malformed(format!("unclosed [ in host \"{item}\"")))?;
                (h.to_owned(), after.strip_prefix(':'))
            } else {
                match item.rsplit_once(':') {
                    Some((h, p)) => (decode(h)?, Some(p)),
                    None => (decode(item)?, None),
                }
            };
            let port = match port {
                Some(p) => p.parse::<u16>().map_err(|_| UrlError::BadValue {
                    key: "port".into(),
                    value: p.to_owned(),
                    expected: "a port number",
                })?,
                None => 5432,
            };
            let host = if host.starts_with('/') {
                Host::Socket(PathBuf::from(host))
            } else {
                Host::Tcp(host)
            };
            Ok((host, port))
        })
        .collect()
}

fn parse_host_param(value: &str) -> Result<Vec<(Host, u16)>, UrlError> {
    Ok(value
        .split(',')
        .map(|h| {
            if h.starts_with('/') {
                (Host::Socket(PathBuf::from(h)), 5432)
            } else {
                (Host::Tcp(h.to_owned()), 5432)
            }
        })
        .collect())
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

/// PostgreSQL's reading of policy URLs, which the policy parser is given so that `curfew
/// validate` reports a bad URL at its `file:line:col`.
pub static POSTGRES_URLS: PostgresUrls = PostgresUrls;

/// The [`UrlValidator`] for `postgresql://` and `postgres://` URLs (see [`POSTGRES_URLS`]).
#[derive(Debug, Clone, Copy)]
pub struct PostgresUrls;

impl UrlValidator for PostgresUrls {
    fn schemes(&self) -> &[&str] {
        &["postgresql", "postgres"]
    }

    fn validate(&self, text: &str) -> Result<ValidUrl, String> {
        let url = ConnectionUrl::parse(text).map_err(|e| e.to_string())?;
        let tcp = url.hosts.iter().any(|(h, _)| matches!(h, Host::Tcp(_)));
        let mut warnings = Vec::new();
        if tcp && !url.sslmode.verifies_server() {
            warnings.push(format!(
                "uses sslmode={}: the server's identity is not verified; use sslmode=verify-full with sslrootcert",
                url.sslmode.as_str()
            ));
        }
        Ok(ValidUrl {
            login_role: url.user,
            warnings,
            limits: curfew_policy::AdapterLimits::default(),
        })
    }
}

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
