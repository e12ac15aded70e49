//! `[gateway]`: its defaults, every key, and every error at its `file:line:col`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_policy::{Gateway, Parsed, PolicyErrors, Severity, parse_policy_with};

const PRIMARY: &str = "[[target]]\nname = \"primary\"\nurl = \"postgresql://curfew_agent@db1:5432/postgres?sslmode=verify-full\"\n";
const STANDBY: &str = "[[target]]\nname = \"replica\"\nurl = \"postgresql://curfew_agent@db2:5432/postgres?sslmode=verify-full\"\nstandby = true\n";
const SECOND: &str = "[[target]]\nname = \"other\"\nurl = \"postgresql://curfew_agent@db3:5432/postgres?sslmode=verify-full\"\n";

/// An `auth_url` line with the gateway's own role (not the agent's, which is warned about).
const OWN_ROLE: &str =
    "auth_url = \"postgresql://curfew_gateway@db1/postgres?sslmode=verify-full\"\n";

/// A policy parsed as the binary parses it: URLs checked by PostgreSQL's validator.
fn parse(text: &str) -> Result<Parsed, PolicyErrors> {
    parse_policy_with(
        "t.toml",
        text,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
}

/// The gateway of a policy made of the primary target and `gateway`.
fn gateway(gateway: &str) -> Gateway {
    let text = format!("{PRIMARY}{gateway}");
    match parse(&text) {
        Ok(p) => p.policy.gateway.unwrap(),
        Err(e) => panic!("{e}"),
    }
}

/// The one error of a policy text, checked at `position` and for `fragment`.
#[track_caller]
fn assert_error(text: &str, position: &str, fragment: &str) {
    let errors: Vec<String> = match parse(text) {
        Ok(_) => panic!("expected an error in {text}"),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    };
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let e = &errors[0];
    assert!(
        e.starts_with(&format!("t.toml:{position}: ")),
        "wrong position in {e:?}, want {position}"
    );
    assert!(e.contains(fragment), "{e:?} does not contain {fragment:?}");
}

/// The line of `[gateway]` after the primary target (3 lines).
const G: usize = 4;

fn at(line: usize, column: usize) -> String {
    format!("{}:{column}", G + line)
}

#[test]
fn no_section_no_gateway() {
    assert!(parse(PRIMARY).unwrap().policy.gateway.is_none());
}

#[test]
fn an_empty_section_takes_every_default() {
    let g = gateway("[gateway]\n");
    assert_eq!(g.listen, vec!["127.0.0.1:6432".parse().unwrap()]);
    assert_eq!(g.target, "primary");
    assert_eq!(g.tls, None);
    assert!(!g.require_tls);
    assert_eq!(g.login_timeout.to_string(), "10s");
    assert_eq!(g.shutdown_timeout.to_string(), "30s");
    assert_eq!(g.max_clients, 1000);
    assert_eq!(g.keepalive.map(|k| k.to_string()).as_deref(), Some("1m"));
    assert_eq!(g.serve_members_of, None);
    assert!(!g.serve_superusers);
    assert_eq!(g.audit_log, None);
    assert_eq!(g.http_listen, None);
    // Verifiers are fetched through the target's own URL, as its role, by default.
    assert!(g.auth_url.text.starts_with("postgresql://curfew_agent@db1"));
    assert_eq!(g.own_role(), Some("curfew_agent"));
    assert_eq!(g.auth_password_file, None);
}

#[test]
fn every_key_is_read() {
    let g = gateway(
        "[gateway]
listen = [\"127.0.0.1:6432\", \"[::1]:6432\", \"10.0.0.5:5433\"]
target = \"primary\"
tls_cert = \"/etc/curfew/gateway.crt\"
tls_key = \"/etc/curfew/gateway.key\"
require_tls = true
login_timeout = \"5s\"
shutdown_timeout = \"2m\"
max_clients = 50
keepalive = \"0s\"
serve_members_of = \"gateway_users\"
serve_superusers = true
auth_url = \"postgresql://curfew_gateway@db1:5432/postgres?sslmode=verify-full\"
audit_log = \"/var/log/curfew/gateway.jsonl\"
http_listen = \"127.0.0.1:9188\"
auth_password_file = \"/etc/curfew/gateway.pw\"
",
    );
    assert_eq!(
        g.audit_log.as_deref(),
        Some("/var/log/curfew/gateway.jsonl")
    );
    assert_eq!(g.http_listen, Some("127.0.0.1:9188".parse().unwrap()));
    assert_eq!(g.listen.len(), 3);
    assert_eq!(g.listen[1], "[::1]:6432".parse().unwrap());
    let tls = g.tls.clone().unwrap();
    assert_eq!(
        (tls.cert.as_str(), tls.key.as_str()),
        ("/etc/curfew/gateway.crt", "/etc/curfew/gateway.key")
    );
    assert!(g.require_tls);
    assert_eq!(g.login_timeout.to_string(), "5s");
    assert_eq!(g.shutdown_timeout.to_string(), "2m");
    assert_eq!(g.max_clients, 50);
    assert_eq!(g.keepalive, None);
    assert_eq!(g.serve_members_of.as_deref(), Some("gateway_users"));
    assert!(g.serve_superusers);
    assert_eq!(g.own_role(), Some("curfew_gateway"));
    assert_eq!(
        g.auth_password_file.as_deref(),
        Some("/etc/curfew/gateway.pw")
    );
}

#[test]
fn one_listen_string_is_one_address() {
    let g = gateway("[gateway]\nlisten = \"[::1]:7000\"\n");
    assert_eq!(g.listen, vec!["[::1]:7000".parse().unwrap()]);
}

#[test]
fn listen_errors_are_at_the_address() {
    let t = |gateway: &str| format!("{PRIMARY}{gateway}");
    assert_error(
        &t("[gateway]\nlisten = [\"127.0.0.1:6432\", \"localhost:6432\"]\n"),
        &at(1, 29),
        "must be an IP address and a port, not \"localhost:6432\"; write the address, not a name",
    );
    assert_error(
        &t("[gateway]\nlisten = \"127.0.0.1\"\n"),
        &at(1, 10),
        "add a port: \"127.0.0.1:6432\"",
    );
    assert_error(
        &t("[gateway]\nlisten = \"::1\"\n"),
        &at(1, 10),
        "add a port: \"[::1]:6432\"",
    );
    assert_error(
        &t("[gateway]\nlisten = [\"127.0.0.1:6432\",\n  \"127.0.0.1:6432\"]\n"),
        &at(2, 3),
        "names 127.0.0.1:6432 twice; first at line 5",
    );
    assert_error(
        &t("[gateway]\nlisten = []\n"),
        &at(1, 10),
        "`listen` in [gateway] is empty",
    );
    assert_error(
        &t("[gateway]\nlisten = 6432\n"),
        &at(1, 10),
        "`listen` in [gateway] must be an address like \"127.0.0.1:6432\" or a list of them, not an integer",
    );
    assert_error(
        &t("[gateway]\nlisten = [6432]\n"),
        &at(1, 11),
        "each entry of `listen` in [gateway] must be addresses",
    );
}

#[test]
fn exposed_without_tls_is_a_warning() {
    let parsed = parse(&format!(
        "{PRIMARY}[gateway]\nlisten = \"0.0.0.0:6432\"\n{OWN_ROLE}"
    ))
    .unwrap();
    let warnings: Vec<String> = parsed
        .warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!("t.toml:{}: warning: ", at(1, 10))),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("in the clear"));
    let with_tls = parse(&format!(
        "{PRIMARY}[gateway]\nlisten = \"0.0.0.0:6432\"\ntls_cert = \"c\"\ntls_key = \"k\"\n{OWN_ROLE}"
    ))
    .unwrap();
    assert!(with_tls.warnings.is_empty(), "{:?}", with_tls.warnings);
}

