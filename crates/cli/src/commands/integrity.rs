//! What `curfew audit verify` and `curfew report` check of an audit log: the chain of a set of
//! files (a log and its rotated files), then the anchors every `[[target]]` of the policy holds
//! (unless `--offline`; `curfew_ops::read_anchors` reads and compares them), then the signed
//! checkpoints (with `--public-key`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use curfew_audit::{Entry, IntegrityCheck};

use crate::exit::Failure;

/// Options shared by `audit verify` and `report`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CheckArgs {
    /// Do not read the anchors from the policy's targets (the result says so).
    #[arg(long)]
    pub(crate) offline: bool,
    /// Check the signed checkpoints with this Ed25519 public key file (`curfew audit keygen`
    /// writes one next to the private key, as FILE.pub).
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: Option<PathBuf>,
    /// Another chain anchored from this log's host by the same role, known to be another
    /// agent's (replicas on one host): not held against this log. Repeatable.
    #[arg(long, value_name = "CHAIN_ID")]
    pub(crate) other_chain: Vec<String>,
    /// A retention boundary: records before seq N were deliberately removed, so anchors
    /// naming them are not missing records (the output and the report say so).
    #[arg(long, value_name = "N")]
    pub(crate) from_seq: Option<u64>,
}

impl CheckArgs {
    /// The operator's acknowledgements and the late-anchor limit, checked.
    fn rules(
        &self,
        policy: Option<&curfew_policy::Policy>,
    ) -> Result<curfew_audit::AnchorRules, Failure> {
        for chain in &self.other_chain {
            if chain.len() != 64
                || !chain
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(Failure::Usage(format!(
                    "--other-chain {chain}: a chain id is 64 lowercase hexadecimal digits (the hash of the chain's first record, as audit verify prints it)"
                )));
            }
        }
        if self.from_seq == Some(0) {
            return Err(Failure::Usage("--from-seq 0: seqs begin at 1".to_owned()));
        }
        Ok(curfew_audit::AnchorRules {
            other_chains: self.other_chain.clone(),
            from_seq: self.from_seq,
            late_after: curfew_ops::late_after(policy),
            verifier: None,
        })
    }
}

/// Check `paths` as one chain, handing each record to `each`; then the anchors of the targets
/// of the policy `policy` (when given and not `offline`) and the signatures.
pub(crate) fn check(
    paths: &[PathBuf],
    policy: Result<&curfew_policy::Policy, String>,
    args: &CheckArgs,
    each: impl FnMut(&Entry),
) -> Result<IntegrityCheck, Failure> {
    let curfew_audit::CheckedLog { chain, signatures } =
        curfew_audit::check_log(paths, args.public_key.as_deref(), each).map_err(|e| {
            if e.is_usage() {
                Failure::Usage(e.to_string())
            } else {
                Failure::Runtime(e.into())
            }
        })?;
    let rules = args.rules(policy.as_ref().ok().copied())?;
    let (targets, anchors_skipped) = match (args.offline, policy) {
        (true, _) => (Vec::new(), Some("--offline".to_owned())),
        (false, Err(why)) => (Vec::new(), Some(why)),
        (false, Ok(policy)) if policy.targets.is_empty() => (
            Vec::new(),
            Some("the policy names no [[target]]".to_owned()),
        ),
        (false, Ok(policy)) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let read = curfew_ops::read_anchors(policy, &chain, &rules);
            (runtime.block_on(read), None)
        }
    };
    Ok(IntegrityCheck {
        chain,
        targets,
        anchors_skipped,
        offline: args.offline,
        from_seq: args.from_seq,
        signatures,
    })
}

/// The policy for reading anchors: loaded when the file exists; otherwise why not (a missing
/// default `curfew.toml` is no error when the log is named).
pub(crate) fn policy_for_anchors(
    config: &Path,
) -> Result<Result<curfew_policy::LoadedPolicy, String>, Failure> {
    if config != Path::new("-") && !config.exists() {
        return Ok(Err(format!(
            "no policy file {} to name the targets (give -c FILE, or --offline)",
            config.display()
        )));
    }
    crate::policy_file::load_conditions(config).map(Ok)
}
