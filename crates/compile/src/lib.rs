//! curfew's policy as native database settings: defense in depth beside curfew's agent
//! (`curfew compile --dialect postgres|oracle`).
//!
//! - PostgreSQL: `ALTER ROLE ... SET idle_session_timeout` / `idle_in_transaction_session_timeout`
//!   and `ALTER ROLE ... CONNECTION LIMIT`, as one transaction that expands role patterns and
//!   memberships when it is applied. Users can override the timeouts with `SET`, which is why
//!   curfew's agent exists; the script says so.
//! - Oracle: `CREATE PROFILE ... LIMIT IDLE_TIME n CONNECT_TIME n SESSIONS_PER_USER n`,
//!   `ALTER USER ... PROFILE`, `ALTER SYSTEM SET RESOURCE_LIMIT = TRUE` and the `sqlnet.ora`
//!   lines, with limits rounded up to Oracle's whole minutes.
//! - MariaDB/MySQL: `SET GLOBAL wait_timeout`/`interactive_timeout` (and MariaDB's
//!   `idle_transaction_timeout`) for rules without scope keys, commented out when the policy
//!   exempts anything; `ALTER USER ... WITH MAX_USER_CONNECTIONS` for `max_sessions` rules.
//!
//! - PostgreSQL 17+, `--login-trigger`: a login event trigger that refuses the logins the
//!   policy's `lock_logins` rules and curfew's ledger do not allow now, with the reason
//!   ([`login_trigger`]; the wording is [`login_refusal_message`]'s, shared with the gateway).
//!
//! Every rule that cannot be expressed natively gets a comment saying why. The output is
//! deterministic (no timestamps): it names the policy file and its SHA-256 instead.
//!
//! This crate is pure: no I/O, no clock reads.
//!
//! ```
//! let text = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\nroles = [\"kim\"]\n";
//! let policy = curfew_policy::parse_policy("curfew.toml", text, jiff::tz::db()).unwrap().policy;
//! let sql = curfew_compile::postgres(&policy, "curfew.toml", "0123abcd");
//! // 15 minutes plus the default margin (a tenth: 90s): curfew's agent ends the session first.
//! assert!(sql.contains("'idle_session_timeout', '990s', roles => ARRAY['kim']"));
//! let oracle = curfew_compile::oracle(&policy, "curfew.toml", "0123abcd");
//! assert!(oracle.contains("IDLE_TIME 15"));
//! ```

mod login_trigger;
mod login_trigger_sql;
mod margin;
mod mariadb;
#[cfg(test)]
mod mariadb_tests;
mod oracle;
mod oracle_profile;
mod oracle_users;
mod postgres;
mod postgres_sql;
mod scope;
mod text;

use curfew_policy::Policy;

pub use curfew_policy::login_refusal::{
    RefusalCause, WindowRule, login_refusal_message, opening_time, utc_time,
};
pub use login_trigger::{LoginTriggerOptions, OnError, login_trigger};
pub use margin::Margin;

/// The PostgreSQL script for `policy` with the default [`Margin`]: role settings for the rules
/// that map, a comment with the reason for each rule that does not. `source` and `sha256` name
/// the policy file (shown in the header, so the output ties to the exact file).
pub fn postgres(policy: &Policy, source: &str, sha256: &str) -> String {
    postgres::compile(policy, source, sha256, Margin::Default)
}

/// The Oracle script for `policy` with the default [`Margin`] (none): profiles,
/// `ALTER USER ... PROFILE` for the users the policy names, `RESOURCE_LIMIT`, and the
/// `sqlnet.ora` lines in a commented section. `source` and `sha256` name the policy file.
pub fn oracle(policy: &Policy, source: &str, sha256: &str) -> String {
    oracle::compile(policy, source, sha256, Margin::Default)
}

/// A database whose native settings curfew can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL 14 or later.
    Postgres,
    /// Oracle Database (12c or later).
    Oracle,
    /// MariaDB 10.3 or later.
    MariaDb,
    /// MySQL 8.0 or later.
    MySql,
}

/// The script for `policy` in `dialect` (see [`postgres`] and [`oracle`]), with the default
/// [`Margin`].
pub fn compile(policy: &Policy, dialect: Dialect, source: &str, sha256: &str) -> String {
    compile_with(policy, dialect, source, sha256, Margin::Default)
}

/// As [`compile`], with the timeouts set `margin` above curfew's limits.
pub fn compile_with(
    policy: &Policy,
    dialect: Dialect,
    source: &str,
    sha256: &str,
    margin: Margin,
) -> String {
    match dialect {
        Dialect::Postgres => postgres::compile(policy, source, sha256, margin),
        Dialect::Oracle => oracle::compile(policy, source, sha256, margin),
        Dialect::MariaDb => {
            mariadb::compile(policy, mariadb::Server::MariaDb, source, sha256, margin)
        }
        Dialect::MySql => mariadb::compile(policy, mariadb::Server::MySql, source, sha256, margin),
    }
}

/// Helpers the unit tests of both dialects share.
#[cfg(test)]
mod test_support {
    #![allow(clippy::unwrap_used)]

    use curfew_policy::Policy;

    /// A policy from its text, its target URLs read as the binary reads them (the agent's
    /// roles come from them).
    pub(crate) fn policy(text: &str) -> Policy {
        let urls: &[&dyn curfew_policy::UrlValidator] = &[&curfew_postgres::POSTGRES_URLS];
        curfew_policy::parse_policy_with("t.toml", text, jiff::tz::db(), urls)
            .unwrap()
            .policy
    }

    /// The comments of `out` as one line of prose (wrapping undone).
    pub(crate) fn prose(out: &str) -> String {
        out.lines()
            .filter_map(|l| l.strip_prefix("--"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }
}
