//! Checking a chain against anchors: heads of the chain (seq and hash) that the agent wrote
//! outside the log as it went (each target's `curfew` schema, where curfew's role can only
//! add anchors with a higher seq). Someone who can rewrite the log cannot rewrite those, so:
//!
//! - an anchor whose seq is beyond the log's last record means records were cut off;
//! - an anchor whose hash differs from the log's record at that seq means the chain was
//!   altered and recomputed (every hash after the change differs);
//! - an anchor naming a record before the first file given means records were cut from the
//!   front (unless a retention boundary is acknowledged, [`AnchorRules::from_seq`]);
//! - an anchor stored long after the record it names was stored after the fact, by whoever
//!   wrote the log then: it confirms nothing ([`AnchorRules::late_after`]);
//! - another chain anchored from the same place (the role and client address the server
//!   stamped) while this log was being written means the log was replaced by a new chain,
//!   or another agent shares the host and credential ([`AnchorRules::other_chains`]).

use jiff::{SignedDuration, Timestamp};

use crate::chain::ChainVerification;
use crate::problem::{Problem, ProblemKind};

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
    /// The role that stored it, as the store stamped it (`session_user`).
    pub by: String,
    /// The client address it was stored from, as the store stamped it (`None`: a Unix
    /// socket, or a store from before addresses were kept). Compared NULL-safely.
    pub origin: Option<String>,
}

/// What the operator acknowledges, and the limits, for [`ChainVerification::check_anchors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRules {
    /// Chains anchored from the same place that are known to be another agent's (replicas on
    /// one host): not held against this log.
    pub other_chains: Vec<String>,
    /// A retention boundary: records before this seq were deliberately removed, so anchors
    /// naming them are not missing records.
    pub from_seq: Option<u64>,
    /// An anchor stored more than this after the record it names (the store's clock against
    /// the record's `ts`; the margin must cover the clocks' offset) does not confirm it.
    pub late_after: SignedDuration,
    /// The verifying session's own origin on the store (role, client address): a chain
    /// anchored from there counts as anchored from the log's place even when the log's own
    /// chain holds no anchor there (a log replaced and never anchored).
    pub verifier: Option<(String, Option<String>)>,
}

impl Default for AnchorRules {
    fn default() -> Self {
        AnchorRules {
            other_chains: Vec::new(),
            from_seq: None,
            late_after: SignedDuration::from_mins(2),
            verifier: None,
        }
    }
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
    /// Other chains anchored from this log's place that [`AnchorRules::other_chains`]
    /// acknowledged, or whose files were given too.
    pub acknowledged: Vec<String>,
    /// Anchors of this chain stored too late to confirm their record.
    pub late: usize,
}

