//! `curfew verify`: the control test the Oracle STIG describes, run live. A canary role (on
//! MariaDB/MySQL, an account) opens a session in a rule's scope, switches off the database's
//! own timeouts for itself, and waits for the agent: out an idle-type rule's limit, to a
//! window edge a few seconds ahead, or one session beyond a cap; a canary role is also locked and unlocked through the ledger. A test
//! passes live when the agent ended what it should (and nothing else), using the session fails,
//! and the audit log holds the agent's record. What is not tested live is EVALUATED (not a
//! proof) or NOT TESTED, with why. The result is recorded as `control_verified`, with the
//! policy's hash.

mod output;

use std::path::{Path, PathBuf};

use anyhow::Context;
use curfew_policy::Limit;
use curfew_verify::Status;
use curfew_verify::live::{Notice, verify_target};
use jiff::Timestamp;

use super::Document as Format;
use crate::exit::{Failure, out, out_text};
use crate::policy_file;

/// Options of `curfew verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Idle-type rules with a longer limit (as waited) are checked by evaluation instead of
    /// waited out.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    max_wait: Limit,
    /// Wait each idle-type rule's configured limit, not `[verify] test_limit` (still bounded
    /// by --max-wait).
    #[arg(long)]
    full: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// The agent's audit log: its records are looked up there, and the result is recorded
    /// there (default: `audit_log` in `[agent]`).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Do not record the result in the audit log.
    #[arg(long)]
    no_record: bool,
    /// Which enforcement points to test: the agent on direct connections, the curfew gateway
    /// (canaries logging in through its listen address; only when the policy has a
    /// `[gateway]` in front of the target), or both.
    #[arg(long, value_enum, default_value = "both")]
    through: ThroughArg,
}

/// `--through`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ThroughArg {
    /// The agent (direct connections) and, when there is a `[gateway]`, the gateway.
    Both,
    /// The agent on direct connections only.
    Direct,
    /// The gateway only.
    Gateway,
}

impl From<ThroughArg> for curfew_verify::Through {
    fn from(t: ThroughArg) -> Self {
        match t {
            ThroughArg::Both => curfew_verify::Through::Both,
            ThroughArg::Direct => curfew_verify::Through::Direct,
            ThroughArg::Gateway => curfew_verify::Through::Gateway,
        }
    }
}

/// Verify each target.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = policy_file::targets(&loaded, args.target.as_deref())?;
    if matches!(args.through, ThroughArg::Gateway) && loaded.policy.gateway.is_none() {
        return Err(Failure::Usage(
            "--through gateway: the policy has no [gateway], so there is no gateway to test"
                .to_owned(),
        ));
    }
    let audit_log = args
        .audit_log
        .clone()
        .or_else(|| loaded.policy.agent.audit_log.as_ref().map(Into::into));
    let token = curfew_postgres::random_hex(3).context("reading random bytes")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let started = Timestamp::now();
    let mut verified = Vec::new();
    for target in targets {
        let options = curfew_verify::Options {
            max_wait: args.max_wait,
            full: args.full,
        };
        let result = runtime.block_on(verify_target(
            &loaded,
            target,
            options,
            args.through.into(),
            audit_log.as_deref(),
            &token,
            &show,
            stop_requested(),
        ));
        verified.push(result.map_err(|e| match e {
            curfew_verify::live::LiveError::Url(e) => Failure::Usage(e.to_string()),
            curfew_verify::live::LiveError::MysqlUrl(e) => Failure::Usage(e.to_string()),
            e => Failure::Runtime(e.into()),
        })?);
    }
    let failed = verified
        .iter()
        .flat_map(|v| {
            v.results
                .iter()
                .chain(&v.mechanisms)
                .chain(v.gateway.iter().flat_map(|g| &g.results))
        })
        .filter(|r| r.status == Status::Fail)
        .count();
    if !args.no_record {
        super::record_result(
            audit_log.as_deref(),
            curfew_verify::control_records(&verified, &loaded, args.max_wait, args.full),
        );
    }
    match args.format {
        Format::Md => out_text(&output::markdown(
            &verified,
            &loaded,
            started,
            args.max_wait,
        ))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "verified_at": started.to_string(),
                "policy": {"source": loaded.source, "sha256": loaded.sha256},
                "max_wait": args.max_wait.to_string(),
                "full": args.full,
                "passed": failed == 0,
                "targets": verified,
            }))
            .context("serializing the results")?
        ))?,
    }
    if failed > 0 {
        Err(Failure::Check(format!(
            "{failed} test{} failed verification",
            if failed == 1 { "" } else { "s" }
        )))
    } else {
        Ok(())
    }
}

/// What the live test says as it goes, on standard error.
fn show(notice: Notice) {
    match notice {
        Notice::ConnectWarning(warning) => eprintln!("curfew: warning: {warning}"),
        Notice::Waiting {
            target,
            rules,
            locks,
            longest,
        } => eprintln!(
            "curfew: target \"{}\": canary sessions in the scope of {}{}; waiting up to {}s for the agent",
            target,
            rules
                .iter()
                .map(|name| format!("\"{name}\""))
                .collect::<Vec<_>>()
                .join(", "),
            if locks {
                ", and a canary role to lock and unlock"
            } else {
                ""
            },
            longest.as_secs()
        ),
        Notice::ThroughGateway { target, address } => eprintln!(
            "curfew: target \"{target}\": canaries logging in through the curfew gateway at {address}"
        ),
    }
}

/// Ctrl-C, or SIGTERM (a service manager or `timeout` stopping verify): either way the canary
/// roles and locks are cleaned up before exiting.
async fn stop_requested() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            // Without a SIGTERM handler only Ctrl-C is heard.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
