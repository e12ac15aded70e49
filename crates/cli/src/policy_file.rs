//! Reading the policy file: the one place the CLI turns a path into a validated policy.

use std::io::Read;
use std::path::Path;

use curfew_policy::{Diagnostic, Parsed, parse_policy};
use sha2::{Digest, Sha256};

use crate::exit::Failure;

/// A policy read from disk (or standard input) and validated.
pub(crate) struct PolicyFile {
    /// The name shown in messages and documents.
    pub(crate) name: String,
    /// SHA-256 of the file's bytes, hex: ties documents and audit records to the exact file.
    pub(crate) sha256: String,
    /// The validated policy and its warnings.
    pub(crate) parsed: Parsed,
}

/// Read and validate the policy at `path` (`-` is standard input). Warnings are printed to
/// standard error; errors are printed there too, and the result is a usage failure (exit 2).
pub(crate) fn load(path: &Path) -> Result<PolicyFile, Failure> {
    let name = if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let bytes = read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; pass the policy with -c FILE (examples/curfew.toml is a starting point)"
        } else {
            ""
        };
        Failure::Usage(format!("cannot read policy file {name}: {e}{hint}"))
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::Usage(format!(
            "policy file {name} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    match parse_policy(&name, &text, jiff::tz::db()) {
        Ok(parsed) => {
            print_all(&parsed.warnings);
            Ok(PolicyFile {
                name,
                sha256,
                parsed,
            })
        }
        Err(errors) => {
            print_all(&errors.diagnostics);
            let count = errors.errors().count();
            Err(Failure::Usage(format!(
                "{count} error{} in {name}; the policy was not accepted",
                if count == 1 { "" } else { "s" }
            )))
        }
    }
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path)
    }
}

fn print_all(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
