//! `curfew init` on MariaDB/MySQL targets: as an administrator, install the `curfew` database
//! (the anchor store, and on MariaDB 10.4+ the login-lock ledger) and grant curfew's account
//! the least it needs (`curfew_mysql::install_sql`), then print what was run.

use anyhow::Context;
use curfew_policy::{Target, visible, visible_lines};

use crate::exit::{Failure, write_stdout};

/// Who runs the install and for whom: `curfew init`'s options.
pub(crate) struct MariaInit<'a> {
    /// The user name of curfew's account (default: the user in the target's URL).
    pub(crate) agent_user: Option<&'a str>,
    /// Connect as this administrator instead of the URL's user.
    pub(crate) admin_user: Option<&'a str>,
    /// The administrator's password file.
    pub(crate) admin_password_file: Option<std::path::PathBuf>,
}

/// Install on each MariaDB/MySQL target in turn.
pub(crate) async fn init(targets: &[&Target], request: &MariaInit<'_>) -> Result<(), Failure> {
    for target in targets {
        let mut spec = curfew_mysql::MysqlTarget::from_policy(target)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let agent_user = request
            .agent_user
            .map_or_else(|| spec.url.user.clone(), str::to_owned);
        if let Some(admin) = request.admin_user {
            spec.url.user = admin.to_owned();
            spec.password_file.clone_from(&request.admin_password_file);
        }
        let mut connection = curfew_mysql::connect(&spec)
            .await
            .with_context(|| format!("connecting to target \"{}\"", visible(&target.name)))?
            .connection;
        let installed = connection
            .install_curfew(&agent_user)
            .await
            .with_context(|| {
                format!("installing curfew on target \"{}\"", visible(&target.name))
            })?;
        let mut text = format!(
            "target {}: the curfew database is installed for {}: the audit chain's anchor store \
             (curfew.anchor: SELECT and INSERT only, going forward only){}\n",
            target.name,
            installed.accounts.join(", "),
            match installed.login_locks {
                true => {
                    ", the login-lock ledger and its grants (accounts read through the view \
                     curfew.account_state and locked through the procedure \
                     curfew.set_account_lock: curfew's account holds no CREATE USER)"
                }
                false => " (no login locks on this server: MariaDB 10.4+ keeps them)",
            }
        );
        text.push_str("statements run (idempotent):\n");
        for statement in &installed.statements {
            text.push_str(&format!("  {statement};\n"));
        }
        write_stdout(&visible_lines(&text)).context("writing to stdout")?;
    }
    Ok(())
}
