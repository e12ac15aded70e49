//! Exemptions: the sessions no rule ever touches, and which exemption covers a session.

use std::net::IpAddr;

use crate::scope::Scope;
use crate::session::ClientAddr;

/// Sessions no rule ever touches: a list of exemptions, any one of which exempts a session.
///
/// The policy writes them two ways. `[[exempt]]` entries: within one entry every key given must
/// match (values inside a key are ORed), so "role backup running pg_dump" can be said. The older
/// `[exempt]` table: any key matching exempts, which is one exemption per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// The exemptions, in file order (the first that matches is the one reported).
    pub entries: Vec<Exemption>,
}

/// One exemption: a session matching every key of `scope` is exempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// The keys; an absent key does not restrict, and at least one key is given.
    pub scope: Scope,
    /// What is reported when this exemption matches.
    pub by: ExemptBy,
}

/// The keys an exemption is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExemptKeys(u8);

const KEY_NAMES: [&str; 5] = [
    "roles",
    "member_of",
    "databases",
    "applications",
    "addresses",
];

impl ExemptKeys {
    /// The keys `scope` gives.
    pub fn of(scope: &Scope) -> ExemptKeys {
        let given = [
            !scope.roles.is_empty(),
            !scope.member_of.is_empty(),
            !scope.databases.is_empty(),
            !scope.applications.is_empty(),
            !scope.addresses.is_empty(),
        ];
        let mut bits = 0u8;
        for (i, g) in given.into_iter().enumerate() {
            if g {
                bits |= 1 << i;
            }
        }
        ExemptKeys(bits)
    }

    /// The key names, as written in the policy, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        KEY_NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, name)| name)
    }

    /// Whether only the role keys (`roles`, `member_of`) are given.
    pub fn role_only(self) -> bool {
        self.0 != 0 && self.0 & !0b11 == 0
    }
}

impl serde::Serialize for ExemptKeys {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

/// Why a session is exempt: the `[exempt]` key, or the `[[exempt]]` entry, that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemptBy {
    /// `[exempt]` `roles`.
    Role,
    /// `[exempt]` `member_of`.
    Membership,
    /// `[exempt]` `databases`.
    Database,
    /// `[exempt]` `applications`.
    Application,
    /// `[exempt]` `addresses`.
    Address,
    /// An `[[exempt]]` entry, every key of which matched.
    Entry {
        /// The entry's number in the file, from 1.
        number: u32,
        /// Its keys.
        keys: ExemptKeys,
    },
}

impl ExemptBy {
    /// The `[exempt]` key, as written in the policy; `[[exempt]]` for an entry (whose
    /// [`Display`](std::fmt::Display) names it fully).
    pub fn key(self) -> &'static str {
        match self {
            ExemptBy::Role => "roles",
            ExemptBy::Membership => "member_of",
            ExemptBy::Database => "databases",
            ExemptBy::Application => "applications",
            ExemptBy::Address => "addresses",
            ExemptBy::Entry { .. } => "[[exempt]]",
        }
    }
}

impl std::fmt::Display for ExemptBy {
    /// `[exempt] roles`, or `[[exempt]] #2 (roles + applications)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExemptBy::Entry { number, keys } => {
                let keys: Vec<&str> = keys.names().collect();
                write!(f, "[[exempt]] #{number} ({})", keys.join(" + "))
            }
            other => write!(f, "[exempt] {}", other.key()),
        }
    }
}

impl Exemptions {
    /// The `[exempt]` table: any key matching exempts, so one exemption per key given, in the
    /// order the keys were always checked (roles, member_of, databases, applications,
    /// addresses).
    pub fn any_key(scope: Scope) -> Exemptions {
        let Scope {
            roles,
            member_of,
            databases,
            applications,
            addresses,
        } = scope;
        let one = |scope: Scope, by: ExemptBy| Exemption { scope, by };
        let mut entries = Vec::new();
        if !roles.is_empty() {
            entries.push(one(
                Scope {
                    roles,
                    ..Scope::default()
                },
                ExemptBy::Role,
            ));
        }
        if !member_of.is_empty() {
            entries.push(one(
                Scope {
                    member_of,
                    ..Scope::default()
                },
                ExemptBy::Membership,
            ));
        }
        if !databases.is_empty() {
            entries.push(one(
                Scope {
                    databases,
                    ..Scope::default()
                },
                ExemptBy::Database,
            ));
        }
        if !applications.is_empty() {
            entries.push(one(
                Scope {
                    applications,
                    ..Scope::default()
                },
                ExemptBy::Application,
            ));
        }
        if !addresses.is_empty() {
            entries.push(one(
                Scope {
                    addresses,
                    ..Scope::default()
                },
                ExemptBy::Address,
            ));
        }
        Exemptions { entries }
    }

