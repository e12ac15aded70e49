//! `curfew explain`: the policy as a document for the system security plan.

use std::path::Path;

use curfew_policy::explain::{Explanation, explain};

use crate::exit::{Failure, out, out_text};
use crate::policy_file;

/// Output formats of `curfew explain`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// Markdown, for the security plan.
    Md,
    /// JSON, for tools.
    Json,
}

/// Options of `curfew explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

/// Print the explanation of the policy.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let file = policy_file::load_conditions(config)?;
    let explanation = explain(&file.policy);
    match args.format {
        Format::Md => out_text(&explanation.to_markdown(&file.source, Some(&file.sha256))),
        Format::Json => {
            #[derive(serde::Serialize)]
            struct Document<'a> {
                source: &'a str,
                sha256: &'a str,
                #[serde(flatten)]
                explanation: &'a Explanation,
            }
            let document = Document {
                source: &file.source,
                sha256: &file.sha256,
                explanation: &explanation,
            };
            let text =
                serde_json::to_string_pretty(&document).map_err(|e| Failure::Runtime(e.into()))?;
            out(&format!("{text}\n"))
        }
    }
}
