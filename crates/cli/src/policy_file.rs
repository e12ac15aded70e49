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
    match LoadedPolicy::from_bytes_with(&name, bytes, Some(URL_VALIDATORS))
        .and_then(|loaded| require(loaded, need))
    {
        Ok(loaded) => {
            print_all(&loaded.warnings);
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
