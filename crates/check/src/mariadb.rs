//! `curfew check` on a MariaDB/MySQL target: the session-termination STIG items (MariaDB 10.x
//! V-253717 MADB-10-006200, MySQL 8.0 V-235185 MYS8-00-011100) judged from the server's native
//! timeouts against the policy, TLS, accounts without passwords, connection logging and the
//! privileges of curfew's own account. Pure: the facts are read by `mariadb_live`.

use std::collections::BTreeMap;
use std::time::Duration;

use curfew_mysql::{Flavor, account_name};
use curfew_policy::{Action, Condition, Rule};

use crate::durations::words;
use crate::{Finding, PolicyContext, Status};

/// The requirement the timeout finding implements on MariaDB.
const STIG_MARIADB: &str = "DISA STIG MariaDB Enterprise 10.x V-253717 (MADB-10-006200): end a user session after organization-defined conditions; NIST SP 800-171 3.1.11";
/// The same requirement for MySQL 8.0.
const STIG_MYSQL: &str = "DISA STIG MySQL 8.0 V-235185 (MYS8-00-011100): end a user session after organization-defined conditions; NIST SP 800-171 3.1.11";

/// What `curfew check` reads from a MariaDB/MySQL server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbFacts {
    /// `VERSION()`.
    pub version: String,
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// curfew's account: user and host.
    pub user: String,
    /// See [`MariaDbFacts::user`].
    pub host: String,
    /// Global variables by lower-case name (only those the checks read).
    pub variables: BTreeMap<String, String>,
    /// curfew's global privileges (`SHOW GRANTS`' `ON *.*` lines, upper case).
    pub privileges: Vec<String>,
    /// The server's accounts, or why they could not be read.
    pub accounts: Result<Vec<Account>, String>,
    /// The server's clock against this host's.
    pub clock: curfew_postgres::ClockReading,
    /// Every database-level grant (`mysql.db`), or why it could not be read.
    pub database_grants: Result<Vec<crate::DatabaseGrant>, String>,
    /// curfew's account's own database-level grants (always readable by it).
    pub own_database_grants: Vec<crate::DatabaseGrant>,
}

/// One account as far as passwords go (its secret is never read: only whether it is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name (empty: the anonymous account).
    pub user: String,
    /// Host pattern.
    pub host: String,
    /// Authentication plugin (empty: the server's default).
    pub plugin: String,
    /// Whether its stored secret is empty.
    pub empty_secret: bool,
    /// Whether it is locked (`ACCOUNT LOCK`).
    pub locked: bool,
    /// Whether it is a role (MariaDB), which cannot log in.
    pub role: bool,
}

/// The global variables the checks read.
pub(crate) const VARIABLES: &[&str] = &[
    "wait_timeout",
    "interactive_timeout",
    "idle_transaction_timeout",
    "idle_readonly_transaction_timeout",
    "idle_write_transaction_timeout",
    "require_secure_transport",
    "have_ssl",
    "tls_version",
    "general_log",
    "log_warnings",
    "log_error_verbosity",
    "server_audit_logging",
    "server_audit_events",
    "audit_log_policy",
    "audit_log_connection_policy",
    "skip_name_resolve",
];

/// Plugins that authenticate without a stored password (the operating system, Kerberos, PAM,
/// LDAP): an empty secret is expected there.
const EXTERNAL_PLUGINS: &[&str] = &[
    "unix_socket",
    "auth_socket",
    "gssapi",
    "authentication_kerberos",
    "pam",
    "authentication_pam",
    "authentication_ldap_simple",
    "authentication_ldap_sasl",
    "named_pipe",
    "authentication_windows",
];

/// Judge a MariaDB/MySQL server: the timeouts against the policy, TLS, passwords, connection
/// logging, curfew's privileges, the clocks. The STIG ids are in the timeout finding's requirement.
pub fn judge_mariadb(facts: &MariaDbFacts, ctx: PolicyContext<'_>) -> Vec<Finding> {
    let mut findings = vec![
        timeout(facts, ctx),
        tls(facts),
        no_password(facts),
        logging(facts),
        privileges(facts, ctx),
        crate::mariadb_names::finding(var(facts, "skip_name_resolve"), ctx.policy),
        crate::mariadb_store::store(
            &facts.user,
            &facts.host,
            &facts.database_grants,
            &facts.own_database_grants,
            &[],
        ),
        crate::clock::finding(&facts.clock, "NOW(6)", ctx.max_clock_offset),
    ];
    for f in &mut findings {
        if f.status != Status::Fail {
            f.why.clear();
        }
    }
    findings
}

