//! A policy as loaded from its file: validated, with the file's name and SHA-256 (which audit
//! records and documents quote, so evidence ties to the exact file). The one place a policy
//! file is read; the rest of this crate does no I/O.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, PolicyErrors, Severity};
use crate::model::{Missing, Policy};
use crate::parse::{parse_policy, parse_policy_with};
use crate::target_url::UrlValidator;

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
    /// [`crate::parse_policy`]); to use it against servers, see [`Self::from_file_with`].
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
            None => parse_policy(name, &text, tzdb),
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

/// What a command needs of a policy beyond parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Rules and targets: everything that enforces, tests or validates (issue 13: a policy with
    /// neither must not switch curfew off on reload).
    Enforceable,
    /// Rules only: `explain` and `compile` describe or translate the conditions and connect to
    /// nothing, so a policy without `[[target]]` is accepted there, with a warning.
    Conditions,
}

/// A parsed policy checked for what `need` requires: a missing part is an error (file:1:1)
/// like any other, or for `Need::Conditions` a missing target is a warning. The one check the
/// agent's SIGHUP reload and every command share.
pub fn require(loaded: LoadedPolicy, need: Need) -> Result<LoadedPolicy, LoadError> {
    let mut loaded = loaded;
    let mut errors = Vec::new();
    for missing in loaded.policy.missing() {
        if need == Need::Conditions && missing == Missing::Target {
            loaded
                .warnings
                .push(missing.diagnostic(&loaded.source, Severity::Warning));
        } else {
            errors.push(missing.diagnostic(&loaded.source, Severity::Error));
        }
    }
    if errors.is_empty() {
        return Ok(loaded);
    }
    let mut diagnostics = errors;
    diagnostics.append(&mut loaded.warnings);
    Err(LoadError::Invalid(PolicyErrors { diagnostics }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES_ONLY: &str = "[[rule]]\nname = \"idle\"\nidle = \"15m\"\n";

    #[test]
    fn the_hash_is_of_the_file_bytes() {
        let loaded = LoadedPolicy::from_bytes("p.toml", RULES_ONLY.as_bytes().to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        let expected: String = Sha256::digest(RULES_ONLY.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(loaded.sha256, expected);
        assert_eq!(loaded.sha256.len(), 64);
    }

    #[test]
    fn bytes_that_are_not_text_say_where() {
        let err = LoadedPolicy::from_bytes("p.toml", vec![b'a', 0xff]).err();
        assert!(
            matches!(err, Some(LoadError::NotText { offset: 1, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_policy_without_targets_enforces_nothing_but_describes_its_conditions() {
        let loaded = LoadedPolicy::from_bytes("p.toml", RULES_ONLY.as_bytes().to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            require(loaded.clone(), Need::Enforceable),
            Err(LoadError::Invalid(_))
        ));
        let described = require(loaded, Need::Conditions).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(described.warnings.len(), 1);
    }
}