impl AnchorCheck {
    /// True when no anchor contradicts the log.
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

impl ChainVerification {
    /// Compares the chain with `anchors` under `rules`: an anchor beyond the last record names
    /// the first missing seq; an anchor whose hash differs from the record at its seq names
    /// the first seq the anchors no longer confirm; anchors before the files given, late
    /// anchors and other chains anchored from the log's place are problems too (see the
    /// module documentation).
    pub fn check_anchors(&self, anchors: &[Anchor], rules: &AnchorRules) -> AnchorCheck {
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
            acknowledged: Vec::new(),
            late: 0,
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
        let mut late: Vec<(&Anchor, Timestamp)> = Vec::new();
        let mut cut: Vec<&Anchor> = Vec::new();
        let mut beyond: Option<&Anchor> = None;
        for anchor in &ours {
            if anchor.seq < first {
                if rules.from_seq.is_some_and(|n| anchor.seq < n) {
                    check.before_files += 1;
                } else {
                    cut.push(anchor);
                }
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
                    if let Some(ts) = self.ts_at(anchor.seq)
                        && anchor.at.duration_since(ts) > rules.late_after
                    {
                        late.push((anchor, ts));
                    } else if differing.is_empty() {
                        check.confirmed = Some((anchor.seq, anchor.at));
                    }
                }
                _ => differing.push(anchor),
            }
        }
        if let Some(anchor) = differing.first() {
            let from = check
                .confirmed
                .map_or(first, |(seq, _)| seq.saturating_add(1));
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
                seq: Some(last.saturating_add(1)),
                kind: ProblemKind::MissingRecords,
                message: format!(
                    "records from seq {} missing: seq {} was anchored at {} in {}, but the log ends at seq {last}",
                    last.saturating_add(1),
                    anchor.seq,
                    anchor.at,
                    anchor.from
                ),
            });
        }
        if let (Some(lo), Some(hi)) = (cut.first(), cut.last()) {
            let from = rules.from_seq.unwrap_or(1);
            let first_given = if self.last_seq.is_some() {
                format!("the files given begin at seq {first}")
            } else {
                "the files given hold no record".to_owned()
            };
            check.problems.push(Problem {
                line: 0,
                seq: Some(from),
                kind: ProblemKind::MissingRecords,
                message: format!(
                    "records seq {from}..{}, anchored from {} to {} in {}, are not in the files given ({first_given}): the log was cut from the front or rotated files removed; give the earlier files too, or acknowledge a retention boundary with --from-seq",
                    first.saturating_sub(1).max(hi.seq),
                    lo.at,
                    hi.at,
                    lo.from
                ),
            });
        }
        if let Some((anchor, ts)) = late.first() {
            check.late = late.len();
            check.problems.push(Problem {
                line: 0,
                seq: None,
                kind: ProblemKind::LateAnchor,
                message: format!(
                    "{} anchor(s) were stored long after the records they name (first: seq {} written at {ts}, anchored at {} in {}, more than {} later): anchored after the fact, they confirm nothing (whoever held the log then could have rewritten it)",
                    late.len(),
                    anchor.seq,
                    anchor.at,
                    anchor.from,
                    describe(rules.late_after)
                ),
            });
        }
        self.check_other_chains(anchors, &ours, rules, &mut check);
        check
            .problems
            .sort_by_key(|p| (p.seq.unwrap_or(u64::MAX), p.kind.as_str()));
        check
    }

    /// Other chains anchored by the same role from the same address as this chain's anchors
    /// (or as the verifier), beginning before this log's last record: a replaced log, unless
    /// acknowledged or given too.
    fn check_other_chains(
        &self,
        anchors: &[Anchor],
        ours: &[&Anchor],
        rules: &AnchorRules,
        check: &mut AnchorCheck,
    ) {
        let mut places: Vec<(&str, Option<&str>)> = ours
            .iter()
            .map(|a| (a.by.as_str(), a.origin.as_deref()))
            .collect();
        if let Some((role, addr)) = &rules.verifier {
            places.push((role.as_str(), addr.as_deref()));
        }
        let mut others: Vec<&str> = Vec::new();
        for a in anchors {
            if Some(&a.chain) != self.chain.as_ref() && !others.contains(&a.chain.as_str()) {
                others.push(&a.chain);
            }
        }
        for other in others {
            let same_place: Vec<&Anchor> = anchors
                .iter()
                .filter(|a| a.chain == other)
                .filter(|a| places.contains(&(a.by.as_str(), a.origin.as_deref())))
                .collect();
            let (Some(began), Some(latest)) = (
                same_place.iter().min_by_key(|a| a.at),
                same_place.iter().max_by_key(|a| (a.seq, a.at)),
            ) else {
                continue;
            };
            if self.last_ts.is_some_and(|t| began.at >= t) {
                continue;
            }
            if rules.other_chains.iter().any(|c| c == other)
                || self.other_file_chains.iter().any(|c| c == other)
            {
                check.acknowledged.push(other.to_owned());
                continue;
            }
            let place = match &began.origin {
                Some(addr) => format!("role {} from {addr}", began.by),
                None => format!("role {} over a local socket", began.by),
            };
            let before = match self.last_ts {
                Some(t) => format!("before this log's last record ({t})"),
                None => "and this log holds no record".to_owned(),
            };
            check.problems.push(Problem {
                line: 0,
                seq: None,
                kind: ProblemKind::ReplacedChain,
                message: format!(
                    "chain {other} was anchored in {} by the same {place} as this log from {} (up to seq {} at {}), {before}: the log was replaced by a new chain, or another agent on this host writes that chain; give its files too, or acknowledge it with --other-chain {other}",
                    began.from, began.at, latest.seq, latest.at
                ),
            });
        }
    }
}

/// A duration in words (whole seconds).
fn describe(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
