//! Checking a log: hashes, links, sequence numbers, and intents without outcomes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::AuditError;
use crate::event::Event;
use crate::line::GENESIS;
use crate::line::{self, Fault};
use crate::problem::{Problem, ProblemKind};
use crate::reader::{RawLine, open_lines};
use crate::record::Entry;

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Lines that are records (including altered ones); malformed lines are not counted.
    pub records: u64,
    /// Everything wrong, in file order; intents without outcome come last.
    pub problems: Vec<Problem>,
    /// The recorded hash of the last record, to compare with a copy kept elsewhere
    /// (a consistent rewrite of the whole tail is only detectable that way).
    pub last_hash: Option<String>,
}

impl Verification {
    /// True when no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A place the next record may legitimately link to: its `prev` must equal `hash` and its
/// seq must be `seq + 1`.
#[derive(Debug, Clone)]
struct Link {
    seq: u64,
    hash: Option<String>,
}

/// Verification state; relinks after damage so one bad line is reported once.
pub(crate) struct Checker {
    /// The next record is the first of a file of a set (see `chain.rs`).
    pub(crate) file_start: bool,
    /// Each intact record's seq and hash, in order, when kept (for anchors and checkpoints).
    pub(crate) hashes: Option<Vec<(u64, String)>>,
    /// The checkpoint records seen, with their line.
    pub(crate) checkpoints: Vec<(u64, Entry)>,
    /// Where the last record lets the chain continue. The first anchor is the one named in
    /// messages. An altered record gives two: its own seq and the seq it should have had.
    anchors: Vec<Link>,
    /// Line and seq of the last record, for messages.
    last_record: Option<(u64, u64)>,
    /// Malformed lines since the last record; each may have been a record.
    malformed_run: u64,
    /// Seq and hash still recognisable in the most recent malformed line.
    salvaged: Option<Link>,
    records: u64,
    last_hash: Option<String>,
    problems: Vec<Problem>,
    /// Intents not yet completed: seq -> (line, pid).
    pending: HashMap<u64, (u64, String)>,
    /// Every intent seq seen, so a second outcome for one intent is not misreported.
    intents: HashSet<u64>,
    /// The last seq of the file this one continues, when it begins with a `log_continued`
    /// record: outcomes may name intents up to it (they are in that file).
    continued_from: Option<u64>,
}

impl Checker {
    pub(crate) fn new() -> Self {
        Checker {
            file_start: false,
            hashes: None,
            checkpoints: Vec::new(),
            anchors: vec![Link {
                seq: 0,
                hash: Some(GENESIS.to_owned()),
            }],
            last_record: None,
            malformed_run: 0,
            salvaged: None,
            records: 0,
            last_hash: None,
            problems: Vec::new(),
            pending: HashMap::new(),
            intents: HashSet::new(),
            continued_from: None,
        }
    }

    /// How many problems were found so far.
    pub(crate) fn problems_len(&self) -> usize {
        self.problems.len()
    }

    /// Prefix the problems found since `from` with the file they are in (a set of files).
    pub(crate) fn name_file(&mut self, from: usize, path: &std::path::Path) {
        for problem in &mut self.problems[from..] {
            problem.message = format!("{}: {}", path.display(), problem.message);
        }
    }

    fn primary_seq(&self) -> u64 {
        self.anchors.first().map_or(0, |a| a.seq)
    }

    pub(crate) fn malformed(&mut self, line_no: u64, bytes: Option<&[u8]>, fault: &Fault) {
        let (seq, hash) = bytes.map_or((None, None), line::salvage);
        self.malformed_run += 1;
        let guess = self.primary_seq() + self.malformed_run;
        self.salvaged = Some(Link {
            seq: seq.unwrap_or(guess),
            hash,
        });
        self.problems.push(Problem::malformed(line_no, seq, fault));
    }

