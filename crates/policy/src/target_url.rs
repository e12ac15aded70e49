//! A target's connection URL as the policy knows it: database-neutral text with its place in
//! the file. Which URLs are valid is the database adapter's knowledge (PostgreSQL's
//! `postgresql://`, later MariaDB's `mysql://`), so the parser asks a [`UrlValidator`] and
//! reports its refusals and warnings at the URL's `file:line:col`.

use std::ops::Range;

use crate::diagnostic::Collector;

/// A `[[target]]`'s `url`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// The URL text, as written in the policy (it never holds a password: a validator refuses
    /// one).
    pub text: String,
    /// Byte range of the value in the policy file, for messages about it.
    pub span: Range<usize>,
    /// The role the agent logs in as, when a validator read the URL (`None` when the policy was
    /// parsed without validators, by a tool that connects to no server).
    pub login_role: Option<String>,
    /// What the database adapter that reads this URL cannot do yet (nothing known when the
    /// policy was parsed without validators).
    pub limits: AdapterLimits,
}

/// What a database adapter cannot do (yet) for its targets: a policy that needs it is refused,
/// or warned about, at the target's URL, at start and on every reload alike. Each is the
/// reason, completing "target \"NAME\" ..." (e.g. "is MariaDB/MySQL, where login locks are not
/// supported yet").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdapterLimits {
    /// It cannot lock logins: a `lock_logins` rule that ends sessions is refused.
    pub no_login_locks: Option<&'static str>,
    /// It reads no role memberships: a rule's `member_of` matches nothing there (a warning).
    pub no_role_memberships: Option<&'static str>,
}

/// What a validator learned from a URL it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidUrl {
    /// The role the URL logs in as.
    pub login_role: String,
    /// Things allowed but worth a look, each completing "target \"NAME\" ..." (e.g. "uses
    /// sslmode=require: ...").
    pub warnings: Vec<String>,
    /// What its adapter cannot do yet.
    pub limits: AdapterLimits,
}

/// A database adapter's knowledge of its connection URLs.
pub trait UrlValidator: Sync {
    /// The URL schemes it reads, without `://` (e.g. `postgresql`).
    fn schemes(&self) -> &[&str];

    /// Validate a URL. The error is the whole message, which must show no password.
    fn validate(&self, text: &str) -> Result<ValidUrl, String>;
}

/// Validate `text` with the validator that reads its scheme. When none does, the only
/// validator's own refusal is given (it knows the forms people mistake for its URLs); with
/// several, a refusal naming every scheme accepted.
fn validate(validators: &[&dyn UrlValidator], text: &str) -> Result<ValidUrl, String> {
    let scheme = text
        .trim()
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    let claimed = validators
        .iter()
        .find(|v| scheme.as_deref().is_some_and(|s| v.schemes().contains(&s)));
    match (claimed, validators) {
        (Some(validator), _) => validator.validate(text),
        (None, []) => Err("no database adapter is registered to read connection URLs".to_owned()),
        (None, [only]) => only.validate(text),
        (None, several) => {
            let schemes: Vec<String> = several
                .iter()
                .flat_map(|v| v.schemes().iter().map(|s| format!("{s}://")))
                .collect();
            Err(format!(
                "connection URL must start with one of {}",
                schemes.join(", ")
            ))
        }
    }
}

/// A target's URL (`key` is its key, `context` names the target in messages), checked by the validators if there
/// are any: refusals and warnings are reported at the URL's position, and a refused URL gives
/// no target.
pub(crate) fn check(
    c: &mut Collector<'_>,
    key: &str,
    context: &str,
    text: &str,
    span: Range<usize>,
    validators: Option<&[&dyn UrlValidator]>,
) -> Option<TargetUrl> {
    let mut login_role = None;
    let mut limits = AdapterLimits::default();
    if let Some(validators) = validators {
        match validate(validators, text) {
            Ok(valid) => {
                for warning in valid.warnings {
                    c.warning(span.clone(), format!("{context} {warning}"));
                }
                login_role = Some(valid.login_role);
                limits = valid.limits;
            }
            Err(e) => {
                c.error(span, format!("`{key}` in {context}: {e}"));
                return None;
            }
        }
    }
    Some(TargetUrl {
        text: text.to_owned(),
        span,
        login_role,
        limits,
    })
}