#[test]
fn the_target_must_be_a_primary_that_exists() {
    assert_error(
        &format!("{PRIMARY}[gateway]\ntarget = \"primry\"\n"),
        &at(1, 10),
        "`target` in [gateway] is \"primry\", which is not a [[target]]; expected one of: primary",
    );
    // The standby's target takes 4 lines: the gateway starts 4 lines later.
    assert_error(
        &format!("{PRIMARY}{STANDBY}[gateway]\ntarget = \"replica\"\n"),
        &format!("{}:10", G + 5),
        "\"replica\", a standby, which cannot take writes; forward to a primary: primary",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\ntarget = 1\n"),
        &at(1, 10),
        "`target` in [gateway] must be the name of a [[target]], not an integer",
    );
}

#[test]
fn the_default_target_is_the_only_primary() {
    let text = format!("{PRIMARY}{STANDBY}[gateway]\n");
    assert_eq!(
        parse(&text).unwrap().policy.gateway.unwrap().target,
        "primary"
    );
    assert_error(
        &format!("{PRIMARY}{SECOND}[gateway]\n"),
        "7:1",
        "[gateway] must name the target it forwards to, one of: primary, other; e.g. target = \"primary\"",
    );
    assert_error(
        "[gateway]\n",
        "1:1",
        "[gateway] has no primary [[target]] to forward to",
    );
}

