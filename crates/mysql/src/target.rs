//! Which server a target is, and how to reach it: pure data, read from the policy.

use std::path::PathBuf;

use crate::url::{MysqlUrl, UrlError};

/// Everything needed to connect to one MariaDB/MySQL target.
#[derive(Debug, Clone, PartialEq)]
pub struct MysqlTarget {
    /// The target's name in the policy.
    pub name: String,
    /// Where and how to connect.
    pub url: MysqlUrl,
    /// The file the password is read from (at each connection, so a rotated secret is picked up).
    pub password_file: Option<PathBuf>,
}

/// A policy target whose URL is not a MariaDB/MySQL URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target \"{target}\": `url`: {source}")]
pub struct TargetUrlError {
    /// The target's name in the policy.
    pub target: String,
    /// Why its URL was refused.
    pub source: UrlError,
}

impl MysqlTarget {
    /// From a policy `[[target]]`, parsing its URL.
    pub fn from_policy(target: &curfew_policy::Target) -> Result<MysqlTarget, TargetUrlError> {
        let url = MysqlUrl::parse(&target.url.text).map_err(|source| TargetUrlError {
            target: target.name.clone(),
            source,
        })?;
        Ok(MysqlTarget {
            name: target.name.clone(),
            url,
            password_file: target.password_file.as_ref().map(PathBuf::from),
        })
    }
}
