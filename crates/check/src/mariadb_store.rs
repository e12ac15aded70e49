//! CURFEW-MARIADB-STORE: who may write to the `curfew` database. curfew's own account holds
//! table grants there only (a database-wide grant includes `DROP` and `TRIGGER`, with which the
//! agent's credential could drop the anchor store's triggers), and no other account but an
//! administrator may write there (a wildcard database grant such as `` `curfe_`.* `` or
//! `` `%`.* `` matches it). Pure: the grants are read by `mariadb_live`.

use curfew_mysql::account_name;

use crate::{Finding, Status};

/// The database `curfew init` installs.
const STORE: &str = "curfew";

/// A database-level grant (a row of `mysql.db` or `information_schema.SCHEMA_PRIVILEGES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseGrant {
    /// The grantee's user name.
    pub user: String,
    /// The grantee's host pattern.
    pub host: String,
    /// The database name or pattern (`_` and `%` wildcards, `\` escapes), as stored.
    pub database: String,
    /// The privileges, upper case (`SELECT`, `INSERT`, ...).
    pub privileges: Vec<String>,
}

/// A name quoted as an identifier (a backquote doubled).
fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Privileges that do not change the database's contents or its objects.
const READ_ONLY: &[&str] = &["SELECT", "SHOW VIEW", "USAGE", "LOCK TABLES"];

/// Whether a database pattern of a grant matches `name` (`_` one character, `%` any run, `\`
/// escaping the next one), as the server matches it.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_from(&p, &n)
}

fn matches_from(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('%', rest)) => (0..=n.len()).any(|i| matches_from(rest, &n[i..])),
        Some(('_', rest)) => !n.is_empty() && matches_from(rest, &n[1..]),
        Some(('\\', rest)) if !rest.is_empty() => {
            n.first() == Some(&rest[0]) && matches_from(&rest[1..], &n[1..])
        }
        Some((c, rest)) => n.first() == Some(c) && matches_from(rest, &n[1..]),
    }
}

/// Judge the `curfew` database's privileges: `grants` are every database-level grant the
/// check could read (or why it could not), `own` curfew's account's own (readable by it
/// always, so a database-wide grant of its own fails even when the rest is unreadable),
/// `curfew_user`/`curfew_host` curfew's account, `administrators` the accounts (`user@host`,
/// quoted) allowed to write anything anyway.
pub fn store(
    curfew_user: &str,
    curfew_host: &str,
    grants: &Result<Vec<DatabaseGrant>, String>,
    own: &[DatabaseGrant],
    administrators: &[String],
) -> Finding {
    const TITLE: &str = "Only administrators may change the curfew database (curfew's own account by table grants only)";
    const REQUIREMENT: &str = "curfew's own security: the audit anchors and login-lock ledger are protected from the agent's credential and other accounts (NIST SP 800-171 3.3.8)";
    const EXPECTED: &str = "no database-wide grant on `curfew` for curfew's account (table grants as `curfew init` gives), and none that writes for any other non-administrator account";
    let grants = match grants {
        Ok(grants) => grants,
        Err(_) if !own_problems(curfew_user, curfew_host, own).is_empty() => own,
        Err(why) => {
            return Finding {
                id: "CURFEW-MARIADB-STORE",
                title: TITLE,
                requirement: REQUIREMENT,
                status: Status::Unknown,
                observed: format!("the database grants could not be read by curfew's account: {why}"),
                expected: EXPECTED.to_owned(),
                why: String::new(),
                fix: "Have an administrator run: SELECT User, Host, Db FROM mysql.db WHERE 'curfew' LIKE Db; and revoke every database-wide grant it lists but an administrator's.".to_owned(),
            };
        }
    };
    let (mut problems, mut revokes) = (Vec::new(), Vec::new());
    for g in grants
        .iter()
        .filter(|g| pattern_matches(&g.database, STORE))
    {
        let account = account_name(&g.user, &g.host);
        let own = g.user == curfew_user && g.host == curfew_host;
        let writes: Vec<&str> = g
            .privileges
            .iter()
            .map(String::as_str)
            .filter(|p| !READ_ONLY.contains(p))
            .collect();
        if own && !g.privileges.is_empty() {
            problems.push(format!(
                "curfew's account {account} holds {} on {}.*",
                g.privileges.join(", "),
                quote_identifier(&g.database)
            ));
            revokes.push(format!(
                "REVOKE {} ON {}.* FROM {account};",
                g.privileges.join(", "),
                quote_identifier(&g.database)
            ));
        } else if !own && !writes.is_empty() && !administrators.contains(&account) {
            problems.push(format!(
                "{account} may write to curfew through {}.* ({})",
                quote_identifier(&g.database),
                writes.join(", ")
            ));
            revokes.push(format!(
                "REVOKE {} ON {}.* FROM {account};",
                writes.join(", "),
                quote_identifier(&g.database)
            ));
        }
    }
    let failed = !problems.is_empty();
    Finding {
        id: "CURFEW-MARIADB-STORE",
        title: TITLE,
        requirement: REQUIREMENT,
        status: if failed { Status::Fail } else { Status::Pass },
        observed: if failed {
            problems.join("; ")
        } else {
            format!(
                "{} database grants read; none on curfew beyond administrators' and curfew's table grants",
                grants.len()
            )
        },
        expected: EXPECTED.to_owned(),
        why: if failed {
            "a database-wide grant on curfew includes DROP or TRIGGER: the holder could drop the anchor store's triggers and rewrite the evidence".to_owned()
        } else {
            String::new()
        },
        fix: if failed {
            format!(
                "{} Then run `curfew init` again for curfew's table grants.",
                revokes.join(" ")
            )
        } else {
            String::new()
        },
    }
}

