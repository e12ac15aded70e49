//! Which server a target is, and how to reach it: pure data, read from the policy.

use std::path::PathBuf;

use curfew_policy::ConnectionUrl;

/// Everything needed to connect to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// The target's name in the policy.
    pub name: String,
    /// Where and how to connect.
    pub url: ConnectionUrl,
    /// The file the password is read from (at each connection, so a rotated secret is picked up).
    pub password_file: Option<PathBuf>,
}

impl TargetSpec {
    /// From a policy `[[target]]`.
    pub fn from_policy(target: &curfew_policy::Target) -> TargetSpec {
        TargetSpec {
            name: target.name.clone(),
            url: target.url.clone(),
            password_file: target.password_file.as_ref().map(PathBuf::from),
        }
    }
}
