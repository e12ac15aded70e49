//! `curfew compile`: the policy as native database settings (defense in depth).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::exit::{Failure, out};
use crate::policy_file;

/// The databases `curfew compile` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Dialect {
    /// PostgreSQL 14 or later: ALTER ROLE ... SET and CONNECTION LIMIT, in one transaction.
    Postgres,
    /// Oracle Database: profiles, ALTER USER ... PROFILE, RESOURCE_LIMIT, sqlnet.ora lines.
    Oracle,
    /// MariaDB 10.3 or later: SET GLOBAL timeouts, ALTER USER ... WITH MAX_USER_CONNECTIONS.
    Mariadb,
    /// MySQL 8.0 or later: SET GLOBAL timeouts, MAX_USER_CONNECTIONS as templates.
    Mysql,
}

/// Options of `curfew compile`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which database to write the settings for.
    #[arg(long, value_enum)]
    dialect: Dialect,

    /// Write the script to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Set native timeouts this far above curfew's limits (e.g. 2m; 0 for none), so that the
    /// agent ends a session first and records why. Default: PostgreSQL, the larger of 1 minute
    /// and a tenth of each limit (MariaDB/MySQL likewise, in whole seconds); Oracle, none (no agent ends Oracle sessions).
    #[arg(long, value_name = "DURATION", value_parser = margin)]
    margin: Option<curfew_compile::Margin>,

    /// PostgreSQL 17+: write a login event trigger instead of role settings. It refuses, with
    /// FATAL 28000 and the reason, logins the policy's lock_logins rules or curfew's ledger do
    /// not allow now. Needs --on-error.
    #[arg(long, requires = "on_error")]
    login_trigger: bool,

    /// With --login-trigger: a role that always logs in (superusers always do: they can switch
    /// event triggers off anyway, and one is needed to recover).
    #[arg(long, value_name = "ROLE", requires = "login_trigger")]
    break_glass: Option<String>,

    /// With --login-trigger: whether a login proceeds (open) or is refused (closed) when the
    /// trigger's check itself fails (no ledger, an unreadable ledger, an unknown time zone).
    #[arg(
        long,
        value_enum,
        value_name = "open|closed",
        requires = "login_trigger"
    )]
    on_error: Option<OnError>,
}

/// `--on-error`: what the login trigger does when its check fails.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum OnError {
    /// The login proceeds (a WARNING in the server log).
    Open,
    /// The login is refused (FATAL 28000).
    Closed,
}

/// `--margin`: a policy duration (`90s`, `2m`), or `0` for none.
fn margin(text: &str) -> Result<curfew_compile::Margin, String> {
    if matches!(text.trim(), "0" | "0s" | "0m") {
        return Ok(curfew_compile::Margin::Fixed(std::time::Duration::ZERO));
    }
    text.parse::<curfew_policy::Limit>()
        .map(|l| curfew_compile::Margin::Fixed(l.to_std()))
        .map_err(|e| e.to_string())
}

/// Print (or write) the native settings for the policy.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let file = policy_file::load_conditions(config)?;
    let dialect = match args.dialect {
        Dialect::Postgres => curfew_compile::Dialect::Postgres,
        Dialect::Oracle => curfew_compile::Dialect::Oracle,
        Dialect::Mariadb => curfew_compile::Dialect::MariaDb,
        Dialect::Mysql => curfew_compile::Dialect::MySql,
    };
    let script = match (args.login_trigger, args.on_error) {
        (true, Some(on_error)) => {
            if !matches!(args.dialect, Dialect::Postgres) {
                return Err(Failure::Usage(
                    "--login-trigger is for --dialect postgres (PostgreSQL 17 and later)"
                        .to_owned(),
                ));
            }
            if args.margin.is_some() {
                return Err(Failure::Usage(
                    "--margin sets timeouts; the login trigger has none (leave --margin out)"
                        .to_owned(),
                ));
            }
            if let Some(role) = &args.break_glass
                && (role.is_empty() || role.contains('\0'))
            {
                return Err(Failure::Usage(
                    "--break-glass needs a role name (not empty, no NUL character)".to_owned(),
                ));
            }
            let options = curfew_compile::LoginTriggerOptions {
                break_glass: args.break_glass.clone(),
                on_error: match on_error {
                    OnError::Open => curfew_compile::OnError::Open,
                    OnError::Closed => curfew_compile::OnError::Closed,
                },
            };
            curfew_compile::login_trigger(&file.policy, &file.source, &file.sha256, &options)
        }
        _ => curfew_compile::compile_with(
            &file.policy,
            dialect,
            &file.source,
            &file.sha256,
            args.margin.unwrap_or_default(),
        ),
    };
    match &args.output {
        None => out(&script),
        Some(path) => std::fs::write(path, script)
            .with_context(|| format!("writing {}", path.display()))
            .map_err(Failure::Runtime),
    }
}
