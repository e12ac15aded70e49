//! Connection URLs: what parses, what is refused, and that no refusal shows a password.

use super::*;

#[test]
fn a_full_url() {
    let u = ConnectionUrl::parse(
        "postgresql://curfew_agent@db1.example:6432/postgres?sslmode=verify-full&sslrootcert=/etc/curfew/ca.pem&connect_timeout=5",
    )
    .unwrap();
    assert_eq!(u.user, "curfew_agent");
    assert_eq!(u.hosts, [(Host::Tcp("db1.example".into()), 6432)]);
    assert_eq!(u.dbname, "postgres");
    assert_eq!(u.sslmode, SslMode::VerifyFull);
    assert_eq!(u.sslrootcert, Some(PathBuf::from("/etc/curfew/ca.pem")));
    assert_eq!(u.connect_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        u.to_string(),
        "postgresql://curfew_agent@db1.example:6432/postgres?sslmode=verify-full"
    );
}

#[test]
fn defaults_follow_libpq() {
    let u = ConnectionUrl::parse("postgres://agent@").unwrap();
    assert_eq!(u.hosts, [(Host::Tcp("localhost".into()), 5432)]);
    assert_eq!(u.dbname, "agent");
    assert_eq!(u.sslmode, SslMode::Prefer);
}

#[test]
fn ipv6_multiple_hosts_sockets_and_encoding() {
    let u = ConnectionUrl::parse("postgresql://a%20b@[::1]:5433,db2/my%2Fdb").unwrap();
    assert_eq!(u.user, "a b");
    assert_eq!(
        u.hosts,
        [
            (Host::Tcp("::1".into()), 5433),
            (Host::Tcp("db2".into()), 5432)
        ]
    );
    assert_eq!(u.dbname, "my/db");
    let s = ConnectionUrl::parse("postgresql://a@%2Fvar%2Frun%2Fpostgresql/postgres").unwrap();
    assert_eq!(
        s.hosts,
        [(Host::Socket("/var/run/postgresql".into()), 5432)]
    );
    let q = ConnectionUrl::parse("postgresql:///postgres?user=a&host=/tmp&port=5499").unwrap();
    assert_eq!(q.hosts, [(Host::Socket("/tmp".into()), 5499)]);
}

#[test]
fn refusals() {
    assert_eq!(
        ConnectionUrl::parse("postgresql://a:secret@h/d"),
        Err(UrlError::Password)
    );
    assert_eq!(
        ConnectionUrl::parse("postgresql://a@h/d?password=secret"),
        Err(UrlError::Password)
    );
    assert_eq!(
        ConnectionUrl::parse("postgresql://h/d"),
        Err(UrlError::NoUser)
    );
    assert_eq!(
        ConnectionUrl::parse("postgresql://a@h/d?sslmode=verify_full"),
        Err(UrlError::BadValue {
            key: "sslmode".into(),
            value: "verify_full".into(),
            expected: "disable, prefer, require, verify-ca or verify-full"
        })
    );
    assert_eq!(
        ConnectionUrl::parse("postgresql://a@h/d?sslmdoe=require"),
        Err(UrlError::UnknownParameter("sslmdoe".into()))
    );
    assert_eq!(
        ConnectionUrl::parse("postgresql://a@h/d?application_name=x"),
        Err(UrlError::Reserved("application_name".into()))
    );
    let err = ConnectionUrl::parse("mysql://a:secret@h/d")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("secret"), "{err}");
}

/// Issue 13: `url = "host=db password=hunter2"` was echoed whole, password included.
#[test]
fn keyword_form_is_refused_without_echoing_the_password() {
    let err = ConnectionUrl::parse("host=db password=hunter2").unwrap_err();
    assert_eq!(err, UrlError::KeywordForm("host=db password=***".into()));
    assert!(err.to_string().contains("keyword=value form"), "{err}");
    for text in [
        "host=db password = 'hun ter2' user=a",
        "host=db password='hunter2\\' x' user=a",
        "host=db PASSWORD=hunter2",
        "password='hunter2",
        "host=db password",
    ] {
        let err = ConnectionUrl::parse(text).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hunter") && !shown.contains("ter2"),
            "{shown}"
        );
    }
    assert_eq!(
        redact("host=db password = 'a b' user=x"),
        "host=db password = *** user=x"
    );
}

#[test]
fn no_error_echoes_a_password_in_any_form() {
    for text in [
        "postgresql://u:hunter2@h/d",
        "postgresql://u:hunter2@h/d?sslmode=bogus",
        "postgresql://u:hun/ter2@h/d",
        "postgresql://u:hun?ter2@h/d",
        "postgresql://u:12/hunter2@h/d",
        "postgresql://u:hun%zzter2@h/d",
        "postgresql://u:[hunter2@h/d",
        "postgresql://u@h/d?password=hunter2",
        "postgresql://u@h/d?PassWord=hunter2&sslmode=bogus",
        "postgresql://u@h/d?pass%77ord=hunter2",
        "postgresql://u@h/d?password=hun%zzter2",
        "postgresql://u@h/d?sslmode=bogus&password=hunter2",
        "mysql://u@h/d?password=hunter2",
        "mysql://u:hunter2@h/d",
        "http://u:hunter2@h:99999/d",
    ] {
        let err = ConnectionUrl::parse(text).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hun") && !shown.contains("ter2"),
            "{text}: {shown}"
        );
    }
}

#[test]
fn errors_without_a_password_still_say_what_is_wrong() {
    assert_eq!(
        ConnectionUrl::parse("postgresql://a@h:5432/d?sslmode=bogus"),
        Err(UrlError::BadValue {
            key: "sslmode".into(),
            value: "bogus".into(),
            expected: "disable, prefer, require, verify-ca or verify-full"
        })
    );
    assert_eq!(
        ConnectionUrl::parse("host=db1 user=agent"),
        Err(UrlError::KeywordForm("host=db1 user=agent".into()))
    );
}
