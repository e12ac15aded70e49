//! MariaDB and MySQL: the server-wide timeouts (`SET GLOBAL wait_timeout`,
//! `interactive_timeout`, and MariaDB's `idle_transaction_timeout`) for idle rules that cover
//! every session, and `ALTER USER ... WITH MAX_USER_CONNECTIONS` for `max_sessions` rules; a
//! comment saying why for each rule that does not map.
//!
//! The timeouts are server-wide: they cannot follow a rule's scope or `[exempt]`, so only
//! rules with no scope keys map, and with exemptions the statements are written commented out.
//! A role's accounts (`'user'@'host'`, one per host pattern) are found when the script runs
//! (MariaDB: a `FOR` loop in an anonymous block); MySQL has no anonymous blocks, so there the
//! statements are templates in comments.

use std::time::Duration;

use curfew_policy::{Condition, Policy, Rule};

use crate::Margin;
use crate::scope::{Exempt, agent_roles, common_obstacle};
use crate::text::{comment, comment_line, shown};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// MariaDB 10.3 or later.
    MariaDb,
    /// MySQL 8.0 or later.
    MySql,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::MariaDb => "MariaDB",
            Server::MySql => "MySQL",
        }
    }

    fn dialect(self) -> &'static str {
        match self {
            Server::MariaDb => "mariadb",
            Server::MySql => "mysql",
        }
    }
}

/// What one rule becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mapping {
    /// The server-wide idle timeouts, in seconds.
    Idle(u64),
    /// MariaDB's `idle_transaction_timeout`, in seconds.
    IdleInTransaction(u64),
    /// `MAX_USER_CONNECTIONS` for these user names.
    MaxSessions { users: Vec<String>, limit: u32 },
    /// No native equivalent; why.
    Unmapped(String),
}

/// The largest value the timeouts accept (seconds; 365 days).
const TIMEOUT_MAX: u64 = 31_536_000;

fn seconds_with_margin(limit: curfew_policy::Limit, margin: Margin) -> u64 {
    let limit = limit.to_std();
    let total = limit.saturating_add(margin.above(limit));
    // Whole seconds, rounded up: never below the limit plus the margin.
    let secs = total.as_secs() + u64::from(total.subsec_nanos() > 0);
    secs.clamp(1, TIMEOUT_MAX)
}

fn map_rule(rule: &Rule, server: Server, margin: Margin, exempt: &Exempt) -> Mapping {
    if let Some(why) = common_obstacle(rule, "account") {
        return Mapping::Unmapped(why);
    }
    let scope = &rule.scope;
    let server_wide = |what: &str| {
        Mapping::Unmapped(format!(
            "{what} is server-wide in {} (and each session can change its own): it cannot \
             follow a rule's scope, so only rules with no scope keys map.",
            server.name()
        ))
    };
    match &rule.condition {
        Condition::Idle(limit) if scope.is_everything() => {
            Mapping::Idle(seconds_with_margin(*limit, margin))
        }
        Condition::Idle(_) => server_wide("wait_timeout"),
        Condition::IdleInTransaction(_) if server == Server::MySql => {
            Mapping::Unmapped("MySQL has no timeout for idle transactions.".to_owned())
        }
        Condition::IdleInTransaction(limit) if scope.is_everything() => {
            Mapping::IdleInTransaction(seconds_with_margin(*limit, margin))
        }
        Condition::IdleInTransaction(_) => server_wide("idle_transaction_timeout"),
        Condition::Lifetime(_) => Mapping::Unmapped(format!(
            "{} has no setting that limits how long a session stays connected.",
            server.name()
        )),
        Condition::Allow(_) | Condition::Deny(_) => Mapping::Unmapped(format!(
            "{} has no setting that depends on the time of day or the date; the curfew agent \
             ends these sessions.",
            server.name()
        )),
        Condition::Violations(_) => Mapping::Unmapped(
            "no setting counts errors by SQLSTATE (the curfew gateway counts them for its own \
             sessions)."
                .to_owned(),
        ),
        Condition::MaxSessions(_) if !scope.member_of.is_empty() => Mapping::Unmapped(
            "curfew does not read MariaDB/MySQL roles, so `member_of` names no account here."
                .to_owned(),
        ),
        Condition::MaxSessions(_) if !scope.databases.is_empty() => Mapping::Unmapped(
            "MAX_USER_CONNECTIONS counts an account's sessions in every database; a limit in some \
             databases only cannot be expressed."
                .to_owned(),
        ),
        Condition::MaxSessions(_) if scope.roles.is_empty() => Mapping::Unmapped(
            "it names no user, and MAX_USER_CONNECTIONS is per account (max_user_connections, \
             the server-wide default, would also limit curfew's own account)."
                .to_owned(),
        ),
        Condition::MaxSessions(_) if scope.roles.iter().any(|g| !g.is_literal()) => {
            Mapping::Unmapped(
                "its user patterns are not expanded by this script: name the users one by one."
                    .to_owned(),
            )
        }
        Condition::MaxSessions(n) => Mapping::MaxSessions {
            users: scope
                .roles
                .iter()
                .map(|g| g.as_str().to_owned())
                .filter(|u| !exempt.role_by_name(u))
                .collect(),
            limit: *n,
        },
    }
}