#[test]
fn tls_needs_both_files() {
    assert_error(
        &format!("{PRIMARY}[gateway]\ntls_cert = \"/c.pem\"\n"),
        &at(1, 12),
        "`tls_cert` in [gateway] needs `tls_key` too",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nlisten = \"127.0.0.1:1\"\ntls_key = \"/k.pem\"\n"),
        &at(2, 11),
        "`tls_key` in [gateway] needs `tls_cert` too",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\ntls_cert = \"\"\ntls_key = \"/k.pem\"\n"),
        &at(1, 12),
        "`tls_cert` in [gateway] must not be empty",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nrequire_tls = true\n"),
        &at(1, 15),
        "`require_tls` in [gateway] is true, but no certificate is configured",
    );
}

#[test]
fn durations_and_limits_are_checked() {
    assert_error(
        &format!("{PRIMARY}[gateway]\nlogin_timeout = \"0s\"\n"),
        &at(1, 17),
        "`login_timeout` in [gateway]: a duration must be longer than zero",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nshutdown_timeout = \"soon\"\n"),
        &at(1, 20),
        "`shutdown_timeout` in [gateway]: \"soon\" is not a duration",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nmax_clients = 0\n"),
        &at(1, 15),
        "`max_clients` in [gateway] is 0; it must be between 1 and",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nmax_clients = \"many\"\n"),
        &at(1, 15),
        "`max_clients` in [gateway] must be a whole number of clients, not a string",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nkeepalive = \"1500ms\"\n"),
        &at(1, 13),
        "TCP keepalives count whole seconds",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nkeepalive = \"-1s\"\n"),
        &at(1, 13),
        "`keepalive` in [gateway]: a duration must be positive",
    );
}

#[test]
fn the_served_roles_and_unknown_keys() {
    assert_error(
        &format!("{PRIMARY}[gateway]\nserve_members_of = \"\"\n"),
        &at(1, 20),
        "`serve_members_of` in [gateway] must not be empty",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nserve_superusers = \"no\"\n"),
        &at(1, 20),
        "`serve_superusers` in [gateway] must be true or false, not a string",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\nserve_members = \"x\"\n"),
        &at(1, 1),
        "unknown key `serve_members` in [gateway]; did you mean `serve_members_of`?",
    );
    assert_error(
        &format!("gateway = 1\n{PRIMARY}"),
        "1:11",
        "`gateway` in the policy must be a table: [gateway], not an integer",
    );
}

