//! What `curfew audit verify` and `curfew report` check of an audit log: the chain of a set of
//! files (a log and its rotated files), then the anchors every `[[target]]` of the policy holds
//! (unless `--offline`), then the signed checkpoints (with `--public-key`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use curfew_audit::{Anchor, AnchorCheck, ChainVerification, Entry, SignatureCheck};
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

/// One target's anchors, as far as they could be read.
pub(crate) struct TargetAnchors {
    /// The target's name.
    pub(crate) target: String,
    /// The comparison, or why there is none.
    pub(crate) result: Result<AnchorCheck, String>,
}

/// Everything checked.
pub(crate) struct Checked {
    pub(crate) chain: ChainVerification,
    /// Per target; empty when offline or without a policy.
    pub(crate) targets: Vec<TargetAnchors>,
    /// Why no target was asked, if none was.
    pub(crate) anchors_skipped: Option<String>,
    /// `--offline` was given: skipping the anchors was asked for.
    pub(crate) offline: bool,
    /// The acknowledged retention boundary (`--from-seq`).
    pub(crate) from_seq: Option<u64>,
    pub(crate) signatures: Option<SignatureCheck>,
}

impl Checked {
    /// Every problem: the chain's, then the anchors' (per target), then the signatures'.
    pub(crate) fn problems(&self) -> Vec<curfew_audit::Problem> {
        let mut all = self.chain.verification.problems.clone();
        for t in &self.targets {
            if let Ok(check) = &t.result {
                all.extend(check.problems.iter().cloned().map(|mut p| {
                    p.message = format!("target \"{}\": {}", t.target, p.message);
                    p
                }));
            }
        }
        if let Some(s) = &self.signatures {
            all.extend(s.problems.iter().cloned());
        }
        all
    }

    /// Why the log is NOT CONFIRMED although the policy names targets: none of their anchors
    /// could be compared (a forger can make a target unreachable), and `--offline` was not
    /// given. `None` when some target was compared, or none was to be.
    pub(crate) fn unconfirmed(&self) -> Option<String> {
        if self.offline || self.targets.is_empty() || self.targets.iter().any(|t| t.result.is_ok())
        {
            return None;
        }
        Some(format!(
            "NOT CONFIRMED: no target's anchors could be compared ({} of {} unreadable); the log is only consistent with itself, and a forger can make a target unreachable (give --offline to check the log alone)",
            self.targets.len(),
            self.targets.len()
        ))
    }

    /// The first seq a problem names (missing or differing), if any.
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.problems().iter().filter_map(|p| p.seq).min()
    }

    /// The highest seq the anchors of some target confirm, with its time and target.
    pub(crate) fn anchored_up_to(&self) -> Option<(u64, jiff::Timestamp, String)> {
        self.targets
            .iter()
            .filter_map(|t| {
                let check = t.result.as_ref().ok()?;
                let (seq, at) = check.confirmed?;
                Some((seq, at, t.target.clone()))
            })
            .max_by_key(|(seq, at, _)| (*seq, *at))
    }

    /// What was checked, one line per part, for people.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(why) = self.unconfirmed() {
            lines.push(why);
        } else if self.targets.is_empty() && !self.offline {
            lines.push(format!(
                "nothing outside the log was checked ({}): the log is only consistent with itself",
                self.anchors_skipped.as_deref().unwrap_or("no target")
            ));
        }
        let c = &self.chain;
        let files: Vec<String> = c
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        let range = match (c.first_seq, c.last_seq) {
            (Some(a), Some(b)) => format!(", seq {a}..{b}"),
            _ => String::new(),
        };
        let chain_id = c
            .chain
            .as_deref()
            .unwrap_or("unknown (empty log, or a damaged first record)");
        let last = c
            .verification
            .last_hash
            .as_deref()
            .map(|h| format!("; last hash {h}"))
            .unwrap_or_default();
        lines.push(if c.is_intact() {
            format!(
                "{}: intact: {} records{range} in {} file(s), chain and sequence unbroken, every intent has an outcome; chain {chain_id}{last}",
                files.join(", "),
                c.verification.records,
                c.files.len(),
            )
        } else {
            format!(
                "{}: NOT intact: {} records{range} in {} file(s), {} problem(s) in the chain; chain {chain_id}",
                files.join(", "),
                c.verification.records,
                c.files.len(),
                c.verification.problems.len()
            )
        });
        if let Some(first) = c.files.first()
            && let Ok(Some(before)) = curfew_audit::continuation(&first.path)
        {
            lines.push(format!(
                "{} continues a previous file whose last record is seq {} (hash {}): records up to seq {} were not checked; give the earlier files too (or their directory)",
                first.path.display(),
                before.seq,
                before.hash,
                before.seq
            ));
        }
        if let Some(why) = &self.anchors_skipped {
            lines.push(format!("anchors: not checked: {why}"));
        }
        if let Some(n) = self.from_seq {
            lines.push(format!(
                "retention boundary acknowledged (--from-seq {n}): records before seq {n} were removed on purpose; anchors naming them were not held against the log"
            ));
        }
        for t in &self.targets {
            lines.push(match &t.result {
                Err(why) => format!("anchors on target \"{}\": not checked: {why}", t.target),
                Ok(check) => describe_target(&t.target, check, c),
            });
        }
        match &self.signatures {
            None => lines.push("signed checkpoints: not checked (no --public-key)".to_owned()),
            Some(s) => lines.push(format!(
                "signed checkpoints: {} valid{}; {} record(s) after it unsigned{}",
                s.valid,
                s.signed_up_to
                    .map(|seq| format!(", covering the chain up to seq {seq}"))
                    .unwrap_or_default(),
                s.unsigned_after,
                if s.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {} checkpoint problem(s)", s.problems.len())
                }
            )),
        }
        lines
    }
}

