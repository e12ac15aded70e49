//! Which roles a rule covers, as far as native settings can tell: the parts of a rule's scope
//! and of `[exempt]` that both dialects share.

use curfew_policy::{Action, ExemptBy, ExemptKeys, Exemption, Glob, Policy, Rule, Scope};

use crate::text::{shown, shown_list};

/// The role part of a rule's scope (`roles` and `member_of`): what a native per-role setting can
/// follow. Two rules with the same selector cover the same roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    /// `roles` patterns as written (empty: any role).
    pub(crate) roles: Vec<String>,
    /// `member_of` patterns as written (empty: no membership needed).
    pub(crate) member_of: Vec<String>,
}

impl Selector {
    /// The selector of a rule's scope.
    pub(crate) fn of(scope: &Scope) -> Selector {
        Selector {
            roles: texts(&scope.roles),
            member_of: texts(&scope.member_of),
        }
    }

    /// Whether a role's name alone decides that the selector covers it: `roles` only, no
    /// `member_of`.
    pub(crate) fn by_name_only(&self) -> bool {
        self.member_of.is_empty()
    }

    /// Whether the role named `name` is covered, judging by its name only (memberships are not
    /// known when compiling). Meaningful when [`Selector::by_name_only`] holds.
    pub(crate) fn covers_name(&self, name: &str) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|p| Glob::new(p).matches(name))
    }

    /// The selector in words, for comments.
    pub(crate) fn describe(&self) -> String {
        let roles = (!self.roles.is_empty()).then(|| {
            format!(
                "{} {}",
                if self.roles.len() == 1 && Glob::new(&self.roles[0]).is_literal() {
                    "the role"
                } else {
                    "roles matching"
                },
                or_list(&self.roles)
            )
        });
        let members = (!self.member_of.is_empty()).then(|| {
            format!(
                "members of {} (directly or through other roles, and the role itself)",
                or_list(&self.member_of)
            )
        });
        match (roles, members) {
            (None, None) => "every role".to_owned(),
            (Some(r), None) => r,
            (None, Some(m)) => m,
            (Some(r), Some(m)) => format!("{r} that are {m}"),
        }
    }
}

impl Selector {
    /// The selector in words, for Oracle, where roles are users and memberships are grants.
    pub(crate) fn describe_users(&self) -> String {
        let roles = (!self.roles.is_empty()).then(|| {
            format!(
                "{} {}",
                if self.roles.len() == 1 && Glob::new(&self.roles[0]).is_literal() {
                    "the user"
                } else {
                    "users whose names match"
                },
                or_list(&self.roles)
            )
        });
        let members = (!self.member_of.is_empty()).then(|| {
            format!(
                "granted the role {} (directly or through other roles)",
                or_list(&self.member_of)
            )
        });
        match (roles, members) {
            (None, None) => "every user".to_owned(),
            (Some(r), None) => r,
            (None, Some(m)) => format!("users {m}"),
            (Some(r), Some(m)) => format!("{r} if {m}"),
        }
    }
}

fn texts(globs: &[Glob]) -> Vec<String> {
    globs.iter().map(|g| g.as_str().to_owned()).collect()
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
pub(crate) fn or_list(names: &[String]) -> String {
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => shown(last),
        Some((last, rest)) => format!(
            "{} or {}",
            shown_list(rest.iter().map(String::as_str)),
            shown(last)
        ),
    }
}

/// Why a rule cannot become a native setting in either dialect, for reasons that do not depend
/// on the dialect: it only reports, or its scope depends on something a per-user setting cannot
/// see. `None` when the rule may map (its condition still has to).
pub(crate) fn common_obstacle(rule: &Rule, database_word: &str) -> Option<String> {
    if matches!(rule.condition, curfew_policy::Condition::Violations(_)) {
        return Some(if rule.action == curfew_policy::Action::Report {
            "NOT ENFORCED: a report-only `violations` rule is documentation (the agent cannot see \
             a session's errors, and the curfew gateway counts them only for rules that end \
             sessions), and the database has no setting that counts errors by SQLSTATE; nothing \
             is emitted for it."
                .to_owned()
        } else {
            "the database has no setting that counts errors by SQLSTATE; nothing is emitted for \
             it. Enforced by the curfew gateway, for sessions through it; direct sessions are not \
             watched."
                .to_owned()
        });
    }
    if rule.action == Action::Report {
        return Some(
            "action = \"report\" (staged rollout): the rule ends nothing, and a native setting \
             would end sessions, so nothing is emitted for it."
                .to_owned(),
        );
    }
    let scope = &rule.scope;
    if !scope.applications.is_empty() {
        return Some(format!(
            "it is scoped by application name ({}), which the client chooses when it connects; \
             a per-{database_word} setting cannot depend on it.",
            or_list(&texts(&scope.applications))
        ));
    }
    if !scope.addresses.is_empty() {
        let blocks: Vec<String> = scope.addresses.iter().map(ToString::to_string).collect();
        return Some(format!(
            "it is scoped by client address ({}); a per-{database_word} setting cannot depend on \
             where a session connects from.",
            or_list(&blocks)
        ));
    }
    let names = scope
        .roles
        .iter()
        .chain(&scope.member_of)
        .chain(&scope.databases);
    if names.into_iter().any(|g| g.as_str().contains('\0')) {
        return Some(
            "its scope names a pattern containing a NUL character, which no name can contain."
                .to_owned(),
        );
    }
    None
}