/// The MariaDB or MySQL script for a policy.
pub(crate) fn compile(
    policy: &Policy,
    server: Server,
    source: &str,
    sha256: &str,
    margin: Margin,
) -> String {
    let exempt = Exempt::of(policy);
    let agents = agent_roles(policy);
    let mappings: Vec<(&Rule, Mapping)> = policy
        .rules
        .iter()
        .map(|r| (r, map_rule(r, server, margin, &exempt)))
        .collect();
    let mut out = String::new();
    header(&mut out, server, source, sha256, margin);
    comment_line(&mut out, "Rules:");
    for (rule, mapping) in &mappings {
        let what = match mapping {
            Mapping::Idle(s) => format!("wait_timeout and interactive_timeout = {s} (seconds)"),
            Mapping::IdleInTransaction(s) => format!("idle_transaction_timeout = {s} (seconds)"),
            Mapping::MaxSessions { users, limit } if users.is_empty() => {
                format!("MAX_USER_CONNECTIONS {limit}, but every user it names is exempt")
            }
            Mapping::MaxSessions { limit, .. } => {
                format!("MAX_USER_CONNECTIONS {limit} on each account of the users it names")
            }
            Mapping::Unmapped(why) => format!("not expressed natively: {why}"),
        };
        comment(
            &mut out,
            "-- - ",
            "--   ",
            &format!(
                "rule {} ({}): {what}",
                shown(&rule.name),
                curfew_policy::explain::summary(rule)
            ),
        );
    }
    comment_line(&mut out, "");
    let strictest =
        |pick: fn(&Mapping) -> Option<u64>| mappings.iter().filter_map(|(_, m)| pick(m)).min();
    let idle = strictest(|m| match m {
        Mapping::Idle(s) => Some(*s),
        _ => None,
    });
    let in_transaction = strictest(|m| match m {
        Mapping::IdleInTransaction(s) => Some(*s),
        _ => None,
    });
    let mut globals: Vec<(&str, u64)> = Vec::new();
    if let Some(s) = idle {
        globals.push(("wait_timeout", s));
        globals.push(("interactive_timeout", s));
    }
    if let Some(s) = in_transaction {
        globals.push(("idle_transaction_timeout", s));
    }
    let exempted = exemptions(&exempt);
    if !globals.is_empty() {
        out.push('\n');
        let prefix = if exempted.is_empty() {
            comment_line(
                &mut out,
                "Server-wide timeouts (the strictest rule without scope keys), for sessions that start from now on:",
            );
            ""
        } else {
            comment(
                &mut out,
                "-- ",
                "-- ",
                &format!(
                    "Server-wide timeouts, COMMENTED OUT: they would also end the sessions this \
                     policy exempts ({}), which the server cannot tell apart. Remove the leading \
                     \"-- \" if that is acceptable.",
                    exempted.join("; ")
                ),
            );
            "-- "
        };
        for (name, s) in &globals {
            out.push_str(&format!("{prefix}SET GLOBAL {name} = {s};\n"));
        }
    }
    let mut limits: Vec<(&str, u32)> = mappings
        .iter()
        .filter_map(|(_, m)| match m {
            Mapping::MaxSessions { users, limit } => {
                Some(users.iter().map(move |u| (u.as_str(), *limit)))
            }
            _ => None,
        })
        .flatten()
        .filter(|(u, _)| !agents.iter().any(|a| a == u))
        .collect();
    // Largest first, so that where rules overlap the strictest is set last.
    limits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let has_limits = !limits.is_empty();
    if has_limits {
        out.push('\n');
        comment(
            &mut out,
            "-- ",
            "-- ",
            "Per-account session limits: MAX_USER_CONNECTIONS counts the sessions of one account \
             ('user'@'host'), so a user with several host patterns gets the limit on each. Largest \
             first, so that where rules overlap the strictest is set last.",
        );
        for (user, limit) in limits {
            max_sessions(&mut out, server, user, limit);
        }
    }
    if globals.is_empty() && !has_limits {
        comment_line(
            &mut out,
            "Nothing to apply: no rule of this policy can be expressed natively.",
        );
    }
    if !globals.is_empty() {
        out.push('\n');
        comment(
            &mut out,
            "-- ",
            "-- ",
            "SET GLOBAL is lost when the server restarts: put the same values in the server's \
             configuration too:",
        );
        comment_line(
            &mut out,
            match server {
                Server::MariaDb => "[mariadb]",
                Server::MySql => "[mysqld]",
            },
        );
        for (name, s) in &globals {
            comment_line(&mut out, &format!("{name} = {s}"));
        }
    }
    out
}

