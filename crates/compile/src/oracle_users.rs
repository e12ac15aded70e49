//! Oracle: which users get which profile. Users the policy names literally get an `ALTER USER`
//! statement; users behind patterns and memberships are found by a query (in a comment) that the
//! DBA runs, since they can only be known on the server.

use curfew_policy::Glob;

use crate::oracle_profile::{Group, Profile};
use crate::scope::{Exempt, Selector};
use crate::text::{comment, literal, shown};

/// Oracle's longest identifier, in bytes (12.2 and later; 30 before).
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 128;

/// A quoted Oracle identifier (`"appuser"`), or why the name cannot be one: Oracle's quoted
/// identifiers are 1 to 128 bytes and cannot contain a double quote or a NUL.
pub(crate) fn identifier(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        Err("an Oracle name cannot be empty")
    } else if name.contains('"') || name.contains('\0') {
        Err("an Oracle name cannot contain a double quote or a NUL")
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Err("an Oracle name is at most 128 bytes long")
    } else {
        Ok(format!("\"{name}\""))
    }
}

/// A policy name pattern as an Oracle `LIKE` condition on `column`, with `\` as the escape.
fn like(column: &str, pattern: &str) -> String {
    let mut converted = String::new();
    for c in pattern.chars() {
        match c {
            '\\' | '%' | '_' => {
                converted.push('\\');
                converted.push(c);
            }
            '*' => converted.push('%'),
            '?' => converted.push('_'),
            c => converted.push(c),
        }
    }
    format!("{column} LIKE {} ESCAPE '\\'", literal(&converted))
}

fn any_like(column: &str, patterns: &[String]) -> String {
    let parts: Vec<String> = patterns.iter().map(|p| like(column, p)).collect();
    format!("({})", parts.join(" OR "))
}

/// The users granted a role matching one of `patterns`, directly or through other roles.
fn granted(patterns: &[String]) -> String {
    format!(
        "(SELECT grantee FROM dba_role_privs START WITH {} CONNECT BY NOCYCLE PRIOR grantee = \
         granted_role)",
        any_like("granted_role", patterns)
    )
}

/// A comment line: the query that lists the users a scope covers, without the exempt ones.
pub(crate) fn find_users_query(selector: &Selector, exempt: &Exempt) -> String {
    let mut conditions = vec!["oracle_maintained = 'N'".to_owned()];
    if !selector.roles.is_empty() {
        conditions.push(any_like("username", &selector.roles));
    }
    if !selector.member_of.is_empty() {
        conditions.push(format!("username IN {}", granted(&selector.member_of)));
    }
    if !exempt.roles.is_empty() {
        conditions.push(format!("NOT {}", any_like("username", &exempt.roles)));
    }
    if !exempt.member_of.is_empty() {
        conditions.push(format!("username NOT IN {}", granted(&exempt.member_of)));
    }
    format!(
        "Find them: SELECT username FROM dba_users WHERE {} ORDER BY username;",
        conditions.join(" AND ")
    )
}

/// The names the policy gives literally in `roles` of scopes that need no membership, in order
/// of first appearance.
fn literal_names(groups: &[Group]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for group in groups.iter().filter(|g| g.selector.by_name_only()) {
        for role in &group.selector.roles {
            if Glob::new(role).is_literal() && !names.contains(&role.as_str()) {
                names.push(role);
            }
        }
    }
    names
}

/// `ALTER USER ... PROFILE` for the users the policy names, and how to give the others theirs.
pub(crate) fn name_users(
    out: &mut String,
    groups: &[Group],
    profiles: &[Profile],
    exempt: &Exempt,
) {
    out.push('\n');
    comment(
        out,
        "-- ",
        "-- ",
        "Users: give each user the profile of the scopes it is in. The users the policy names \
         (covered by their name alone) are given theirs here:",
    );
    let membership_scopes: Vec<String> = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.selector.by_name_only())
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    let names = literal_names(groups);
    if names.is_empty() {
        comment(out, "--   ", "--     ", "none.");
    }
    for name in names {
        if exempt.role_by_name(name) {
            comment(
                out,
                "-- ",
                "--   ",
                &format!("{} is exempt: it is not given a profile.", shown(name)),
            );
            continue;
        }
        let user = match identifier(name) {
            Ok(user) => user,
            Err(why) => {
                comment(
                    out,
                    "-- ",
                    "--   ",
                    &format!("{} is not given a profile: {why}.", shown(name)),
                );
                continue;
            }
        };
        let covered: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.selector.by_name_only() && g.selector.covers_name(name))
            .map(|(i, _)| i)
            .collect();
        let Some(profile) = profiles.iter().find(|p| p.groups == covered) else {
            comment(
                out,
                "-- ",
                "--   ",
                &format!(
                    "{} is in several scopes and no profile combines them: make one by hand.",
                    shown(name)
                ),
            );
            continue;
        };
        if !membership_scopes.is_empty() {
            comment(
                out,
                "-- ",
                "--   ",
                &format!(
                    "If {} is also in scope {} (through a role it is granted), give it the \
                     profile of all its scopes instead.",
                    shown(name),
                    membership_scopes.join(" or ")
                ),
            );
        }
        out.push_str(&format!(
            "ALTER USER {user} PROFILE \"{}\";\n",
            profile.name()
        ));
    }
    let by_literal_names = |s: &Selector| {
        s.by_name_only() && !s.roles.is_empty() && s.roles.iter().all(|r| Glob::new(r).is_literal())
    };
    if groups.iter().any(|g| !by_literal_names(&g.selector)) {
        let example = profiles
            .last()
            .map(Profile::name)
            .unwrap_or_else(|| "CURFEW_1".to_owned());
        comment(
            out,
            "-- ",
            "-- ",
            &format!(
                "The users of patterns and memberships are listed by the queries under \"Scopes\" \
                 above; give each the profile of the scopes whose queries list it, e.g. for a user \
                 listed by all of them: ALTER USER \"NAME\" PROFILE \"{example}\";"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn oracle_identifiers_follow_oracle_rules() {
        assert_eq!(identifier("appuser").unwrap(), "\"appuser\"");
        assert_eq!(identifier("o'brien ü").unwrap(), "\"o'brien ü\"");
        assert!(identifier("a\"b").is_err());
        assert!(identifier("").is_err());
        assert!(identifier(&"x".repeat(129)).is_err());
        assert!(identifier(&"x".repeat(128)).is_ok());
        // 43 three-byte characters: 129 bytes.
        assert!(identifier(&"€".repeat(43)).is_err());
    }

    #[test]
    fn patterns_become_escaped_like_conditions() {
        assert_eq!(
            like("username", "analyst_*"),
            r"username LIKE 'analyst\_%' ESCAPE '\'"
        );
        assert_eq!(
            like("username", "o'b?%\\"),
            r"username LIKE 'o''b_\%\\' ESCAPE '\'"
        );
    }
}
