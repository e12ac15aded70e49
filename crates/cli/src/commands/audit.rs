//! `curfew audit verify|show|keygen`: check an audit log (its chain, the anchors the targets
//! keep of it, its signed checkpoints), read it, or make a checkpoint signing key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use curfew_audit::Entry;
use jiff::Timestamp;

use crate::exit::{Failure, out, out_text};
use crate::when::parse_past;

/// `curfew audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Check the hash chain of a log and its rotated files as one chain, the sequence and that
    /// every intent has an outcome; then the anchors each [[target]] of the policy keeps of
    /// the chain (truncation, recomputed chains), and signed checkpoints with --public-key.
    /// Exit 3 on any problem, naming the first missing or differing seq, and when the policy
    /// names targets but none of their anchors could be compared (NOT CONFIRMED).
    #[command(
        after_help = "Examples:\n  curfew audit verify -c /etc/curfew/curfew.toml\n  \
                            curfew audit verify /var/lib/curfew/ --from-seq 5001\n  \
                            curfew audit verify audit.jsonl --other-chain CHAIN_ID  (another agent's chain on this host)\n  \
                            curfew audit verify /var/lib/curfew/ --public-key /etc/curfew/checkpoint.key.pub\n  \
                            curfew audit verify audit.jsonl.1 audit.jsonl --offline"
    )]
    Verify {
        /// Log files and directories (a directory: its files with .jsonl in their name),
        /// checked as one chain. Default: `audit_log` in `[agent]` of the policy.
        paths: Vec<PathBuf>,
        #[command(flatten)]
        check: super::integrity::CheckArgs,
    },
    /// Make an Ed25519 key for signed checkpoints (`[audit] signing_key`): FILE (mode 0600, one
    /// line of 64 hex digits, the private seed) and FILE.pub (the public key, for
    /// `audit verify --public-key`). Never overwrites a file, nor writes through a symlink.
    #[command(after_help = "Examples:\n  curfew audit keygen --out /etc/curfew/checkpoint.key")]
    Keygen {
        /// The private key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
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
pub(crate) fn run(config: &Path, command: &Command) -> Result<(), Failure> {
    match command {
        Command::Verify { paths, check } => run_verify(config, paths, check),
        Command::Show(args) => run_show(args),
        Command::Keygen { out } => keygen(out),
    }
}

fn keygen(out: &Path) -> Result<(), Failure> {
    let key = curfew_audit::CheckpointKey::generate().map_err(|e| Failure::Runtime(e.into()))?;
    let public = key.write(out).map_err(|e| Failure::Usage(e.to_string()))?;
    crate::exit::out(&format!(
        "private key written to {} (mode 0600; set [audit] signing_key to it); public key {} written to {} (for curfew audit verify --public-key)\n",
        out.display(),
        key.public_hex(),
        public.display()
    ))
}

fn run_verify(
    config: &Path,
    paths: &[PathBuf],
    args: &super::integrity::CheckArgs,
) -> Result<(), Failure> {
    let policy = super::integrity::policy_for_anchors(config)?;
    let paths = if paths.is_empty() {
        let loaded = policy
            .as_ref()
            .map_err(|why| Failure::Usage(format!("{why}; or name the log")))?;
        let log = loaded.policy.agent.audit_log.as_ref().ok_or_else(|| {
            Failure::Usage(format!(
                "{} sets no audit_log in [agent]; name the log",
                loaded.source
            ))
        })?;
        curfew_audit::log_set(Path::new(log))
    } else {
        paths.to_vec()
    };
    let checked = super::integrity::check(
        &paths,
        policy.as_ref().map(|l| &l.policy).map_err(Clone::clone),
        args,
        |_| {},
    )?;
    let mut text = String::new();
    for line in checked.lines() {
        let _ = writeln!(text, "{line}");
    }
    let problems = checked.problems();
    for problem in &problems {
        let at = if problem.line > 0 && checked.chain.files.len() == 1 {
            format!(
                "{}:{}: ",
                checked.chain.files[0].path.display(),
                problem.line
            )
        } else {
            String::new()
        };
        let _ = writeln!(text, "{at}{}", problem.message);
    }
    out_text(&text)?;
    if problems.is_empty() {
        // The check could not be done: exit 3 as for a problem, since a forger can make
        // every target unreachable.
        return match checked.unconfirmed() {
            Some(_) => Err(Failure::Check(format!(
                "the audit log is NOT CONFIRMED: {} records consistent with themselves, but no target's anchors could be compared",
                checked.chain.verification.records
            ))),
            None => Ok(()),
        };
    }
    let first = checked
        .first_seq()
        .map(|seq| format!("; first missing or differing seq {seq}"))
        .unwrap_or_default();
    Err(Failure::Check(format!(
        "the audit log is NOT intact: {} problem{} in {} records{first}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        checked.chain.verification.records
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
