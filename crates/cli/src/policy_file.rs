//! Reading the policy file: the one place the CLI turns a path into a validated policy.

use std::io::Read;
use std::path::Path;

use curfew_policy::{Diagnostic, LoadError, LoadedPolicy, Need, require};

use crate::exit::Failure;

/// The URL validators of the databases this binary drives: every policy the CLI loads has its
/// target URLs checked by them, so a bad URL is reported at its `file:line:col`.
pub(crate) const URL_VALIDATORS: &[&dyn curfew_policy::UrlValidator] =
    &[&curfew_postgres::POSTGRES_URLS, &curfew_mysql::MYSQL_URLS];

/// Read and validate the policy at `path` (`-` is standard input): it must have rules and
/// targets. Warnings are printed to standard error; errors are printed there too, and the
/// result is a usage failure (exit 2).
pub(crate) fn load(path: &Path) -> Result<LoadedPolicy, Failure> {
    load_for(path, Need::Enforceable)
}

/// As [`load`], for commands that only read the conditions (see [`Need::Conditions`]).
pub(crate) fn load_conditions(path: &Path) -> Result<LoadedPolicy, Failure> {
    load_for(path, Need::Conditions)
}

fn load_for(path: &Path, need: Need) -> Result<LoadedPolicy, Failure> {
    let stdin = path == Path::new("-");
    let name = if stdin {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let bytes = read(path, stdin).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; pass the policy with -c FILE (examples/curfew.toml is a starting point)"
        } else {
            ""
        };
        Failure::Usage(format!("cannot read policy file {name}: {e}{hint}"))
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let enforcing = matches!(need, Need::Enforceable);
    match LoadedPolicy::from_bytes_with(&name, bytes, Some(URL_VALIDATORS))
        .and_then(|loaded| require(loaded, need))
    {
        Ok(loaded) => {
            print_all(&loaded.warnings);
            let refused = match enforcing {
                true => not_supported_yet(&loaded, &text),
                false => Vec::new(),
            };
            if !refused.is_empty() {
                print_all(&refused);
                let count = refused.len();
                return Err(Failure::Usage(format!(
                    "{count} error{} in {name}; the policy was not accepted",
                    if count == 1 { "" } else { "s" }
                )));
            }
            Ok(loaded)
        }
        Err(LoadError::Invalid(errors)) => {
            print_all(&errors.diagnostics);
            let count = errors.errors().count();
            Err(Failure::Usage(format!(
                "{count} error{} in {name}; the policy was not accepted",
                if count == 1 { "" } else { "s" }
            )))
        }
        Err(other) => Err(Failure::Usage(other.to_string())),
    }
}

/// What the policy asks of a MariaDB/MySQL target that its adapter cannot do yet: login locks
/// (a `lock_logins` rule that ends sessions applies to every target). One error at each such
/// target's URL, so the refusal names the place as any other policy error does.
fn not_supported_yet(loaded: &LoadedPolicy, text: &str) -> Vec<Diagnostic> {
    let Some(rule) = loaded
        .policy
        .rules
        .iter()
        .find(|r| r.lock_logins && r.action == curfew_policy::Action::Terminate)
    else {
        return Vec::new();
    };
    loaded
        .policy
        .targets
        .iter()
        .filter(|t| crate::databases::is_mysql(t))
        .map(|t| {
            let (line, column) = line_col(text, t.url.span.start);
            Diagnostic {
                severity: curfew_policy::Severity::Error,
                source: loaded.source.clone(),
                line,
                column,
                message: format!(
                    "target \"{}\" is MariaDB/MySQL, where {} (rule \"{}\" has lock_logins = true); use lock rules with PostgreSQL targets only for now",
                    curfew_policy::visible(&t.name),
                    curfew_mysql::NO_LOGIN_LOCKS.replace(" on MariaDB/MySQL targets", ""),
                    curfew_policy::visible(&rule.name)
                ),
            }
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The policy's targets, or only the one `--target` names; a usage error when that leaves none.
pub(crate) fn targets<'p>(
    loaded: &'p LoadedPolicy,
    only: Option<&str>,
) -> Result<Vec<&'p curfew_policy::Target>, Failure> {
    let targets: Vec<&curfew_policy::Target> = loaded
        .policy
        .targets
        .iter()
        .filter(|t| only.is_none_or(|n| t.name == n))
        .collect();
    if targets.is_empty() {
        return Err(Failure::Usage(match only {
            Some(name) => format!("{} has no target named \"{name}\"", loaded.source),
            None => format!("{} names no [[target]]", loaded.source),
        }));
    }
    Ok(targets)
}

fn read(path: &Path, stdin: bool) -> std::io::Result<Vec<u8>> {
    if stdin {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path)
    }
}

/// Diagnostics on standard error: plain lines, or log records when the log is JSON (so that a
/// JSON log stays JSON).
fn print_all(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        let level = match d.severity {
            curfew_policy::Severity::Error => "ERROR",
            curfew_policy::Severity::Warning => "WARN",
        };
        let text = d.to_string();
        crate::logging::stderr_line(level, &text, &text);
    }
}