/// The requirement the session-termination finding implements on this flavor.
pub fn stig(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb { .. } => STIG_MARIADB,
        Flavor::MySql => STIG_MYSQL,
    }
}

fn var<'f>(facts: &'f MariaDbFacts, name: &str) -> Option<&'f str> {
    facts.variables.get(name).map(String::as_str)
}

fn seconds(facts: &MariaDbFacts, name: &str) -> Option<Duration> {
    let v = var(facts, name)?.trim();
    // Some versions report fractional seconds (`idle_*_timeout` never, but be lenient).
    let whole = v.split('.').next().unwrap_or(v);
    whole.parse::<u64>().ok().map(Duration::from_secs)
}

fn is_on(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "ON" | "1" | "YES"))
}

/// The enforced rules with this kind of limit, with their limits.
fn limits(
    ctx: PolicyContext<'_>,
    pick: fn(&Condition) -> Option<Duration>,
) -> Vec<(&Rule, Duration)> {
    ctx.policy
        .rules
        .iter()
        .filter(|r| r.action == Action::Terminate)
        .filter_map(|r| pick(&r.condition).map(|d| (r, d)))
        .collect()
}

fn idle_limit(c: &Condition) -> Option<Duration> {
    match c {
        Condition::Idle(l) => Some(l.to_std()),
        _ => None,
    }
}

fn in_transaction_limit(c: &Condition) -> Option<Duration> {
    match c {
        Condition::IdleInTransaction(l) => Some(l.to_std()),
        _ => None,
    }
}

/// Idle sessions end per the policy: an enforced `idle` rule covers every session, and no
/// native timeout ends a session before curfew would (the server would then end it without
/// an audit record of why). The native timeouts are session-settable, so they are the
/// backstop, never the control.
fn timeout(facts: &MariaDbFacts, ctx: PolicyContext<'_>) -> Finding {
    let idle = limits(ctx, idle_limit);
    let in_transaction = limits(ctx, in_transaction_limit);
    let mut observed: Vec<String> = [
        "wait_timeout",
        "interactive_timeout",
        "idle_transaction_timeout",
    ]
    .iter()
    .map(|name| match seconds(facts, name) {
        Some(d) => format!("{name} = {}", words(d)),
        None => format!("{name}: not on this server"),
    })
    .collect();
    for (r, d) in idle.iter().chain(&in_transaction) {
        observed.push(format!(
            "curfew rule \"{}\" ({} {})",
            r.name,
            r.condition.key(),
            words(*d)
        ));
    }
    if idle.is_empty() {
        observed.push("no enforced curfew idle rule".to_owned());
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if !idle.iter().any(|(r, _)| r.scope.is_everything()) {
        problems.push(
            "no enforced curfew idle rule covers every session, and the native timeouts are session-settable by any user (SET SESSION wait_timeout)"
                .to_owned(),
        );
        fixes.push("Add a curfew rule with idle = \"15m\" (or your organization's limit) and no scope keys, and run the agent on this target.".to_owned());
    }
    // A native timeout below a rule's limit ends those sessions first, unrecorded.
    let preempting = |name: &str, rules: &[(&Rule, Duration)]| -> Option<(String, Duration)> {
        let native = seconds(facts, name).filter(|d| !d.is_zero())?;
        let (rule, limit) = rules.iter().max_by_key(|(_, d)| *d)?;
        (native < *limit).then(|| {
            (
                format!(
                    "{name} = {} ends sessions before curfew's rule \"{}\" ({}), so the server ends them without an audit record of why",
                    words(native),
                    rule.name,
                    words(*limit)
                ),
                *limit,
            )
        })
    };
    for name in ["wait_timeout", "interactive_timeout"] {
        if let Some((problem, limit)) = preempting(name, &idle) {
            problems.push(problem);
            fixes.push(format!(
                "Set {name} above {} (`curfew compile --dialect {}` writes the value with a margin).",
                words(limit),
                dialect(facts.flavor)
            ));
        }
    }
    if let Some((problem, limit)) = preempting("idle_transaction_timeout", &in_transaction) {
        problems.push(problem);
        fixes.push(format!(
            "Set idle_transaction_timeout above {} or to 0.",
            words(limit)
        ));
    }
    let failed = !problems.is_empty();
    Finding {
        id: "CURFEW-MARIADB-TIMEOUT",
        title: match facts.flavor {
            Flavor::MariaDb { .. } => {
                "V-253717 (MADB-10-006200): idle sessions are ended per the policy, native timeouts as the backstop"
            }
            Flavor::MySql => {
                "V-235185 (MYS8-00-011100): idle sessions are ended per the policy, native timeouts as the backstop"
            }
        },
        requirement: stig(facts.flavor),
        status: if failed { Status::Fail } else { Status::Pass },
        observed: observed.join("; "),
        expected: "an enforced curfew idle rule for every session (no scope keys), and wait_timeout, interactive_timeout and idle_transaction_timeout 0 or above the policy's limits".to_owned(),
        why: problems.join("; "),
        fix: fixes.join(" "),
    }
}

/// The dialect name `curfew compile` takes for this flavor.
fn dialect(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb { .. } => "mariadb",
        Flavor::MySql => "mysql",
    }
}