#[test]
fn the_auth_url_is_checked_like_a_targets() {
    assert_error(
        &format!("{PRIMARY}[gateway]\nauth_url = \"postgresql://gw:secret@db1/postgres\"\n"),
        &at(1, 12),
        "`auth_url` in [gateway]: ",
    );
    let e = parse(&format!(
        "{PRIMARY}[gateway]\nauth_url = \"postgresql://gw:secret@db1/postgres\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(!e.contains("secret"), "the password is echoed: {e}");
    assert_error(
        &format!("{PRIMARY}[gateway]\nauth_url = \"mysql://gw@db1/x\"\n"),
        &at(1, 12),
        "`auth_url` in [gateway]: ",
    );
}

#[test]
fn without_validators_the_auth_url_is_kept_as_text() {
    let text =
        format!("{PRIMARY}[gateway]\nauth_url = \"postgresql://curfew_gateway@db1/postgres\"\n");
    let parsed = curfew_policy::parse_policy("t.toml", &text, jiff::tz::db()).unwrap();
    let g = parsed.policy.gateway.unwrap();
    assert_eq!(g.auth_url.text, "postgresql://curfew_gateway@db1/postgres");
    assert_eq!(g.own_role(), None);
}

#[test]
fn an_auth_role_that_is_the_agents_role_is_a_warning() {
    let warnings = |text: &str| -> Vec<String> {
        parse(text)
            .unwrap()
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    // By default auth_url is the target's url: the agent's role.
    let by_default = warnings(&format!("{PRIMARY}[gateway]\n"));
    assert_eq!(by_default.len(), 1, "{by_default:?}");
    assert!(
        by_default[0].starts_with(&format!("t.toml:{}: warning: ", at(0, 1)))
            && by_default[0].contains("role \"curfew_agent\", the agent's own role")
            && by_default[0].contains("give the gateway a role of its own"),
        "{by_default:?}"
    );
    let named = warnings(&format!(
        "{PRIMARY}[gateway]\nauth_url = \"postgresql://curfew_agent@db1/postgres?sslmode=verify-full\"\n"
    ));
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(
        named[0].starts_with(&format!("t.toml:{}: warning: ", at(1, 12))),
        "{named:?}"
    );
    let own = warnings(&format!("{PRIMARY}[gateway]\n{OWN_ROLE}"));
    assert!(own.is_empty(), "{own:?}");
}

#[test]
fn the_http_listen_address_and_audit_log_are_checked() {
    assert_error(
        &format!("{PRIMARY}[gateway]\nhttp_listen = \"localhost:9188\"\n"),
        &at(1, 15),
        "`http_listen` in [gateway] must be an IP address and a port, not \"localhost:9188\"",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\naudit_log = \" \"\n"),
        &at(1, 13),
        "`audit_log` in [gateway] must not be empty",
    );
    let parsed = parse(&format!(
        "{PRIMARY}[gateway]\nhttp_listen = \"0.0.0.0:9188\"\n{OWN_ROLE}"
    ))
    .unwrap();
    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`http_listen` in [gateway] is 0.0.0.0:9188, not loopback"),
        "{warnings:?}"
    );
}

#[test]
fn the_auth_password_file_is_kept_as_written() {
    // Relative paths are kept as written, like a target's `password_file`.
    let g = gateway(&format!(
        "[gateway]\n{OWN_ROLE}auth_password_file = \"gateway.pw\"\n"
    ));
    assert_eq!(g.auth_password_file.as_deref(), Some("gateway.pw"));
}

#[test]
fn auth_password_file_errors_are_at_the_value() {
    assert_error(
        &format!("{PRIMARY}[gateway]\n{OWN_ROLE}auth_password_file = \" \"\n"),
        &at(2, 22),
        "`auth_password_file` in [gateway] must not be empty",
    );
    assert_error(
        &format!("{PRIMARY}[gateway]\n{OWN_ROLE}auth_password_file = 7\n"),
        &at(2, 22),
        "`auth_password_file` in [gateway] must be a file path string, not an integer",
    );
    // Without an auth_url the role is the target's, whose password is the target's file.
    assert_error(
        &format!("{PRIMARY}[gateway]\nauth_password_file = \"/etc/curfew/gw.pw\"\n"),
        &at(1, 22),
        "`auth_password_file` in [gateway] needs `auth_url`",
    );
}