    pub(crate) fn record(&mut self, line_no: u64, entry: Entry, intact: bool) {
        let seq = entry.seq;
        let file_start = std::mem::take(&mut self.file_start);
        if intact
            && (self.last_record.is_none() || file_start)
            && self.malformed_run == 0
            && entry.event_kind() == Some(Event::LogContinued)
        {
            // The file continues another: the chain starts from that file's last record,
            // which this record names. Cut off at the head without such a record, a file is
            // still reported (its first record does not link to the genesis hash). In a set,
            // a file that does not continue the one before says which records are missing.
            let before = seq.saturating_sub(1);
            let links = self
                .anchors
                .iter()
                .any(|a| a.seq == before && a.hash.as_deref() == Some(entry.prev.as_str()));
            if !links {
                if let Some((_, last)) = self.last_record {
                    self.problems.push(gap(line_no, last, before));
                }
                self.continued_from = Some(before);
                self.anchors = vec![Link {
                    seq: before,
                    hash: Some(entry.prev.clone()),
                }];
            }
        }
        if intact && let Some(hashes) = &mut self.hashes {
            hashes.push((seq, entry.hash.clone()));
        }
        if entry.event_kind() == Some(Event::Checkpoint) {
            self.checkpoints.push((line_no, entry.clone()));
        }
        let candidates: Vec<&Link> = self.anchors.iter().chain(&self.salvaged).collect();
        let linked: Vec<&Link> = candidates
            .iter()
            .copied()
            .filter(|a| a.hash.as_deref() == Some(entry.prev.as_str()))
            .collect();
        let primary = self.primary_seq();
        // Checked: a record may claim any seq, u64::MAX included (no successor then).
        let next = |s: u64| s.checked_add(1);
        let expected = linked
            .first()
            .map_or(primary.saturating_add(1), |a| a.seq.saturating_add(1));
        let seq_ok = if linked.is_empty() {
            // Without a link, accept any seq the malformed lines in between could explain.
            (primary.saturating_add(1)
                ..=primary.saturating_add(1).saturating_add(self.malformed_run))
                .contains(&seq)
                || candidates.iter().any(|a| next(a.seq) == Some(seq))
        } else {
            linked.iter().any(|a| next(a.seq) == Some(seq))
        };

        if !intact {
            // The record's own fields are untrustworthy, so only the alteration is reported.
            self.problems.push(Problem {
                line: line_no,
                seq: Some(seq),
                kind: ProblemKind::HashMismatch,
                message: format!(
                    "line {line_no} (seq {seq}) was altered: its hash does not match its content."
                ),
            });
        } else {
            if linked.is_empty() {
                self.problems.push(self.broken_link(line_no, seq));
            }
            if !seq_ok {
                self.problems.push(seq_gap(line_no, seq, expected));
            }
        }

        self.track_intents(line_no, &entry);
        self.anchors = vec![Link {
            seq,
            hash: Some(entry.hash.clone()),
        }];
        if !intact && !seq_ok {
            // Relink after an altered seq as if it had been the expected one, too.
            self.anchors.insert(
                0,
                Link {
                    seq: expected,
                    hash: Some(entry.hash.clone()),
                },
            );
        }
        self.last_record = Some((line_no, seq));
        self.malformed_run = 0;
        self.salvaged = None;
        self.records += 1;
        self.last_hash = Some(entry.hash);
    }

    fn broken_link(&self, line_no: u64, seq: u64) -> Problem {
        let message = match self.last_record {
            None if self.malformed_run == 0 => format!(
                "line {line_no} (seq {seq}) should start the chain, but its prev is not the genesis hash: records before it are missing."
            ),
            None => format!(
                "line {line_no} (seq {seq}) links to no record: its prev is neither the genesis hash nor recognisable in the malformed line(s) before it."
            ),
            Some((prev_line, prev_seq)) => {
                let between = if self.malformed_run > 0 {
                    " (or the malformed line(s) between them replaced records)"
                } else {
                    ""
                };
                format!(
                    "line {line_no} (seq {seq}) does not follow line {prev_line} (seq {prev_seq}): its prev is not that record's hash, so records were removed, inserted or replaced between them{between}."
                )
            }
        };
        Problem {
            line: line_no,
            seq: Some(seq),
            kind: ProblemKind::BrokenLink,
            message,
        }
    }

    fn track_intents(&mut self, line_no: u64, entry: &Entry) {
        if entry.event_kind().is_some_and(|e| e.is_intent()) {
            self.pending
                .insert(entry.seq, (line_no, describe_intent(entry)));
            self.intents.insert(entry.seq);
        }
        if let Some(intent) = entry.intent {
            let known = self.pending.remove(&intent).is_some()
                || self.intents.contains(&intent)
                || self.continued_from.is_some_and(|before| intent <= before);
            if !known {
                self.problems.push(Problem {
                    line: line_no,
                    seq: Some(entry.seq),
                    kind: ProblemKind::OutcomeWithoutIntent,
                    message: format!(
                        "line {line_no} (seq {}): {} names intent seq {intent}, but no intent with that seq comes before it.",
                        entry.seq, entry.event
                    ),
                });
            }
        }
    }

