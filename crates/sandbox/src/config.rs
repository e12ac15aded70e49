//! Rendering `postgresql.conf` additions, `pg_hba.conf` and connection URLs.

use std::fmt::Write as _;
use std::path::Path;

use crate::options::{Auth, Options};

/// The loopback address the server listens on.
pub(crate) const HOST: &str = "127.0.0.1";

/// File names (inside the data directory) of the TLS certificate and key.
pub(crate) const TLS_CERT_FILE: &str = "server.crt";
/// See [`TLS_CERT_FILE`].
pub(crate) const TLS_KEY_FILE: &str = "server.key";

/// Quotes a value for `postgresql.conf`: single quotes, with quotes doubled
/// and backslashes and newlines escaped (the file's lexer processes
/// C-style backslash escapes inside quoted strings).
pub(crate) fn quote_conf_value(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            other => quoted.push(other),
        }
    }
    quoted.push('\'');
    quoted
}

/// The settings appended to the `postgresql.conf` that initdb wrote.
pub(crate) fn conf_additions(
    options: &Options,
    port: u16,
    socket_dir: &Path,
    data_dir: &Path,
) -> String {
    let socket_dir = socket_dir.to_string_lossy();
    let mut conf = String::from("\n# Added by curfew-sandbox.\n");
    let mut set = |name: &str, value: &str| {
        // Writing to a String cannot fail.
        let _ = writeln!(conf, "{name} = {value}");
    };
    set("listen_addresses", &quote_conf_value(HOST));
    set("port", &port.to_string());
    set("unix_socket_directories", &quote_conf_value(&socket_dir));
    set("fsync", "off");
    set("synchronous_commit", "off");
    set("full_page_writes", "off");
    if let Some(max) = options.max_connections {
        set("max_connections", &max.to_string());
    }
    if options.auth == Auth::Scram {
        set("password_encryption", &quote_conf_value("scram-sha-256"));
    }
    if options.tls.is_some() {
        let cert = data_dir.join(TLS_CERT_FILE);
        let key = data_dir.join(TLS_KEY_FILE);
        set("ssl", "on");
        set("ssl_cert_file", &quote_conf_value(&cert.to_string_lossy()));
        set("ssl_key_file", &quote_conf_value(&key.to_string_lossy()));
    }
    for (name, value) in &options.settings {
        set(name, &quote_conf_value(value));
    }
    conf
}

/// The complete `pg_hba.conf`: the Unix socket trusts everyone, TCP from
/// loopback follows `auth` (and, with TLS and SCRAM, requires TLS).
pub(crate) fn pg_hba(options: &Options) -> String {
    let mut hba = String::from(
        "# Written by curfew-sandbox.\n\
         # TYPE     DATABASE  USER  ADDRESS        METHOD\n\
         local      all       all                  trust\n",
    );
    for address in ["127.0.0.1/32", "::1/128"] {
        let lines: &[(&str, &str)] = match (options.auth, options.tls.is_some()) {
            (Auth::Trust, _) => &[("host", "trust")],
            (Auth::Scram, false) => &[("host", "scram-sha-256")],
            (Auth::Scram, true) => &[("hostssl", "scram-sha-256"), ("hostnossl", "reject")],
        };
        for (kind, method) in lines {
            let _ = writeln!(hba, "{kind:<10} all       all   {address:<14} {method}");
        }
    }
    hba
}

/// `postgresql://USER@127.0.0.1:PORT/DB?sslmode=disable`, percent-encoding
/// the user and database.
pub(crate) fn url(user: &str, port: u16, database: &str) -> String {
    format!(
        "postgresql://{}@{HOST}:{port}/{}?sslmode=disable",
        percent_encode(user),
        percent_encode(database)
    )
}

/// Percent-encodes every byte except RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::TlsFiles;

    fn tls() -> Option<TlsFiles> {
        Some(TlsFiles {
            cert_pem: String::new(),
            key_pem: String::new(),
        })
    }

    #[test]
    fn quotes_like_postgresql_expects() {
        assert_eq!(quote_conf_value("plain"), "'plain'");
        assert_eq!(quote_conf_value("it's"), "'it''s'");
        assert_eq!(quote_conf_value(r"a\b"), r"'a\\b'");
        assert_eq!(quote_conf_value("a\nb"), r"'a\nb'");
    }

    #[test]
    fn conf_has_port_socket_and_extras_last() {
        let options = Options {
            max_connections: Some(20),
            settings: vec![("application_name".into(), "x'y".into())],
            tls: tls(),
            ..Options::default()
        };
        let conf = conf_additions(&options, 5433, Path::new("/s"), Path::new("/d"));
        assert!(conf.contains("port = 5433\n"));
        assert!(conf.contains("unix_socket_directories = '/s'\n"));
        assert!(conf.contains("listen_addresses = '127.0.0.1'\n"));
        assert!(conf.contains("max_connections = 20\n"));
        assert!(conf.contains("ssl = on\nssl_cert_file = '/d/server.crt'\n"));
        assert!(conf.ends_with("application_name = 'x''y'\n"));
    }

    fn methods(hba: &str) -> Vec<String> {
        hba.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn hba_trust_and_scram() {
        let trust = methods(&pg_hba(&Options::default()));
        assert_eq!(
            trust,
            [
                "local all all trust",
                "host all all 127.0.0.1/32 trust",
                "host all all ::1/128 trust"
            ]
        );
        let scram = Options {
            auth: Auth::Scram,
            ..Options::default()
        };
        assert!(
            methods(&pg_hba(&scram)).contains(&"host all all 127.0.0.1/32 scram-sha-256".into())
        );
    }

    #[test]
    fn hba_tls_with_scram_rejects_plaintext() {
        let options = Options {
            auth: Auth::Scram,
            tls: tls(),
            ..Options::default()
        };
        let lines = methods(&pg_hba(&options));
        assert!(lines.contains(&"hostssl all all 127.0.0.1/32 scram-sha-256".into()));
        assert!(lines.contains(&"hostnossl all all 127.0.0.1/32 reject".into()));
        assert!(lines.contains(&"hostnossl all all ::1/128 reject".into()));
        let trust_tls = Options {
            tls: tls(),
            ..Options::default()
        };
        assert!(methods(&pg_hba(&trust_tls)).contains(&"host all all 127.0.0.1/32 trust".into()));
    }

    #[test]
    fn url_percent_encodes() {
        assert_eq!(
            url("postgres", 5432, "postgres"),
            "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable"
        );
        assert_eq!(
            url("a b@c", 1, "d/é"),
            "postgresql://a%20b%40c@127.0.0.1:1/d%2F%C3%A9?sslmode=disable"
        );
    }
}