/// The exemptions the server-wide timeouts would ignore, in words (empty: none).
fn exemptions(exempt: &Exempt) -> Vec<String> {
    let mut parts = Vec::new();
    for (key, values) in [
        ("users", &exempt.roles),
        ("member_of", &exempt.member_of),
        ("databases", &exempt.databases),
        ("applications", &exempt.applications),
        ("addresses", &exempt.addresses),
    ] {
        if !values.is_empty() {
            let names: Vec<String> = values.iter().map(|v| shown(v)).collect();
            parts.push(format!("{key} {}", names.join(", ")));
        }
    }
    parts.extend(exempt.combined.iter().cloned());
    parts
}

/// `user` as a hexadecimal string literal: no character in a name can end it early, whatever
/// the SQL mode (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`).
fn hex_literal(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    format!("X'{hex}'")
}

/// An account name as an identifier: `` `o'k``x` ``.
fn identifier(text: &str) -> String {
    format!("`{}`", text.replace('`', "``"))
}

fn max_sessions(out: &mut String, server: Server, user: &str, limit: u32) {
    match server {
        Server::MariaDb => {
            comment_line(out, &format!("Each account of user {}:", shown(user)));
            out.push_str(&format!(
                "DELIMITER //\nBEGIN NOT ATOMIC\n  FOR a IN (SELECT User, Host FROM mysql.user WHERE User = {} AND is_role = 'N') DO\n    EXECUTE IMMEDIATE CONCAT('ALTER USER `', REPLACE(a.User, '`', '``'), '`@`', REPLACE(a.Host, '`', '``'), '` WITH MAX_USER_CONNECTIONS {limit}');\n  END FOR;\nEND //\nDELIMITER ;\n",
                if user.is_empty() { "''".to_owned() } else { hex_literal(user) }
            ));
        }
        Server::MySql => {
            comment(
                out,
                "-- ",
                "-- ",
                &format!(
                    "MySQL runs no anonymous blocks: for each host of user {} (SELECT Host FROM \
                     mysql.user WHERE User = {}), run:",
                    shown(user),
                    if user.is_empty() {
                        "''".to_owned()
                    } else {
                        hex_literal(user)
                    }
                ),
            );
            comment_line(
                out,
                &format!(
                    "ALTER USER {}@`<host>` WITH MAX_USER_CONNECTIONS {limit};",
                    identifier(user)
                ),
            );
        }
    }
}

fn header(out: &mut String, server: Server, source: &str, sha256: &str, margin: Margin) {
    comment_line(
        out,
        &format!("curfew compile --dialect {}", server.dialect()),
    );
    comment_line(out, &format!("Policy: {source}"));
    comment_line(out, &format!("SHA-256: {sha256}"));
    comment_line(out, "");
    let margin_text = match margin {
        Margin::Fixed(m) if m.is_zero() => "Margin: none (--margin 0): each timeout equals curfew's limit, so the server may end a session at the instant the agent would, and then the agent records no reason for it.".to_owned(),
        Margin::Fixed(m) => format!("Margin: each timeout is curfew's limit plus {} (--margin), in whole seconds, so that the agent ends the session first and records why.", words(m)),
        Margin::Default => "Margin: each timeout is curfew's limit plus the larger of 1 minute and a tenth of the limit, in whole seconds (curfew compile --margin sets another), so that the agent ends the session first and records why; the server ends it only when the agent has not.".to_owned(),
    };
    for paragraph in [
        format!(
            "Native {} settings for the rules of this policy that the server can express \
             itself: defense in depth beside the curfew agent, not a replacement for it.",
            server.name()
        ),
        "WARNING: any user can change these timeouts for their own session (SET SESSION \
         wait_timeout = 31536000), the server gives no warning before it ends a session, the \
         client sees only \"server has gone away\", and nothing records why. The curfew agent \
         enforces the whole policy from outside the session: keep it running."
            .to_owned(),
        margin_text,
        format!(
            "Apply as an administrator with the {} client (it reads DELIMITER): {} < FILE. The \
             timeouts apply to sessions that start afterwards; MAX_USER_CONNECTIONS to logins \
             afterwards.",
            server.name(),
            server.dialect()
        ),
    ] {
        comment(out, "-- ", "-- ", &paragraph);
        comment_line(out, "");
    }
}

fn words(d: Duration) -> String {
    curfew_policy::Limit::from_millis(u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
        .map_or_else(|| format!("{}s", d.as_secs()), |l| l.to_string())
}
