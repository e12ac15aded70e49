//! Which server a target is, and how to reach it: pure data, read from the policy.

use std::path::PathBuf;

use crate::url::{ConnectionUrl, UrlError};

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

/// A policy target whose URL is not a PostgreSQL connection URL (a policy parsed without
/// [`POSTGRES_URLS`](crate::POSTGRES_URLS), or written for another database).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target \"{target}\": `url`: {source}")]
pub struct TargetUrlError {
    /// The target's name in the policy.
    pub target: String,
    /// Why its URL was refused.
    pub source: UrlError,
}

impl TargetSpec {
    /// From a policy `[[target]]`, parsing its URL.
    pub fn from_policy(target: &curfew_policy::Target) -> Result<TargetSpec, TargetUrlError> {
        let url = ConnectionUrl::parse(&target.url.text).map_err(|source| TargetUrlError {
            target: target.name.clone(),
            source,
        })?;
        Ok(TargetSpec {
            name: target.name.clone(),
            url,
            password_file: target.password_file.as_ref().map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn only_target(url: &str) -> curfew_policy::Target {
        let text = format!("[[target]]\nname = \"db\"\nurl = \"{url}\"\n");
        curfew_policy::parse_policy("t.toml", &text, jiff::tz::db())
            .unwrap()
            .policy
            .targets
            .remove(0)
    }

    #[test]
    fn a_spec_reads_the_url_of_the_target() {
        let spec = TargetSpec::from_policy(&only_target(
            "postgresql://curfew_agent@db1:6432/app?sslmode=verify-full",
        ))
        .unwrap();
        assert_eq!(spec.name, "db");
        assert_eq!(spec.url.user, "curfew_agent");
        assert_eq!(spec.url.dbname, "app");
        assert_eq!(spec.password_file, None);
    }

    #[test]
    fn a_url_that_is_not_postgresql_is_a_clear_error() {
        // A policy parsed without PostgreSQL's validator can hold one.
        let err = TargetSpec::from_policy(&only_target("mysql://a@db1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target \"db\": `url`: connection URL must start with postgresql:// (got \"mysql://a@db1\")"
        );
    }
}