/// Clients must use TLS (`require_secure_transport`), with TLS 1.2 or later.
fn tls(facts: &MariaDbFacts) -> Finding {
    let required = var(facts, "require_secure_transport");
    let versions = var(facts, "tls_version");
    let old = versions.is_some_and(|v| {
        v.split(',')
            .any(|p| matches!(p.trim(), "TLSv1" | "TLSv1.0" | "TLSv1.1"))
    });
    let mut observed = vec![match required {
        Some(v) => format!("require_secure_transport = {v}"),
        None => "require_secure_transport: not on this server".to_owned(),
    }];
    if let Some(v) = var(facts, "have_ssl") {
        observed.push(format!("have_ssl = {v}"));
    }
    if let Some(v) = versions {
        observed.push(format!("tls_version = {v}"));
    }
    let mut why = Vec::new();
    if !is_on(required) {
        why.push("the server accepts connections without TLS");
    }
    if old {
        why.push("TLS 1.0 or 1.1 is still accepted");
    }
    let status = match (required, why.is_empty()) {
        (None, _) => Status::Unknown,
        (Some(_), true) => Status::Pass,
        (Some(_), false) => Status::Fail,
    };
    Finding {
        id: "CURFEW-MARIADB-TLS",
        title: "Clients must use TLS 1.2 or later",
        requirement: "DISA STIG MariaDB 10.x / MySQL 8.0: protect the confidentiality and integrity of transmitted information",
        status,
        observed: observed.join("; "),
        expected: "require_secure_transport = ON, tls_version without TLSv1.0/TLSv1.1".to_owned(),
        why: why.join("; "),
        fix: match status {
            Status::Pass | Status::Info => String::new(),
            _ => "In the server's configuration: ssl_cert, ssl_key, require_secure_transport = ON and tls_version = TLSv1.2,TLSv1.3; then restart (or SET GLOBAL require_secure_transport = ON).".to_owned(),
        },
    }
}