/// The `[exempt]` role patterns that apply-time expansion leaves out, and what cannot be
/// expressed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exempt {
    /// `[exempt] roles` patterns.
    pub(crate) roles: Vec<String>,
    /// `[exempt] member_of` patterns.
    pub(crate) member_of: Vec<String>,
    /// `[exempt] databases` patterns.
    pub(crate) databases: Vec<String>,
    /// `[exempt] applications`, as written.
    pub(crate) applications: Vec<String>,
    /// `[exempt] addresses`, as written.
    pub(crate) addresses: Vec<String>,
    /// `[[exempt]]` entries of several keys, in words: a per-role setting cannot depend on a
    /// session's other keys, so these roles keep the settings.
    pub(crate) combined: Vec<String>,
}

impl Exempt {
    /// The exemptions of a policy. Patterns holding a NUL match no name and are left out.
    pub(crate) fn of(policy: &Policy) -> Exempt {
        let usable = |globs: &[Glob]| -> Vec<String> {
            texts(globs)
                .into_iter()
                .filter(|t| !t.contains('\0'))
                .collect()
        };
        let mut exempt = Exempt::default();
        for entry in &policy.exempt.entries {
            let s = &entry.scope;
            let keys: Vec<&str> = ExemptKeys::of(s).names().collect();
            match keys.as_slice() {
                ["roles"] => exempt.roles.extend(usable(&s.roles)),
                ["member_of"] => exempt.member_of.extend(usable(&s.member_of)),
                ["databases"] => exempt.databases.extend(usable(&s.databases)),
                ["applications"] => exempt.applications.extend(texts(&s.applications)),
                ["addresses"] => exempt
                    .addresses
                    .extend(s.addresses.iter().map(ToString::to_string)),
                _ => exempt.combined.push(combined(entry)),
            }
        }
        exempt
    }

    /// Whether the role named `name` is exempt by its name (memberships are not known).
    pub(crate) fn role_by_name(&self, name: &str) -> bool {
        self.roles
            .iter()
            .chain(&self.member_of)
            .any(|p| Glob::new(p).matches(name))
    }
}

/// An exemption of several keys, in words: `[[exempt]] #2 (roles "backup" and applications
/// "pg_dump")`.
fn combined(entry: &Exemption) -> String {
    let s = &entry.scope;
    let mut parts = Vec::new();
    for (key, values) in [
        ("roles", texts(&s.roles)),
        ("member_of", texts(&s.member_of)),
        ("databases", texts(&s.databases)),
        ("applications", texts(&s.applications)),
        (
            "addresses",
            s.addresses.iter().map(ToString::to_string).collect(),
        ),
    ] {
        if !values.is_empty() {
            parts.push(format!("{key} {}", or_list(&values)));
        }
    }
    let number = match entry.by {
        ExemptBy::Entry { number, .. } => format!(" #{number}"),
        _ => String::new(),
    };
    format!("[[exempt]]{number} ({})", parts.join(" and "))
}

/// The roles curfew's agent connects as (the targets' users): its own sessions are never ended,
/// so native settings leave these roles alone too. Sorted, without duplicates; a URL no
/// validator read (a policy parsed without them) names none.
pub(crate) fn agent_roles(policy: &Policy) -> Vec<String> {
    let mut roles: Vec<String> = policy
        .targets
        .iter()
        .filter_map(|t| t.url.login_role.clone())
        .filter(|u| !u.contains('\0'))
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(text: &str) -> Rule {
        let policy = curfew_policy::parse_policy("t.toml", text, jiff::tz::db())
            .unwrap()
            .policy;
        policy.rules.into_iter().next().unwrap()
    }

    #[test]
    fn selectors_describe_their_roles() {
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\nroles = [\"analyst_*\", \"kim\"]\n");
        let s = Selector::of(&r.scope);
        assert_eq!(s.describe(), "roles matching \"analyst_*\" or \"kim\"");
        assert!(s.covers_name("analyst_lee") && s.covers_name("kim") && !s.covers_name("lee"));
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\nmember_of = [\"humans\"]\n");
        assert_eq!(
            Selector::of(&r.scope).describe(),
            "members of \"humans\" (directly or through other roles, and the role itself)"
        );
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\n");
        assert_eq!(Selector::of(&r.scope).describe(), "every role");
    }

    #[test]
    fn report_rules_and_client_chosen_scopes_do_not_map() {
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\naction = \"report\"\n");
        assert!(common_obstacle(&r, "role").unwrap().contains("report"));
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\napplications = [\"psql\"]\n");
        assert!(
            common_obstacle(&r, "role")
                .unwrap()
                .contains("application name (\"psql\")")
        );
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\naddresses = [\"10.0.0.0/8\"]\n");
        assert!(
            common_obstacle(&r, "role")
                .unwrap()
                .contains("client address (\"10.0.0.0/8\")")
        );
        let r = rule("[[rule]]\nname = \"a\"\nidle = \"1m\"\nroles = [\"kim\"]\n");
        assert_eq!(common_obstacle(&r, "role"), None);
    }
}
