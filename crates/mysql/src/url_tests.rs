#![allow(clippy::unwrap_used)]

use super::*;

fn parse(text: &str) -> MysqlUrl {
    MysqlUrl::parse(text).unwrap()
}

#[test]
fn a_full_url_is_read() {
    let url = parse(
        "mariadb://curfew_agent@db1.example:3307/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=5",
    );
    assert_eq!(url.scheme, "mariadb");
    assert_eq!(url.user, "curfew_agent");
    assert_eq!(
        url.endpoint,
        Endpoint::Tcp {
            host: "db1.example".to_owned(),
            port: 3307
        }
    );
    assert_eq!(url.database.as_deref(), Some("app"));
    assert_eq!(url.tls, TlsMode::VerifyFull);
    assert_eq!(url.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(url.connect_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        url.to_string(),
        "mariadb://curfew_agent@db1.example:3307/app?sslmode=verify-full"
    );
}

#[test]
fn defaults_are_mysql_s() {
    let url = parse("mysql://agent@db1");
    assert_eq!(url.scheme, "mysql");
    assert_eq!(
        url.endpoint,
        Endpoint::Tcp {
            host: "db1".to_owned(),
            port: DEFAULT_PORT
        }
    );
    assert_eq!(url.database, None);
    assert_eq!(url.tls, TlsMode::Prefer);
}

#[test]
fn mysql_s_own_ssl_mode_words_are_read() {
    for (word, mode) in [
        ("DISABLED", TlsMode::Disable),
        ("PREFERRED", TlsMode::Prefer),
        ("REQUIRED", TlsMode::Require),
        ("VERIFY_CA", TlsMode::VerifyCa),
        ("VERIFY_IDENTITY", TlsMode::VerifyFull),
    ] {
        assert_eq!(
            parse(&format!("mysql://a@h?ssl-mode={word}")).tls,
            mode,
            "{word}"
        );
    }
}

#[test]
fn sockets_ipv6_and_encoded_names() {
    let url = parse("mariadb://cur%27few@/?socket=/run/mysqld/mysqld.sock");
    assert_eq!(url.user, "cur'few");
    assert_eq!(
        url.endpoint,
        Endpoint::Socket(PathBuf::from("/run/mysqld/mysqld.sock"))
    );
    let url = parse("mariadb://a@[::1]:3310/");
    assert_eq!(
        url.endpoint,
        Endpoint::Tcp {
            host: "::1".to_owned(),
            port: 3310
        }
    );
    assert_eq!(url.to_string(), "mariadb://a@[::1]:3310/?sslmode=prefer");
}

#[test]
fn a_password_is_refused_and_never_echoed() {
    for text in [
        "mariadb://agent:s3cret@db1/app",
        "mysql://agent@db1/app?password=s3cret",
        "mysql://agent@db1/app?PASS=s3cret",
        "mariadb://agent:s3/cret@db1",
        "mariadb://agent:s3?cret@db1",
        "mariadb://agent:s3cret@db1:notaport",
        "mariadb://agent:s3cret@db1/app?sslmode=bogus",
    ] {
        let err = MysqlUrl::parse(text).unwrap_err();
        let shown = err.to_string();
        assert!(
            matches!(err, UrlError::Password | UrlError::Hidden),
            "{text}: {err:?}"
        );
        assert!(!shown.contains("s3"), "{text} echoed: {shown}");
    }
}

#[test]
fn mistakes_are_named() {
    let cases = [
        (
            "postgresql://a@h/db",
            "connection URL must start with mariadb:// or mysql:// (got \"postgresql://a@h/db\")",
        ),
        (
            "mariadb://h:3306/db",
            "the connection URL names no user; curfew connects as a dedicated account, e.g. mariadb://curfew_agent@db1:3306/",
        ),
        (
            "mariadb://a@h?sslmode=maybe",
            "bad value for sslmode: \"maybe\"; expected disable, prefer, require, verify-ca or verify-full (or MySQL's DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)",
        ),
        (
            "mariadb://a@h:0",
            "bad value for port: \"0\"; expected a port number",
        ),
        (
            "mariadb://a@h?charset=utf8",
            "unknown connection parameter \"charset\"; supported: sslmode (or ssl-mode), sslrootcert (or ssl-ca), sslcert (or ssl-cert), sslkey (or ssl-key), connect_timeout, socket",
        ),
        (
            "mariadb://a@h1,h2",
            "malformed connection URL: one host only: MariaDB and MySQL have no multi-host URLs",
        ),
        (
            "mariadb://a@h?sslcert=/c.pem",
            "malformed connection URL: sslcert and sslkey must be given together",
        ),
        (
            "mariadb://a@h?socket=relative.sock",
            "bad value for socket: \"relative.sock\"; expected an absolute path to the server's socket",
        ),
        (
            "mariadb://a@h/x%zz",
            "malformed connection URL: bad percent-escape in \"x%zz\"",
        ),
        (
            "mariadb://a@h?connect_timeout=soon",
            "bad value for connect_timeout: \"soon\"; expected a whole number of seconds",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            MysqlUrl::parse(text).unwrap_err().to_string(),
            message,
            "{text}"
        );
    }
}

#[test]
fn the_validator_reads_its_schemes_and_warns_about_unverified_tls() {
    assert_eq!(MYSQL_URLS.schemes(), &["mariadb", "mysql"]);
    let valid = MYSQL_URLS.validate("mariadb://agent@db1/").unwrap();
    assert_eq!(valid.login_role, "agent");
    assert_eq!(
        valid.warnings,
        vec![
            "uses sslmode=prefer: the server's identity is not verified; use sslmode=verify-full with sslrootcert"
                .to_owned()
        ]
    );
    let valid = MYSQL_URLS
        .validate("mariadb://agent@db1/?sslmode=verify-full&sslrootcert=/ca.pem")
        .unwrap();
    assert!(valid.warnings.is_empty());
    let socket = MYSQL_URLS
        .validate("mariadb://agent@/?socket=/run/mysqld/mysqld.sock")
        .unwrap();
    assert!(socket.warnings.is_empty());
    assert!(MYSQL_URLS.validate("mariadb://agent:pw@db1/").is_err());
}

#[test]
fn a_policy_with_the_validator_reports_a_bad_url_at_its_place() {
    let text = "[[target]]\nname = \"m\"\nurl = \"mariadb://agent:pw@db1/\"\n";
    let validators: &[&dyn UrlValidator] = &[&MYSQL_URLS];
    let err = curfew_policy::LoadedPolicy::from_bytes_with(
        "p.toml",
        text.as_bytes().to_vec(),
        Some(validators),
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("p.toml:3:7"), "{shown}");
    assert!(shown.contains("contains a password"), "{shown}");
    assert!(!shown.contains("pw@"), "{shown}");
}

/// Regression: two of the three scheme tests this replaced sliced the URL by byte count, which
/// panics when a multi-byte character straddles the scheme's length.
#[test]
fn the_scheme_test_never_panics_on_any_text() {
    for url in ["mariadb://x", "MySQL://h/db", " mysql://h "] {
        assert!(is_mysql_url(url), "{url}");
    }
    for url in [
        "mysq€://h",
        "maria€db://h",
        "postgresql://h",
        "mysql:/h",
        "",
        "€",
    ] {
        assert!(!is_mysql_url(url), "{url}");
    }
}
