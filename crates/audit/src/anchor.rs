//! Checking a chain against anchors: heads of the chain (seq and hash) that the agent wrote
//! outside the log as it went (each target's `curfew` schema, where curfew's role can only
//! add anchors with a higher seq). Someone who can rewrite the log cannot rewrite those, so:
//!
//! - an anchor whose seq is beyond the log's last record means records were cut off;
//! - an anchor whose hash differs from the log's record at that seq means the chain was
//!   altered and recomputed (every hash after the change differs).

use jiff::Timestamp;

use crate::chain::ChainVerification;
use crate::verify::{Problem, ProblemKind};

/// One anchor: the chain's head as it was published at some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The chain's identity (see [`crate::chain_id`]).
    pub chain: String,
    /// The seq of the head.
    pub seq: u64,
    /// The head record's hash.
    pub hash: String,
    /// When it was anchored (the anchor store's clock).
    pub at: Timestamp,
    /// Where the anchor is kept, in words, e.g. `target "primary" (by role curfew_agent)`.
    pub from: String,
}

/// The result of [`ChainVerification::check_anchors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorCheck {
    /// Anchors of this chain that were compared with the log.
    pub compared: usize,
    /// The latest anchor the log agrees with: its seq and when it was anchored.
    pub confirmed: Option<(u64, Timestamp)>,
    /// Anchors that name records before the first file given (not comparable).
    pub before_files: usize,
    /// What the anchors contradict, first missing or differing seq first.
    pub problems: Vec<Problem>,
    /// Other chains anchored in the same places (other agents' logs, or a log that was
    /// replaced): each one's identity and latest anchor (seq, time).
    pub other_chains: Vec<(String, u64, Timestamp)>,
}

impl AnchorCheck {
    /// True when no anchor contradicts the log.
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

impl ChainVerification {
    /// Compares the chain with `anchors` (those of other chains are ignored): an anchor
    /// beyond the last record names the first missing seq; an anchor whose hash differs from
    /// the record at its seq names the first seq the anchors no longer confirm.
    pub fn check_anchors(&self, anchors: &[Anchor]) -> AnchorCheck {
        let mut ours: Vec<&Anchor> = anchors
            .iter()
            .filter(|a| Some(&a.chain) == self.chain.as_ref())
            .collect();
        ours.sort_by_key(|a| (a.seq, a.at));
        let first = self.first_seq.unwrap_or(1);
        let last = self.last_seq.unwrap_or(0);
        let mut check = AnchorCheck {
            compared: 0,
            confirmed: None,
            before_files: 0,
            problems: Vec::new(),
            other_chains: Vec::new(),
        };
        for anchor in anchors
            .iter()
            .filter(|a| Some(&a.chain) != self.chain.as_ref())
        {
            match check.other_chains.iter_mut().find(|c| c.0 == anchor.chain) {
                Some(c) if (anchor.seq, anchor.at) > (c.1, c.2) => {
                    (c.1, c.2) = (anchor.seq, anchor.at);
                }
                Some(_) => {}
                None => check
                    .other_chains
                    .push((anchor.chain.clone(), anchor.seq, anchor.at)),
            }
        }
        let mut differing: Vec<&Anchor> = Vec::new();
        let mut beyond: Option<&Anchor> = None;
        for anchor in &ours {
            if anchor.seq < first {
                check.before_files += 1;
                continue;
            }
            check.compared += 1;
            if anchor.seq > last {
                // The latest such anchor says most about what is missing.
                beyond = Some(anchor);
                continue;
            }
            match self.hash_at(anchor.seq) {
                Some(hash) if hash == anchor.hash => {
                    if differing.is_empty() {
                        check.confirmed = Some((anchor.seq, anchor.at));
                    }
                }
                _ => differing.push(anchor),
            }
        }
        if let Some(anchor) = differing.first() {
            let from = check.confirmed.map_or(first, |(seq, _)| seq + 1);
            let ours = self.hash_at(anchor.seq).map_or_else(
                || "the log holds no intact record with that seq".to_owned(),
                |h| format!("the log's record has hash {h}"),
            );
            let more = match differing.len() - 1 {
                0 => String::new(),
                n => format!("; {n} later anchor(s) differ too"),
            };
            check.problems.push(Problem {
                line: 0,
                seq: Some(from),
                kind: ProblemKind::AnchorMismatch,
                message: format!(
                    "record seq {} is not the record anchored at {} in {} (anchored hash {}, {ours}): the chain was altered and recomputed; the first seq the anchors no longer confirm is seq {from}{more}",
                    anchor.seq, anchor.at, anchor.from, anchor.hash
                ),
            });
        }
        if let Some(anchor) = beyond {
            check.problems.push(Problem {
                line: 0,
                seq: Some(last + 1),
                kind: ProblemKind::MissingRecords,
                message: format!(
                    "records from seq {} missing: seq {} was anchored at {} in {}, but the log ends at seq {last}",
                    last + 1,
                    anchor.seq,
                    anchor.at,
                    anchor.from
                ),
            });
        }
        check
            .problems
            .sort_by_key(|p| (p.seq.unwrap_or(u64::MAX), p.kind.as_str()));
        check
    }
}
