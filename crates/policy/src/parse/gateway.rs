//! `[gateway]`: where `curfew gateway` listens, the target it forwards to, its TLS, its limits,
//! the roles it serves and the URL it fetches their verifiers through.

use std::net::SocketAddr;
use std::ops::Range;

use toml::de::DeValue;

use crate::diagnostic::Collector;
use crate::duration::{DurationError, Limit};
use crate::model::{DEFAULT_GATEWAY_LISTEN, Gateway, GatewayTls, Target};
use crate::target_url::UrlValidator;

use super::reader::{Located, TableReader};

pub(super) const GATEWAY_KEYS: &[&str] = &[
    "listen",
    "target",
    "tls_cert",
    "tls_key",
    "require_tls",
    "login_timeout",
    "shutdown_timeout",
    "max_clients",
    "keepalive",
    "serve_members_of",
    "serve_superusers",
    "auth_url",
    "audit_log",
    "http_listen",
    "auth_password_file",
];

const CONTEXT: &str = "[gateway]";
const DEFAULT_LOGIN_TIMEOUT_SECS: u32 = 10;
const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u32 = 30;
const DEFAULT_MAX_CLIENTS: u32 = 1000;
const DEFAULT_KEEPALIVE_SECS: u32 = 60;

/// `[gateway]`, if present. `targets` are the targets kept (their names resolved); `validators`
/// check `auth_url` as they check a target's `url`.
pub(super) fn parse_gateway(
    c: &mut Collector<'_>,
    top: &TableReader<'_, '_>,
    targets: &[Target],
    validators: Option<&[&dyn UrlValidator]>,
) -> Option<Gateway> {
    let (table, header) = top.table(c, "gateway", "a table: [gateway]")?;
    let r = TableReader::new(table, CONTEXT, GATEWAY_KEYS);
    let listen = listen(c, &r);
    let target = target(c, &r, targets, header.clone());
    let tls = tls(c, &r);
    let require_tls = r.boolean(c, "require_tls").is_some_and(|b| b.value);
    if require_tls
        && tls.is_none()
        && let Some(span) = r.get("require_tls").map(|v| v.span())
    {
        c.error(
            span,
            "`require_tls` in [gateway] is true, but no certificate is configured; set `tls_cert` and `tls_key`",
        );
    }
    if tls.is_none()
        && let (Some(addresses), Some(span)) = (&listen, r.get("listen").map(|v| v.span()))
        && let Some(exposed) = addresses.iter().find(|a| !a.ip().is_loopback())
    {
        c.warning(
            span,
            format!(
                "`listen` in [gateway] includes {exposed}, not loopback, without TLS: clients' queries and results would cross the network in the clear; set `tls_cert` and `tls_key`"
            ),
        );
    }
    let login_timeout = limit(c, &r, "login_timeout", DEFAULT_LOGIN_TIMEOUT_SECS);
    let shutdown_timeout = limit(c, &r, "shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT_SECS);
    let max_clients = max_clients(c, &r);
    let keepalive = keepalive(c, &r);
    let serve_members_of = r
        .string(c, "serve_members_of", "a role name")
        .and_then(|role| {
            if role.value.is_empty() {
                c.error(
                    role.span,
                    "`serve_members_of` in [gateway] must not be empty; name a role, or remove the key to serve every login role",
                );
                None
            } else {
                Some(role.value)
            }
        });
    let serve_superusers = r.boolean(c, "serve_superusers").is_some_and(|b| b.value);
    let forwarded_to = target
        .as_ref()
        .and_then(|name| targets.iter().find(|t| &t.name == name));
    let (auth_url, auth_span) = match r.string(c, "auth_url", "a connection URL string like \"postgresql://curfew_gateway@db1:5432/postgres?sslmode=verify-full\"") {
        Some(url) => (
            crate::target_url::check(c, "auth_url", CONTEXT, &url.value, url.span.clone(), validators),
            url.span,
        ),
        None => (forwarded_to.map(|t| t.url.clone()), header.clone()),
    };
    // The agent's role calling the auth function would hold every served verifier: whoever
    // has the agent's password could then attack every user's offline.
    if let (Some(auth), Some(forwarded)) = (&auth_url, forwarded_to)
        && let (Some(own), Some(agent)) = (&auth.login_role, &forwarded.url.login_role)
        && own == agent
    {
        c.warning(
            auth_span,
            format!(
                "[gateway] fetches verifiers as role \"{}\", the agent's own role (the user of target \"{}\"'s url): that role would then hold every served user's SCRAM verifier; give the gateway a role of its own with LOGIN and nothing else, and name it in `auth_url`",
                crate::visible::visible(own),
                forwarded.name
            ),
        );
    }
    let audit_log = r
        .string(c, "audit_log", "a file path string")
        .and_then(|path| {
            if path.value.trim().is_empty() {
                c.error(path.span, "`audit_log` in [gateway] must not be empty");
                None
            } else {
                Some(path.value)
            }
        });
    let http_listen = r
        .string(
            c,
            "http_listen",
            "an address string like \"127.0.0.1:9188\"",
        )
        .and_then(|listen| {
            super::listen_address(c, listen.span, &listen.value, "`http_listen` in [gateway]")
        });
    let auth_password_file = auth_password_file(c, &r);
    r.finish(c);
    Some(Gateway {
        listen: listen?,
        target: target?,
        tls,
        require_tls,
        login_timeout,
        shutdown_timeout,
        max_clients,
        keepalive,
        serve_members_of,
        serve_superusers,
        auth_url: auth_url?,
        audit_log,
        http_listen,
        auth_password_file,
    })
}

/// `auth_password_file`: the password of `auth_url`'s role. It needs an `auth_url` of its own:
/// without one the gateway logs in as the target's role, whose password is the target's
/// `password_file`, and two files for one role could disagree.
fn auth_password_file(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Option<String> {
    let file = r.string(c, "auth_password_file", "a file path string")?;
    if file.value.trim().is_empty() {
        c.error(
            file.span,
            "`auth_password_file` in [gateway] must not be empty; name the file holding the password of `auth_url`'s role, or remove the key",
        );
        return None;
    }
    if r.get("auth_url").is_none() {
        c.error(
            file.span,
            "`auth_password_file` in [gateway] needs `auth_url` (the gateway's own role it is the password of); without `auth_url` the gateway logs in with the target's `url` and `password_file`",
        );
        return None;
    }
    Some(file.value)
}

/// `listen`: one address or a list, each an IP address and a port; no duplicates.
fn listen(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Option<Vec<SocketAddr>> {
    let Some(value) = r.get("listen") else {
        return DEFAULT_GATEWAY_LISTEN.parse().ok().map(|a| vec![a]);
    };
    let items: Vec<Located<String>> = match value.get_ref() {
        DeValue::String(s) => vec![Located {
            value: s.to_string(),
            span: value.span(),
        }],
        DeValue::Array(_) => {
            let list = r.string_list(c, "listen", "addresses like \"127.0.0.1:6432\"")?;
            if list.value.is_empty() {
                c.error(
                    list.span,
                    "`listen` in [gateway] is empty, so no client could connect; list at least one address like \"127.0.0.1:6432\", or remove the key for that default",
                );
                return None;
            }
            list.value
        }
        _ => {
            // Reported by the reader, with the type it got.
            r.string(
                c,
                "listen",
                "an address like \"127.0.0.1:6432\" or a list of them",
            )?;
            return None;
        }
    };
    let mut addresses: Vec<(SocketAddr, Range<usize>)> = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(address) = socket_address(c, &item) else {
            ok = false;
            continue;
        };
        if let Some((_, first)) = addresses.iter().find(|(a, _)| *a == address) {
            let line = c.line_of(first.start);
            c.error(
                item.span,
                format!("`listen` in [gateway] names {address} twice; first at line {line}"),
            );
            ok = false;
            continue;
        }
        addresses.push((address, item.span));
    }
    ok.then(|| addresses.into_iter().map(|(a, _)| a).collect())
}

/// One listen address: an IP address and a port (a name would need resolving, which a policy
/// does not do, and could change under a running gateway).
fn socket_address(c: &mut Collector<'_>, item: &Located<String>) -> Option<SocketAddr> {
    let text = item.value.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    let hint = if text.parse::<std::net::IpAddr>().is_ok() {
        if text.contains(':') {
            format!("add a port: \"[{text}]:6432\"")
        } else {
            format!("add a port: \"{text}:6432\"")
        }
    } else if text.starts_with("localhost") {
        "write the address, not a name: \"127.0.0.1:6432\"".to_owned()
    } else {
        "for example \"127.0.0.1:6432\", \"0.0.0.0:6432\" or \"[::1]:6432\"".to_owned()
    };
    c.error(
        item.span.clone(),
        format!(
            "`listen` in [gateway] must be an IP address and a port, not {:?}; {hint}",
            item.value
        ),
    );
    None
}

/// `target`: a primary `[[target]]`, or the only primary when not given.
fn target(
    c: &mut Collector<'_>,
    r: &TableReader<'_, '_>,
    targets: &[Target],
    header: Range<usize>,
) -> Option<String> {
    let primaries: Vec<&str> = targets
        .iter()
        .filter(|t| !t.standby)
        .map(|t| t.name.as_str())
        .collect();
    if let Some(named) = r.string(c, "target", "the name of a [[target]]") {
        match targets.iter().find(|t| t.name == named.value) {
            Some(t) if t.standby => c.error(
                named.span,
                format!(
                    "`target` in [gateway] is \"{}\", a standby, which cannot take writes; forward to a primary: {}",
                    t.name,
                    primaries.join(", ")
                ),
            ),
            Some(t) => return Some(t.name.clone()),
            None => c.error(
                named.span,
                format!(
                    "`target` in [gateway] is \"{}\", which is not a [[target]]; expected one of: {}",
                    named.value,
                    primaries.join(", ")
                ),
            ),
        }
        return None;
    }
    if r.get("target").is_some() {
        return None;
    }
    match primaries.as_slice() {
        [only] => Some((*only).to_owned()),
        [] => {
            c.error(
                header,
                "[gateway] has no primary [[target]] to forward to; add one, or set `target`",
            );
            None
        }
        several => {
            c.error(
                header,
                format!(
                    "[gateway] must name the target it forwards to, one of: {}; e.g. target = \"{}\"",
                    several.join(", "),
                    several[0]
                ),
            );
            None
        }
    }
}

/// `tls_cert` and `tls_key`: both or neither.
fn tls(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Option<GatewayTls> {
    let path = |c: &mut Collector<'_>, key: &'static str| {
        let value = r.string(c, key, "a file path string")?;
        if value.value.trim().is_empty() {
            c.error(
                value.span,
                format!("`{key}` in [gateway] must not be empty"),
            );
            return None;
        }
        Some(value)
    };
    let cert = path(c, "tls_cert");
    let key = path(c, "tls_key");
    match (cert, key) {
        (Some(cert), Some(key)) => Some(GatewayTls {
            cert: cert.value,
            key: key.value,
        }),
        (Some(cert), None) if r.get("tls_key").is_none() => {
            c.error(
                cert.span,
                "`tls_cert` in [gateway] needs `tls_key` too (the certificate's private key)",
            );
            None
        }
        (None, Some(key)) if r.get("tls_cert").is_none() => {
            c.error(
                key.span,
                "`tls_key` in [gateway] needs `tls_cert` too (the certificate it belongs to)",
            );
            None
        }
        _ => None,
    }
}

/// A positive duration with a default in seconds.
fn limit(c: &mut Collector<'_>, r: &TableReader<'_, '_>, key: &'static str, secs: u32) -> Limit {
    super::duration(c, r, key).map_or_else(
        || Limit::from_secs(secs).unwrap_or_else(|| unreachable!("the defaults are positive")),
        |l| l.value,
    )
}

/// `max_clients`: at least 1.
fn max_clients(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> u32 {
    let Some(n) = r.integer(c, "max_clients", "a whole number of clients") else {
        return DEFAULT_MAX_CLIENTS;
    };
    match u32::try_from(n.value) {
        Ok(n) if n >= 1 => n,
        _ => {
            c.error(
                n.span,
                format!(
                    "`max_clients` in [gateway] is {}; it must be between 1 and {}",
                    n.value,
                    u32::MAX
                ),
            );
            DEFAULT_MAX_CLIENTS
        }
    }
}

/// `keepalive`: the TCP keepalive idle time, whole seconds (what the kernel counts in); `"0s"`
/// turns keepalives off.
fn keepalive(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Option<Limit> {
    let Some(text) = r.string(
        c,
        "keepalive",
        "a duration string like \"60s\", or \"0s\" to disable",
    ) else {
        return Limit::from_secs(DEFAULT_KEEPALIVE_SECS);
    };
    match text.value.parse::<Limit>() {
        Ok(limit) if limit.get().subsec_nanos() != 0 => {
            c.error(
                text.span,
                format!(
                    "`keepalive` in [gateway] is {limit}; TCP keepalives count whole seconds: write e.g. \"60s\", or \"0s\" to disable"
                ),
            );
            None
        }
        Ok(limit) => Some(limit),
        Err(DurationError::Zero(_)) => None,
        Err(e) => {
            c.error(text.span, format!("`keepalive` in [gateway]: {e}"));
            None
        }
    }
}
