//! What an integrity check of an audit log found: the chain, each target's anchors and the
//! signed checkpoints, and its description for people (`curfew audit verify`, `curfew report`).

use crate::{AnchorCheck, ChainVerification, Problem, SignatureCheck};

/// One target's anchors, as far as they could be read.
pub struct TargetAnchors {
    /// The target's name.
    pub target: String,
    /// The comparison, or why there is none.
    pub result: Result<AnchorCheck, String>,
}

/// Everything `curfew audit verify` checked: the chain, each target's anchors, the signatures.
pub struct IntegrityCheck {
    /// The chain read from the files, and what is wrong with it.
    pub chain: ChainVerification,
    /// Per target; empty when offline or without a policy.
    pub targets: Vec<TargetAnchors>,
    /// Why no target was asked, if none was.
    pub anchors_skipped: Option<String>,
    /// `--offline` was given: skipping the anchors was asked for.
    pub offline: bool,
    /// The acknowledged retention boundary (`--from-seq`).
    pub from_seq: Option<u64>,
    /// The signed checkpoints, when a public key was given.
    pub signatures: Option<SignatureCheck>,
}

impl IntegrityCheck {
    /// Every problem: the chain's, then the anchors' (per target), then the signatures'.
    pub fn problems(&self) -> Vec<Problem> {
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
    pub fn unconfirmed(&self) -> Option<String> {
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
    pub fn first_seq(&self) -> Option<u64> {
        self.problems().iter().filter_map(|p| p.seq).min()
    }

    /// The highest seq the anchors of some target confirm, with its time and target.
    pub fn anchored_up_to(&self) -> Option<(u64, jiff::Timestamp, String)> {
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
    pub fn lines(&self) -> Vec<String> {
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
            && let Ok(Some(before)) = crate::continuation(&first.path)
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