/// curfew's own database-wide grants on `curfew`.
fn own_problems<'g>(
    curfew_user: &str,
    curfew_host: &str,
    own: &'g [DatabaseGrant],
) -> Vec<&'g DatabaseGrant> {
    own.iter()
        .filter(|g| g.user == curfew_user && g.host == curfew_host)
        .filter(|g| pattern_matches(&g.database, STORE) && !g.privileges.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user: &str, db: &str, privileges: &[&str]) -> DatabaseGrant {
        DatabaseGrant {
            user: user.to_owned(),
            host: "%".to_owned(),
            database: db.to_owned(),
            privileges: privileges.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn patterns_match_as_the_server_does() {
        assert!(pattern_matches("curfew", "curfew"));
        assert!(pattern_matches("curfe_", "curfew"));
        assert!(pattern_matches("%", "curfew"));
        assert!(pattern_matches("cur%", "curfew"));
        assert!(!pattern_matches("curfe\\_", "curfew"));
        assert!(!pattern_matches("curfew_", "curfew"));
        assert!(!pattern_matches("app", "curfew"));
    }

    #[test]
    fn curfews_database_wide_grant_fails_with_its_revoke() {
        let f = store(
            "curfew",
            "%",
            &Ok(vec![grant("curfew", "curfew", &["ALL PRIVILEGES"])]),
            &[],
            &[],
        );
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.fix
                .contains("REVOKE ALL PRIVILEGES ON `curfew`.* FROM `curfew`@`%`;"),
            "{}",
            f.fix
        );
    }

    #[test]
    fn table_grants_and_other_databases_pass() {
        let f = store(
            "curfew",
            "%",
            &Ok(vec![
                grant("app", "app", &["INSERT"]),
                grant("reader", "%", &["SELECT"]),
            ]),
            &[],
            &[],
        );
        assert_eq!(f.status, Status::Pass, "{}", f.why);
    }

    #[test]
    fn a_wildcard_write_grant_fails_unless_an_administrators() {
        let grants = Ok(vec![grant("app", "curfe_", &["INSERT", "SELECT"])]);
        let f = store("curfew", "%", &grants, &[], &[]);
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.fix
                .contains("REVOKE INSERT ON `curfe_`.* FROM `app`@`%`;"),
            "{}",
            f.fix
        );
        let admin = store("curfew", "%", &grants, &[], &["`app`@`%`".to_owned()]);
        assert_eq!(admin.status, Status::Pass);
    }

    #[test]
    fn unreadable_grants_are_unknown_with_the_query() {
        let f = store("curfew", "%", &Err("denied".to_owned()), &[], &[]);
        assert_eq!(f.status, Status::Unknown);
        assert!(f.fix.contains("mysql.db"));
        // Its own database-wide grant is seen anyway.
        let own = [grant("curfew", "curfew", &["ALL PRIVILEGES"])];
        let f = store("curfew", "%", &Err("denied".to_owned()), &own, &[]);
        assert_eq!(f.status, Status::Fail);
    }
}