fn describe_target(target: &str, check: &AnchorCheck, chain: &ChainVerification) -> String {
    let mut text = format!("anchors on target \"{target}\": ");
    if check.compared == 0 && check.before_files == 0 {
        text.push_str("none for this chain");
    } else {
        text.push_str(&format!("{} compared", check.compared));
        if let Some((seq, at)) = check.confirmed {
            text.push_str(&format!(
                ", confirm the log up to seq {seq} (anchored at {at})"
            ));
            if let Some(last) = chain.last_seq.filter(|l| *l > seq && check.is_consistent()) {
                text.push_str(&format!("; seq {}..{last} not anchored yet", seq + 1));
            }
        }
        if check.before_files > 0 {
            text.push_str(&format!(
                "; {} name records before the files given",
                check.before_files
            ));
        }
        if !check.is_consistent() {
            text.push_str(&format!(
                "; CONTRADICT the log ({} problem(s))",
                check.problems.len()
            ));
        }
    }
    if check.late > 0 {
        text.push_str(&format!(
            "; {} stored too late to confirm their record",
            check.late
        ));
    }
    if !check.acknowledged.is_empty() {
        text.push_str(&format!(
            "; chain(s) {} anchored from this log's place too, acknowledged as another agent's log (--other-chain) or given as files",
            check.acknowledged.join(", ")
        ));
    }
    let unrelated =
        check.other_chains.len() - check.acknowledged.len().min(check.other_chains.len());
    if unrelated > 0 {
        text.push_str(&format!(
            "; also holds anchors of {unrelated} other chain(s) (from other places, or begun after this log)"
        ));
    }
    text
}

/// Check `paths` as one chain, handing each record to `each`; then the anchors of the targets
/// of the policy `policy` (when given and not `offline`) and the signatures.
pub(crate) fn check(
    paths: &[PathBuf],
    policy: Result<&curfew_policy::Policy, String>,
    args: &CheckArgs,
    each: impl FnMut(&Entry),
) -> Result<Checked, Failure> {
    for path in paths {
        if !path.exists() {
            return Err(Failure::Usage(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    let chain = curfew_audit::verify_chain(paths, each).with_context(|| {
        format!(
            "reading {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    if chain.files.is_empty() {
        return Err(Failure::Usage(format!(
            "no audit log file in {} (a directory's log files have .jsonl in their name)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let signatures = match &args.public_key {
        Some(path) => {
            let key = chain
                .load_public_key(path)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            Some(chain.check_signatures(&key))
        }
        None => None,
    };
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
    Ok(Checked {
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
            let read = async {
                let connected = curfew_postgres::connect(&TargetSpec::from_policy(target))
                    .await
                    .map_err(|e| e.to_string())?;
                let rows = connected
                    .connection
                    .anchors(None)
                    .await
                    .map_err(|e| format!("{e} (curfew init installs the anchor store)"))?;
                // Where this session comes from: with the agent's credential on the agent's
                // host, the place a replaced log's new chain would be anchored from.
                let me = connected
                    .connection
                    .anchor_origin()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((rows, me))
            };
            let result = match tokio::time::timeout(TARGET_LIMIT, read).await {
                Err(_) => Err(format!("no answer within {}s", TARGET_LIMIT.as_secs())),
                Ok(Err(e)) => Err(e),
                Ok(Ok((rows, me))) => {
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