    /// `[[exempt]]` entries, in file order; each scope gives at least one key.
    pub fn all_keys(scopes: Vec<Scope>) -> Exemptions {
        let entries = scopes
            .into_iter()
            .enumerate()
            .map(|(i, scope)| Exemption {
                by: ExemptBy::Entry {
                    number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    keys: ExemptKeys::of(&scope),
                },
                scope,
            })
            .collect();
        Exemptions { entries }
    }

    /// Whether any exemption is defined.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether this concrete session is exempt, and by which exemption (the first in file
    /// order that matches every one of its keys). The engine decides the same, faster.
    pub fn session(&self, s: &crate::session::Session) -> Option<ExemptBy> {
        self.entries
            .iter()
            .find(|e| {
                e.scope.admits_role(&s.role, &s.member_of)
                    && e.scope.admits_database(&s.database)
                    && e.scope.admits_application(&s.application)
                    && e.scope.exemption_admits_address(&s.client_addr)
            })
            .map(|e| e.by)
    }

    /// Whether any exemption uses `member_of` (so role memberships must be read).
    pub fn uses_membership(&self) -> bool {
        self.entries.iter().any(|e| !e.scope.member_of.is_empty())
    }

    /// The exemption that covers *every* session of the role, whatever its database,
    /// application or address: one given only by `roles` and/or `member_of`, all of which
    /// match. (An entry that also names an application exempts only some of the role's
    /// sessions, so login locks and the like still apply to the role.)
    pub fn by_role(&self, role: &str, member_of: &[String]) -> Option<ExemptBy> {
        self.entries
            .iter()
            .find(|e| ExemptKeys::of(&e.scope).role_only() && e.scope.admits_role(role, member_of))
            .map(|e| e.by)
    }

    /// The exemption that covers every session in the database (one given only by
    /// `databases`).
    pub fn by_database(&self, database: &str) -> Option<ExemptBy> {
        self.only(|s| !s.databases.is_empty(), |s| s.admits_database(database))
    }

    /// The exemption that covers every session with this application name (one given only by
    /// `applications`).
    pub fn by_application(&self, application: &str) -> Option<ExemptBy> {
        self.only(
            |s| !s.applications.is_empty(),
            |s| s.admits_application(application),
        )
    }

    /// The exemption that covers every session from this client address (one given only by
    /// `addresses`); `address` is None for a socket.
    pub fn by_address(&self, address: Option<IpAddr>) -> Option<ExemptBy> {
        let address = ClientAddr::from(address);
        self.only(
            |s| !s.addresses.is_empty(),
            |s| s.exemption_admits_address(&address),
        )
    }

    /// The first exemption whose only key is the one `has` tests, and which `admits`.
    fn only(
        &self,
        has: impl Fn(&Scope) -> bool,
        admits: impl Fn(&Scope) -> bool,
    ) -> Option<ExemptBy> {
        self.entries
            .iter()
            .find(|e| {
                has(&e.scope) && ExemptKeys::of(&e.scope).names().count() == 1 && admits(&e.scope)
            })
            .map(|e| e.by)
    }

    /// The exemptions a session can meet by its application name alone (an `[exempt]`
    /// `applications` key, or an `[[exempt]]` entry whose only key is `applications`). The
    /// client chooses that name, so anyone can claim such an exemption.
    pub fn by_application_alone(&self) -> impl Iterator<Item = &Exemption> {
        self.entries.iter().filter(|e| {
            let keys = ExemptKeys::of(&e.scope);
            keys.names().eq(["applications"])
        })
    }
}

#[cfg(test)]
#[path = "exempt_tests.rs"]
mod tests;
