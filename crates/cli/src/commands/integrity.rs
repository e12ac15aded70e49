//! What `curfew audit verify` and `curfew report` check of an audit log: the chain of a set of
//! files (a log and its rotated files), then the anchors every `[[target]]` of the policy holds
//! (unless `--offline`), then the signed checkpoints (with `--public-key`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use curfew_audit::{Anchor, ChainVerification, Entry, IntegrityCheck, TargetAnchors};
use curfew_postgres::TargetSpec;

use crate::exit::Failure;

/// How long reading one target's anchors may take (connect included).
const TARGET_LIMIT: Duration = Duration::from_secs(15);

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
            late_after: late_after(policy),
            verifier: None,
        })
    }
}

/// How long after a record an anchor naming it still confirms it: max(2 min, 10 × [agent]
/// interval). The agent anchors within an interval or two of each record; the margin also
/// covers the offset between the agent host's clock (the record's ts) and the target's (the
/// anchor's time).
fn late_after(policy: Option<&curfew_policy::Policy>) -> jiff::SignedDuration {
    let floor = jiff::SignedDuration::from_mins(2);
    let interval = policy.map_or(Duration::ZERO, |p| p.agent.interval.to_std());
    let ten = jiff::SignedDuration::try_from(interval.saturating_mul(10)).unwrap_or(floor);
    ten.max(floor)
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
        (false, Ok(policy)) => (read_anchors(policy, &chain, &rules)?, None),
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

/// Each target's anchors of every chain, compared with `chain`.
fn read_anchors(
    policy: &curfew_policy::Policy,
    chain: &ChainVerification,
    rules: &curfew_audit::AnchorRules,
) -> Result<Vec<TargetAnchors>, Failure> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    Ok(runtime.block_on(async {
        let mut out = Vec::new();
        for target in &policy.targets {
            let read = match TargetSpec::from_policy(target) {
                Ok(spec) => curfew_postgres::read_target_anchors(&spec, TARGET_LIMIT)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let result = match read {
                Err(e) => Err(e),
                Ok(curfew_postgres::TargetAnchorRows { rows, origin: me }) => {
                    let anchors: Vec<Anchor> = rows
                        .into_iter()
                        .map(|r| Anchor {
                            chain: r.chain,
                            seq: r.seq,
                            hash: r.hash,
                            at: r.anchored_at,
                            from: format!("target \"{}\" (by role {})", target.name, r.anchored_by),
                            by: r.anchored_by,
                            origin: r.anchored_from,
                        })
                        .collect();
                    let rules = curfew_audit::AnchorRules {
                        verifier: Some((me.role, me.addr)),
                        ..rules.clone()
                    };
                    Ok(chain.check_anchors(&anchors, &rules))
                }
            };
            out.push(TargetAnchors {
                target: target.name.clone(),
                result,
            });
        }
        out
    }))
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
