//! The privileges curfew's account needs, judged from `SHOW GRANTS` without I/O, and the exact
//! `GRANT` an administrator runs for each one missing.

use crate::names::quote_identifier;

/// Which server, as far as privileges go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB, with its major and minor version.
    MariaDb {
        /// e.g. 10.
        major: u32,
        /// e.g. 11.
        minor: u32,
    },
    /// MySQL.
    MySql,
}

impl Flavor {
    /// From `VERSION()`: `10.11.14-MariaDB-0+deb12u2`, `8.0.36`.
    pub fn from_version(version: &str) -> Flavor {
        if !version.contains("MariaDB") {
            return Flavor::MySql;
        }
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        Flavor::MariaDb {
            major: numbers.next().unwrap_or(0),
            minor: numbers.next().unwrap_or(0),
        }
    }

    /// The privilege that lets an account end other accounts' connections (`KILL`).
    pub fn kill_privilege(self) -> &'static str {
        match self {
            Flavor::MariaDb { major, minor } if (major, minor) >= (10, 5) => "CONNECTION ADMIN",
            Flavor::MariaDb { .. } => "SUPER",
            Flavor::MySql => "CONNECTION_ADMIN",
        }
    }
}

/// The global privileges `SHOW GRANTS` lists for the account (from `GRANT ... ON *.* TO`
/// lines; grants on databases and tables, and roles, are not global privileges). Only the text
/// before ` ON ` is read: what follows may hold a password hash, which is never kept.
pub fn global_privileges(grant_lines: &[String]) -> Vec<String> {
    let mut privileges = Vec::new();
    for line in grant_lines {
        let Some(rest) = line.strip_prefix("GRANT ") else {
            continue;
        };
        let Some((list, target)) = rest.split_once(" ON ") else {
            continue;
        };
        if !target.starts_with("*.* TO ") {
            continue;
        }
        privileges.extend(list.split(',').map(|p| p.trim().to_ascii_uppercase()));
    }
    privileges
}

/// The `GRANT` statements the account `user@host` is missing on a `flavor` server, given its
/// global privileges: `PROCESS` (to see every session and InnoDB's transactions), and the
/// privilege to `KILL` other accounts' connections. `ALL PRIVILEGES` covers both; `SUPER`
/// covers the second.
pub fn missing_grants(
    flavor: Flavor,
    privileges: &[String],
    user: &str,
    host: &str,
) -> Vec<String> {
    let has = |p: &str| {
        privileges
            .iter()
            .any(|have| have == p || have == "ALL PRIVILEGES")
    };
    let account = account_name(user, host);
    let mut missing = Vec::new();
    if !has("PROCESS") {
        missing.push(format!("GRANT PROCESS ON *.* TO {account}"));
    }
    let kill = flavor.kill_privilege();
    if !has(kill) && !has("SUPER") {
        missing.push(format!("GRANT {kill} ON *.* TO {account}"));
    }
    missing
}

/// An account as MariaDB and MySQL read it whatever the SQL mode: `` `user`@`host` ``.
pub fn account_name(user: &str, host: &str) -> String {
    format!("{}@{}", quote_identifier(user), quote_identifier(host))
}

/// `CURRENT_USER()`'s `user@host` split at its last `@` (a user name may hold one, a host
/// name may not).
pub fn split_account(current_user: &str) -> Option<(&str, &str)> {
    current_user.rsplit_once('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn flavors_are_read_from_the_version() {
        assert_eq!(
            Flavor::from_version("10.11.14-MariaDB-0+deb12u2"),
            Flavor::MariaDb {
                major: 10,
                minor: 11
            }
        );
        assert_eq!(Flavor::from_version("8.0.36"), Flavor::MySql);
        assert_eq!(
            Flavor::MariaDb {
                major: 10,
                minor: 4
            }
            .kill_privilege(),
            "SUPER"
        );
        assert_eq!(
            Flavor::MariaDb {
                major: 11,
                minor: 4
            }
            .kill_privilege(),
            "CONNECTION ADMIN"
        );
        assert_eq!(Flavor::MySql.kill_privilege(), "CONNECTION_ADMIN");
    }

    #[test]
    fn only_global_grants_count_and_the_password_is_never_read() {
        let grants = lines(&[
            "GRANT PROCESS, CONNECTION ADMIN ON *.* TO `agent`@`%` IDENTIFIED BY PASSWORD '*HASH'",
            "GRANT SELECT ON `performance_schema`.* TO `agent`@`%`",
            "GRANT `ops_role` TO `agent`@`%`",
        ]);
        let privileges = global_privileges(&grants);
        assert_eq!(privileges, vec!["PROCESS", "CONNECTION ADMIN"]);
        assert!(!privileges.iter().any(|p| p.contains("HASH")));
    }

    #[test]
    fn each_missing_grant_is_named_exactly() {
        let mariadb = Flavor::MariaDb {
            major: 10,
            minor: 11,
        };
        assert_eq!(
            missing_grants(mariadb, &[], "o'brien", "%"),
            vec![
                "GRANT PROCESS ON *.* TO `o'brien`@`%`".to_owned(),
                "GRANT CONNECTION ADMIN ON *.* TO `o'brien`@`%`".to_owned(),
            ]
        );
        assert_eq!(
            missing_grants(Flavor::MySql, &lines(&["PROCESS"]), "a`b", "10.0.0.%"),
            vec!["GRANT CONNECTION_ADMIN ON *.* TO `a``b`@`10.0.0.%`".to_owned()]
        );
        assert!(missing_grants(mariadb, &lines(&["PROCESS", "SUPER"]), "a", "%").is_empty());
        assert!(missing_grants(mariadb, &lines(&["ALL PRIVILEGES"]), "a", "%").is_empty());
    }

    #[test]
    fn accounts_split_at_the_last_at_sign() {
        assert_eq!(split_account("a@b@10.0.0.1"), Some(("a@b", "10.0.0.1")));
        assert_eq!(split_account("noat"), None);
    }
}
