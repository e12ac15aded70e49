//! Which sessions a rule (or an exemption) applies to: the scope keys and how each admits a
//! session's attribute.

use crate::pattern::{AddressBlock, Glob};
use crate::session::ClientAddr;

/// Which sessions a rule applies to. Keys are ANDed; the values inside one key are ORed; an absent
/// key does not restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Session role (`usename`) patterns.
    pub roles: Vec<Glob>,
    /// Patterns for roles the session role is a member of (directly, indirectly, or itself).
    pub member_of: Vec<Glob>,
    /// Database name patterns.
    pub databases: Vec<Glob>,
    /// `application_name` patterns (set by the client, so not a security boundary by itself).
    pub applications: Vec<Glob>,
    /// Client address blocks (`local` for Unix sockets).
    pub addresses: Vec<AddressBlock>,
}

impl Scope {
    /// Whether no key restricts the scope (the rule applies to every non-exempt session).
    pub fn is_everything(&self) -> bool {
        self.roles.is_empty()
            && self.member_of.is_empty()
            && self.databases.is_empty()
            && self.applications.is_empty()
            && self.addresses.is_empty()
    }

    /// Whether the role part of the scope (`roles` and `member_of`) admits this role.
    pub fn admits_role(&self, role: &str, member_of: &[String]) -> bool {
        (self.roles.is_empty() || self.roles.iter().any(|g| g.matches(role)))
            && (self.member_of.is_empty()
                || self
                    .member_of
                    .iter()
                    .any(|g| g.matches(role) || member_of.iter().any(|m| g.matches(m))))
    }

    /// Whether the database part of the scope admits this database.
    pub fn admits_database(&self, database: &str) -> bool {
        self.databases.is_empty() || self.databases.iter().any(|g| g.matches(database))
    }

    /// Whether the application part of the scope admits this application name.
    pub fn admits_application(&self, application: &str) -> bool {
        self.applications.is_empty() || self.applications.iter().any(|g| g.matches(application))
    }

    /// Whether the address part of a *rule's* scope admits this client address. Enforcement is
    /// conservative: an unresolved client (TCP, address not shown) may be in any block, so a
    /// rule scoped by `addresses` applies to it.
    pub fn rule_admits_address(&self, address: &ClientAddr) -> bool {
        self.addresses.is_empty()
            || matches!(address, ClientAddr::Unresolved(_))
            || self.addresses.iter().any(|b| b.contains(address))
    }

    /// Whether the address part of an *exemption's* scope admits this client address. An
    /// exemption needs proof: an unresolved client (TCP, address not shown) is in no block,
    /// `local` included, so an exemption by `addresses` never applies to it. (Two methods, not
    /// one: a caller must say which reading it wants.)
    pub fn exemption_admits_address(&self, address: &ClientAddr) -> bool {
        self.addresses.is_empty() || self.addresses.iter().any(|b| b.contains(address))
    }
}