    pub(crate) fn finish(mut self) -> Verification {
        let mut open: Vec<(u64, (u64, String))> = self.pending.drain().collect();
        open.sort_by_key(|(_, (line_no, _))| *line_no);
        for (seq, (line_no, what)) in open {
            self.problems.push(Problem {
                line: line_no,
                seq: Some(seq),
                kind: ProblemKind::IntentWithoutOutcome,
                message: format!("seq {seq}: {what} has no outcome record."),
            });
        }
        Verification {
            records: self.records,
            problems: self.problems,
            last_hash: self.last_hash,
        }
    }
}

/// What an intent was for, in words: "intent to end pid 4242", "intent to lock the login of
/// role kim".
fn describe_intent(entry: &Entry) -> String {
    if let Some(session) = &entry.session {
        return format!("intent to end pid {}", session.pid);
    }
    let detail = |key: &str| {
        entry
            .detail
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    match (detail("action"), detail("role")) {
        (Some(action), Some(role)) => format!("intent to {action} the login of role {role}"),
        _ => format!("{} intent", entry.event),
    }
}

/// A file of a set continues the chain from seq `before`, the file before it ends at `last`.
fn gap(line_no: u64, last: u64, before: u64) -> Problem {
    let message = if before > last {
        format!(
            "records from seq {} missing: the file before ends at seq {last}, this one continues the chain after seq {before} (line {line_no}), so seq {}..={before} are in no file given",
            last + 1,
            last + 1
        )
    } else {
        format!(
            "line {line_no}: this file continues the chain after seq {before}, but not from the record the file before holds at that seq (that file ends at seq {last}): the files are not one chain"
        )
    };
    Problem {
        line: line_no,
        seq: Some(last.saturating_add(1)),
        kind: ProblemKind::MissingRecords,
        message,
    }
}

fn seq_gap(line_no: u64, seq: u64, expected: u64) -> Problem {
    let why = if seq > expected {
        let missing = seq - expected;
        format!("{missing} record(s) are missing before it")
    } else {
        "it repeats or goes back in the sequence".to_owned()
    };
    Problem {
        line: line_no,
        seq: Some(seq),
        kind: ProblemKind::SeqGap,
        message: format!("line {line_no} has seq {seq} where seq {expected} was expected: {why}."),
    }
}

/// Where the chain a file continues ended: the previous file's last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    /// The seq of the previous file's last record.
    pub seq: u64,
    /// Its hash (the `prev` of this file's first record).
    pub hash: String,
}

/// The chain the log at `path` continues, if it begins with a `log_continued` record (the
/// agent starts every new file of a rotated or truncated log so). [`verify`] accepts such a
/// file on its own; compare the continuation with the previous file's last record, or verify
/// the files concatenated in order.
pub fn continuation(path: &Path) -> Result<Option<Continuation>, AuditError> {
    let mut lines = open_lines(path)?;
    let Some((_, RawLine::Text { bytes, terminated })) = lines
        .next_line()
        .map_err(|e| AuditError::io(path, "cannot read", e))?
    else {
        return Ok(None);
    };
    Ok(line::parse_read(bytes, terminated)
        .ok()
        .filter(|p| p.intact && p.entry.event_kind() == Some(Event::LogContinued))
        .map(|p| Continuation {
            seq: p.entry.seq.saturating_sub(1),
            hash: p.entry.prev,
        }))
}

/// Checks the log at `path`, streaming it. Every problem is reported in the result; an
/// error is returned only when the file cannot be read.
///
/// A file whose first record is `log_continued` continues another file's chain: that record
/// may link to a record not in the file, and outcomes may name intents before it.
///
/// After a damaged line the check relinks, so one tampered line yields one precise problem:
/// an altered record is reported as HashMismatch only, and the next record may link to its
/// recorded hash; after malformed lines (e.g. a torn write), the next record may link to
/// the last valid record or to a hash still recognisable in the malformed line.
pub fn verify(path: &Path) -> Result<Verification, AuditError> {
    verify_each(path, |_| {})
}

/// [`verify`], also handing each record read to `each`, in file order: one pass for a caller
/// that needs both the check and the records (`curfew report`).
pub fn verify_each(path: &Path, mut each: impl FnMut(&Entry)) -> Result<Verification, AuditError> {
    let mut lines = open_lines(path)?;
    let mut checker = Checker::new();
    while let Some((line_no, raw)) = lines
        .next_line()
        .map_err(|e| AuditError::io(path, "cannot read", e))?
    {
        match raw {
            RawLine::TooLong(len) => checker.malformed(line_no, None, &Fault::TooLong(len)),
            RawLine::Text { bytes, terminated } => match line::parse_read(bytes, terminated) {
                Ok(parsed) => {
                    each(&parsed.entry);
                    checker.record(line_no, parsed.entry, parsed.intact);
                }
                Err(fault) => checker.malformed(line_no, Some(bytes), &fault),
            },
        }
    }
    Ok(checker.finish())
}
