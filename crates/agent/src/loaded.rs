//! A policy as loaded from its file: validated, with the file's name and SHA-256 (which audit
//! records and documents quote, so evidence ties to the exact file).

use std::path::Path;

use curfew_policy::{Diagnostic, Policy, PolicyErrors, UrlValidator, parse_policy_with};
use sha2::{Digest, Sha256};

/// A validated policy and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy.
    pub policy: Policy,
    /// The file name, as shown in messages.
    pub source: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Warnings found while validating.
    pub warnings: Vec<Diagnostic>,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not text.
    #[error("policy file {path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotText {
        /// The file.
        path: String,
        /// Where.
        offset: usize,
    },
    /// The policy is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(PolicyErrors),
}

impl LoadedPolicy {
    /// Read and validate a policy file, keeping target URLs unchecked (see
    /// [`curfew_policy::parse_policy`]); to use it against servers, see [`Self::from_file_with`].
    pub fn from_file(path: &Path) -> Result<LoadedPolicy, LoadError> {
        Self::from_file_with(path, None)
    }

    /// Read and validate a policy file, target URLs with `validators` (the database adapters'),
    /// or unchecked when `None`.
    pub fn from_file_with(
        path: &Path,
        validators: Option<&[&dyn UrlValidator]>,
    ) -> Result<LoadedPolicy, LoadError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_bytes_with(&name, bytes, validators)
    }

    /// Validate a policy held in memory, keeping target URLs unchecked; `name` is used in
    /// messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<LoadedPolicy, LoadError> {
        Self::from_bytes_with(name, bytes, None)
    }

    /// Validate a policy held in memory, target URLs with `validators` (the database
    /// adapters'), or unchecked when `None`; `name` is used in messages.
    pub fn from_bytes_with(
        name: &str,
        bytes: Vec<u8>,
        validators: Option<&[&dyn UrlValidator]>,
    ) -> Result<LoadedPolicy, LoadError> {
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = String::from_utf8(bytes).map_err(|e| LoadError::NotText {
            path: name.to_owned(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let tzdb = jiff::tz::db();
        let parsed = match validators {
            Some(validators) => parse_policy_with(name, &text, tzdb, validators),
            None => curfew_policy::parse_policy(name, &text, tzdb),
        }
        .map_err(LoadError::Invalid)?;
        Ok(LoadedPolicy {
            policy: parsed.policy,
            source: name.to_owned(),
            sha256,
            warnings: parsed.warnings,
        })
    }

    /// Whether any rule or exemption needs role memberships (so snapshots read them).
    pub fn needs_memberships(&self) -> bool {
        self.policy.exempt.uses_membership()
            || self
                .policy
                .rules
                .iter()
                .any(|r| !r.scope.member_of.is_empty())
    }
}
