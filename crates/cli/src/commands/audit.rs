//! `curfew audit verify|show`: check the hash chain of an audit log, or read it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use curfew_audit::{Entry, verify};
use jiff::Timestamp;

use crate::exit::{Failure, out, out_text};
use crate::when::parse_past;

/// `curfew audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Check the hash chain, the sequence and that every intent has an outcome; exit 3 on any
    /// problem, naming its line.
    #[command(after_help = "Examples:\n  curfew audit verify /var/lib/curfew/audit.jsonl")]
    Verify {
        /// The audit log.
        file: PathBuf,
    },
    /// Print the records as a table, optionally filtered.
    #[command(
        after_help = "TIME is 2026-11-23T19:00:00Z, \"2026-11-23 19:00\" (this host's zone) \
                            or -2h (before now).\n\nExamples:\n  \
                            curfew audit show audit.jsonl --rule inactivity --since -24h\n  \
                            curfew audit show audit.jsonl --role analyst_kim --format json"
    )]
    Show(ShowArgs),
}

/// Filters and format of `curfew audit show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The audit log.
    file: PathBuf,
    /// Only records of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only records about sessions of this role.
    #[arg(long)]
    role: Option<String>,
    /// Only records of this target.
    #[arg(long)]
    target: Option<String>,
    /// Only records of this event (e.g. session_terminated).
    #[arg(long)]
    event: Option<String>,
    /// Only records at or after this time: a duration back from now (30d, -30m) or an instant
    /// (2026-11-01, "2026-11-01 00:00 Europe/Berlin"), as for `curfew report --since`.
    #[arg(long, value_name = "DURATION|TIME", allow_hyphen_values = true)]
    since: Option<String>,
    /// Only records before this time (the same forms as --since).
    #[arg(long, value_name = "DURATION|TIME", allow_hyphen_values = true)]
    until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Output formats of `curfew audit show`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns.
    Table,
    /// The matching records as JSON Lines.
    Json,
}

/// Run an audit subcommand.
pub(crate) fn run(command: &Command) -> Result<(), Failure> {
    match command {
        Command::Verify { file } => run_verify(file),
        Command::Show(args) => run_show(args),
    }
}

fn run_verify(file: &Path) -> Result<(), Failure> {
    let verification = verify(file).with_context(|| format!("reading {}", file.display()))?;
    let continued =
        curfew_audit::continuation(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display();
    if verification.is_intact() {
        let last = verification
            .last_hash
            .as_deref()
            .map(|h| format!("; last hash {h}"))
            .unwrap_or_default();
        let continues = continued
            .map(|c| {
                format!(
                    "; continues a previous file whose last record is seq {} (hash {}): check that file on its own, or both together in order",
                    c.seq, c.hash
                )
            })
            .unwrap_or_default();
        return out(&format!(
            "{name}: intact: {} records, chain and sequence unbroken, every intent has an outcome{continues}{last}\n",
            verification.records
        ));
    }
    let mut text = String::new();
    for problem in &verification.problems {
        let _ = writeln!(text, "{name}:{}: {}", problem.line, problem.message);
    }
    out_text(&text)?;
    Err(Failure::Check(format!(
        "audit log {name} is NOT intact: {} problem{} in {} records",
        verification.problems.len(),
        if verification.problems.len() == 1 {
            ""
        } else {
            "s"
        },
        verification.records
    )))
}

fn run_show(args: &ShowArgs) -> Result<(), Failure> {
    let now = Timestamp::now();
    let bound = |t: &Option<String>| -> Result<Option<Timestamp>, Failure> {
        t.as_deref()
            .map(|t| parse_past(t, now).map_err(Failure::Usage))
            .transpose()
    };
    let (since, until) = (bound(&args.since)?, bound(&args.until)?);
    if let Some(event) = &args.event
        && curfew_audit::Event::from_name(event).is_none()
    {
        let known: Vec<&str> = curfew_audit::Event::ALL
            .iter()
            .map(|e| e.as_str())
            .collect();
        return Err(Failure::Usage(format!(
            "unknown event \"{event}\"; expected one of: {}",
            known.join(", ")
        )));
    }
    let entries = curfew_audit::read(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let mut damaged = 0;
    let selected: Vec<Entry> = entries
        .into_iter()
        .filter_map(|e| e.inspect_err(|_| damaged += 1).ok())
        .filter(|e| {
            args.rule
                .as_ref()
                .is_none_or(|r| e.rule.as_ref() == Some(r))
                && args
                    .role
                    .as_ref()
                    .is_none_or(|r| e.session.as_ref().is_some_and(|s| &s.role == r))
                && args
                    .target
                    .as_ref()
                    .is_none_or(|t| e.target.as_ref() == Some(t))
                && args.event.as_ref().is_none_or(|ev| &e.event == ev)
                && since.is_none_or(|s| e.ts >= s)
                && until.is_none_or(|u| e.ts < u)
        })
        .collect();
    if damaged > 0 {
        eprintln!(
            "curfew: {damaged} line{} could not be read; run `curfew audit verify {}`",
            if damaged == 1 { "" } else { "s" },
            args.file.display()
        );
    }
    let text = match args.format {
        Format::Json => {
            let mut text = String::new();
            for e in &selected {
                let line = serde_json::to_string(e).map_err(|e| Failure::Runtime(e.into()))?;
                text.push_str(&line);
                text.push('\n');
            }
            text
        }
        Format::Table => return out_text(&table(&selected)),
    };
    out(&text)
}

fn table(entries: &[Entry]) -> String {
    let headers = [
        "SEQ",
        "TIME (UTC)",
        "EVENT",
        "TARGET",
        "RULE",
        "ROLE",
        "PID",
        "RESULT",
        "REASON",
    ];
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let time = e.ts.round(jiff::Unit::Millisecond).unwrap_or(e.ts);
            vec![
                e.seq.to_string(),
                time.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                e.event.clone(),
                e.target.clone().unwrap_or_default(),
                e.rule.clone().unwrap_or_default(),
                e.session
                    .as_ref()
                    .map(|s| s.role.clone())
                    .unwrap_or_default(),
                e.session
                    .as_ref()
                    .map(|s| s.pid.to_string())
                    .unwrap_or_default(),
                e.result.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::table::render("", &headers, &rows, &[])
}