/// No account that can log in has an empty password.
fn no_password(facts: &MariaDbFacts) -> Finding {
    const TITLE: &str = "No account logs in without a password";
    const REQUIREMENT: &str =
        "DISA STIG MariaDB 10.x / MySQL 8.0: authenticate every account; NIST SP 800-171 3.5.2";
    let accounts = match &facts.accounts {
        Ok(accounts) => accounts,
        Err(why) => {
            return Finding {
                id: "CURFEW-MARIADB-NOPASSWORD",
                title: TITLE,
                requirement: REQUIREMENT,
                status: Status::Unknown,
                observed: format!("the accounts could not be read by curfew's account: {why}"),
                expected: "no unlocked account with an empty password".to_owned(),
                why: String::new(),
                fix: format!(
                    "Run `curfew init` (it installs the view curfew.account_state, which curfew's account reads without access to the password hashes), or run `curfew check` once with an account that may read {} (an administrator's), or have an administrator run: {}",
                    accounts_table(facts.flavor),
                    admin_query(facts.flavor)
                ),
            };
        }
    };
    let open: Vec<String> = accounts
        .iter()
        .filter(|a| a.empty_secret && !a.locked && !a.role)
        .filter(|a| !EXTERNAL_PLUGINS.contains(&a.plugin.to_ascii_lowercase().as_str()))
        .map(|a| account_name(&a.user, &a.host))
        .collect();
    let failed = !open.is_empty();
    Finding {
        id: "CURFEW-MARIADB-NOPASSWORD",
        title: TITLE,
        requirement: REQUIREMENT,
        status: if failed { Status::Fail } else { Status::Pass },
        observed: if failed {
            format!("accounts without a password: {}", open.join(", "))
        } else {
            format!(
                "{} accounts; none without a password (locked accounts, roles and socket, PAM, GSSAPI or LDAP authentication apart)",
                accounts.len()
            )
        },
        expected: "no unlocked account with an empty password".to_owned(),
        why: if failed {
            format!(
                "{} can log in without a password",
                if open.len() == 1 {
                    "this account"
                } else {
                    "these accounts"
                }
            )
        } else {
            String::new()
        },
        fix: if failed {
            open.iter()
                .map(|a| {
                    if a.starts_with("``@") {
                        format!("DROP USER {a};")
                    } else {
                        format!("ALTER USER {a} IDENTIFIED BY '<new password>'; (or ALTER USER {a} ACCOUNT LOCK;)")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            String::new()
        },
    }
}

fn accounts_table(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb { .. } => "mysql.global_priv",
        Flavor::MySql => "mysql.user",
    }
}

/// The query an administrator runs by hand to list accounts without a password.
fn admin_query(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb { .. } => {
            "SELECT User, Host FROM mysql.global_priv WHERE IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '' AND IFNULL(JSON_VALUE(Priv, '$.account_locked'), '0') NOT IN ('1', 'true') AND IFNULL(JSON_VALUE(Priv, '$.is_role'), '0') NOT IN ('1', 'true')"
        }
        Flavor::MySql => {
            "SELECT User, Host FROM mysql.user WHERE authentication_string = '' AND account_locked = 'N'"
        }
    }
}

/// Connections are logged: MariaDB's `server_audit` plugin with connection events, MySQL
/// Enterprise's `audit_log`, or the general query log.
fn logging(facts: &MariaDbFacts) -> Finding {
    let mut observed = Vec::new();
    let audit_plugin = match var(facts, "server_audit_logging") {
        Some(logging) => {
            let events = var(facts, "server_audit_events").unwrap_or("");
            observed.push(format!(
                "server_audit_logging = {logging}, server_audit_events = {}",
                if events.is_empty() { "(all)" } else { events }
            ));
            // An empty event list logs every kind of event.
            is_on(Some(logging))
                && (events.trim().is_empty()
                    || events
                        .split(',')
                        .any(|e| e.trim().eq_ignore_ascii_case("CONNECT")))
        }
        None => {
            observed.push("server_audit plugin: not loaded".to_owned());
            false
        }
    };
    let enterprise = var(facts, "audit_log_policy")
        .is_some_and(|p| matches!(p.to_ascii_uppercase().as_str(), "ALL" | "LOGINS"));
    if let Some(p) = var(facts, "audit_log_policy") {
        observed.push(format!("audit_log_policy = {p}"));
    }
    let general = is_on(var(facts, "general_log"));
    observed.push(format!(
        "general_log = {}",
        var(facts, "general_log").unwrap_or("(not shown)")
    ));
    for name in ["log_warnings", "log_error_verbosity"] {
        if let Some(v) = var(facts, name) {
            observed.push(format!(
                "{name} = {v} (failed logins and aborted connections only)"
            ));
        }
    }
    let ok = audit_plugin || enterprise || general;
    Finding {
        id: "CURFEW-MARIADB-LOGGING",
        title: "Connections and disconnections are logged",
        requirement: "DISA STIG MariaDB 10.x / MySQL 8.0: audit logons and logoffs; NIST SP 800-171 3.3.1",
        status: if ok { Status::Pass } else { Status::Fail },
        observed: observed.join("; "),
        expected: match facts.flavor {
            Flavor::MariaDb { .. } => "the server_audit plugin with server_audit_logging = ON and CONNECT among server_audit_events (or the general log)",
            Flavor::MySql => "audit_log with audit_log_policy = ALL or LOGINS (or the general log)",
        }
        .to_owned(),
        why: if ok {
            String::new()
        } else {
            "nothing logs successful connections and their ends (log_warnings records only failures)".to_owned()
        },
        fix: if ok {
            String::new()
        } else {
            match facts.flavor {
                Flavor::MariaDb { .. } => "INSTALL SONAME 'server_audit'; SET GLOBAL server_audit_events = 'CONNECT'; SET GLOBAL server_audit_logging = ON; and put plugin_load_add = server_audit, server_audit_events = CONNECT, server_audit_logging = ON in the server's configuration so it survives a restart.",
                Flavor::MySql => "Install MySQL Enterprise Audit (audit_log) with audit_log_policy = LOGINS, or a comparable audit plugin.",
            }
            .to_owned()
        },
    }
}

/// curfew's account holds exactly what it needs: `PROCESS` and the privilege to end other
/// accounts' connections; nothing else globally. Login locks need no global privilege: they
/// go through `curfew init`'s procedure `curfew.set_account_lock`, so `CREATE USER` (with
/// which the account could change any account's password, an administrator's included) is
/// excess. Grants on the `curfew` database are not global and not judged here.
fn privileges(facts: &MariaDbFacts, ctx: PolicyContext<'_>) -> Finding {
    let account = account_name(&facts.user, &facts.host);
    let locks = ctx
        .policy
        .rules
        .iter()
        .any(|r| r.lock_logins && r.action == Action::Terminate);
    let kill = facts.flavor.kill_privilege();
    let needed = ["PROCESS", kill];
    let allowed = |p: &str| p == "USAGE";
    let excess: Vec<&str> = facts
        .privileges
        .iter()
        .map(String::as_str)
        .filter(|p| !allowed(p) && !needed.contains(p))
        .collect();
    // Revokes first: revoking ALL PRIVILEGES or SUPER also takes what they covered, so every
    // needed privilege not held by its own name is granted after them.
    let revokes = excess
        .iter()
        .map(|p| format!("REVOKE {p} ON *.* FROM {account}"));
    let grants = needed
        .iter()
        .filter(|p| !facts.privileges.iter().any(|have| have == *p))
        .map(|p| format!("GRANT {p} ON *.* TO {account}"));
    let statements: Vec<String> = revokes.chain(grants).collect();
    let missing = needed
        .iter()
        .any(|p| !facts.privileges.iter().any(|have| have == *p));
    let failed = !statements.is_empty();
    let mut why = Vec::new();
    if missing {
        why.push("curfew's account lacks what it needs".to_owned());
    }
    if !excess.is_empty() {
        why.push(format!(
            "curfew's account holds more than it needs ({}): a stolen agent credential could do that much",
            excess.join(", ")
        ));
    }
    Finding {
        id: "CURFEW-MARIADB-PRIVILEGES",
        title: "curfew's account has exactly the privileges it needs",
        requirement: "curfew's own security: least privilege (NIST SP 800-171 3.1.5)",
        status: if failed { Status::Fail } else { Status::Pass },
        observed: format!(
            "{account} holds on *.*: {}",
            if facts.privileges.is_empty() {
                "nothing".to_owned()
            } else {
                facts.privileges.join(", ")
            }
        ),
        expected: format!(
            "exactly {} on *.*{}",
            needed.join(", "),
            if locks {
                " (the policy's login locks go through curfew.set_account_lock, installed by `curfew init`: no CREATE USER)"
            } else {
                ""
            }
        ),
        why: why.join("; "),
        fix: statements
            .iter()
            .map(|s| format!("{s};"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}
