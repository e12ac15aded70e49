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
