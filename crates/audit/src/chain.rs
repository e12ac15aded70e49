//! A chain as a whole: its identity, and the verification of a set of files (a log and its
//! rotated predecessors) as one chain.
//!
//! **Identity.** A chain is named by the hash of its first record (seq 1). Every file that
//! continues it begins with a `log_continued` record whose detail repeats that name
//! (`"chain"`), so a rotated file on its own, or a set of files, knows which chain it belongs
//! to, and anchors kept outside the log (see `anchor.rs`) name the chain they are for. A file
//! from before chain names (a `log_continued` without `"chain"`) is named by its own first
//! record's hash.
//!
//! **Sets.** Files are put in order by the seq of their first record and checked as one
//! stream: each file's `log_continued` must link to the last record of the file before; where
//! it does not, the records in between are named as missing. Files of another chain are named
//! and left out.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::error::AuditError;
use crate::event::Event;
use crate::line::GENESIS;
use crate::line::{self, Fault};
use crate::problem::{Problem, ProblemKind};
use crate::reader::{MAX_LINE, RawLine, open_lines};
use crate::record::Entry;
use crate::verify::{Checker, Verification};

/// The chain a record belongs to, as the first record of a file tells it: the hash of seq 1,
/// the `"chain"` a `log_continued` record repeats, or (older files) the record's own hash.
pub fn chain_id(first: &Entry) -> String {
    if first.seq == 1 && first.prev == GENESIS {
        return first.hash.clone();
    }
    if first.event_kind() == Some(Event::LogContinued)
        && let Some(chain) = first
            .detail
            .as_ref()
            .and_then(|d| d.get("chain"))
            .and_then(|c| c.as_str())
    {
        return chain.to_owned();
    }
    first.hash.clone()
}

/// The first record of an open file, if its first line is one (intact or not).
fn first_entry_of(file: &File) -> Option<Entry> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = file.read_at(&mut chunk, buf.len() as u64).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&b'\n') || buf.len() > MAX_LINE {
            break;
        }
    }
    let end = buf.iter().position(|&b| b == b'\n')?;
    line::parse(&buf[..end])
        .ok()
        .filter(|p| p.intact)
        .map(|p| p.entry)
}

/// The chain of the file being written, from its first line (`None`: empty or damaged).
pub(crate) fn file_chain(file: &File) -> Option<String> {
    first_entry_of(file).map(|e| chain_id(&e))
}

/// One file of a verified set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFile {
    /// The file.
    pub path: PathBuf,
    /// The seq of its first and last record, if it holds any.
    pub seqs: Option<(u64, u64)>,
    /// How many records it holds.
    pub records: u64,
}

/// The result of [`verify_chain`]: the set checked as one chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainVerification {
    /// The whole set's verification; problems name their file when the set has several.
    pub verification: Verification,
    /// The chain's identity (see [`chain_id`]), if the first file tells it.
    pub chain: Option<String>,
    /// The files checked, in chain order (files of another chain are not among them).
    pub files: Vec<ChainFile>,
    /// The seq of the first record checked: 1, unless the earliest file given continues a
    /// file not given.
    pub first_seq: Option<u64>,
    /// The seq of the last record.
    pub last_seq: Option<u64>,
    /// The `ts` of the last record.
    pub last_ts: Option<Timestamp>,
    /// The chains of files given that were left out for naming another chain: their anchors
    /// are not held against this chain (the files were given, and are verified on their own).
    pub other_file_chains: Vec<String>,
    /// Each intact record's seq and hash, in chain order.
    pub(crate) hashes: Vec<(u64, String)>,
    /// Each record's seq and `ts`, in chain order.
    pub(crate) times: Vec<(u64, Timestamp)>,
    /// The checkpoint records, with the file and line they are on.
    pub(crate) checkpoints: Vec<(PathBuf, u64, Entry)>,
}

impl ChainVerification {
    /// True when no problem was found.
    pub fn is_intact(&self) -> bool {
        self.verification.is_intact()
    }

    /// The hash of the record with this seq, if the set holds it intact.
    pub fn hash_at(&self, seq: u64) -> Option<&str> {
        let at = self.hashes.partition_point(|(s, _)| *s < seq);
        match self.hashes.get(at) {
            Some((s, h)) if *s == seq => Some(h),
            // Out of order after damage: look through all.
            _ => self
                .hashes
                .iter()
                .rev()
                .find(|(s, _)| *s == seq)
                .map(|(_, h)| h.as_str()),
        }
    }

    /// The `ts` of the record with this seq, if the set holds one.
    pub fn ts_at(&self, seq: u64) -> Option<Timestamp> {
        let at = self.times.partition_point(|(s, _)| *s < seq);
        match self.times.get(at) {
            Some((s, t)) if *s == seq => Some(*t),
            _ => self
                .times
                .iter()
                .rev()
                .find(|(s, _)| *s == seq)
                .map(|t| t.1),
        }
    }
}

/// The log files named by `paths`: files as given, directories as the files in them whose
/// name contains `.jsonl` (not the agent's `.agent-lock` claim file, not hidden files).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AuditError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| AuditError::io(path, "cannot read", e))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries =
            std::fs::read_dir(path).map_err(|e| AuditError::io(path, "cannot list", e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| AuditError::io(path, "cannot list", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file
                && name.contains(".jsonl")
                && !name.starts_with('.')
                && !name.ends_with(".agent-lock")
            {
                found.push(entry.path());
            }
        }
        found.sort();
        files.extend(found);
    }
    files.dedup();
    Ok(files)
}

/// Checks the files `paths` (files and directories, see [`expand`]) as one chain, handing
/// each record to `each` in chain order. An error only when a file cannot be read.
pub fn verify_chain(
    paths: &[PathBuf],
    mut each: impl FnMut(&Entry),
) -> Result<ChainVerification, AuditError> {
    let files = expand(paths)?;
    // Each file's first record: its place in the chain and which chain it is of.
    let mut placed = Vec::new();
    for path in files {
        let file = File::open(&path).map_err(|e| AuditError::io(&path, "cannot open", e))?;
        let first = first_entry_of(&file);
        let (newest, chain, seq) = match &first {
            // A file from before chain names tells only a guess at its chain.
            Some(e) if is_legacy(e) => (None, None, e.seq),
            Some(e) => (Some(e.ts), Some(chain_id(e)), e.seq),
            None => (None, None, u64::MAX),
        };
        placed.push((seq, path, chain, newest));
    }
    placed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    // The set's chain: that of the file that began most recently (the log being written);
    // for a set of files from before chain names, the guess of its first file.
    let chain = placed
        .iter()
        .filter(|p| p.2.is_some())
        .max_by_key(|p| p.3)
        .and_then(|p| p.2.clone())
        .or_else(|| {
            placed
                .first()
                .and_then(|p| File::open(&p.1).ok())
                .and_then(|f| first_entry_of(&f))
                .map(|e| chain_id(&e))
        });
    let several = placed.len() > 1;
    let mut checker = Checker::new();
    checker.hashes = Some(Vec::new());
    let mut out_files = Vec::new();
    let mut foreign = Vec::new();
    let mut checkpoints = Vec::new();
    let mut other_file_chains: Vec<String> = Vec::new();
    let mut times = Vec::new();
    let mut each = |e: &Entry| {
        times.push((e.seq, e.ts));
        each(e);
    };
    for (_, path, file_chain, _) in placed {
        if let (Some(ours), Some(theirs)) = (&chain, &file_chain)
            && ours != theirs
        {
            foreign.push(Problem {
                line: 1,
                seq: None,
                kind: ProblemKind::OtherChain,
                message: format!(
                    "{}: belongs to another chain ({theirs}) than the rest ({ours}); it was left out: verify it on its own",
                    path.display()
                ),
            });
            if !other_file_chains.contains(theirs) {
                other_file_chains.push(theirs.clone());
            }
            continue;
        }
        let before = checker.problems_len();
        let before_cp = checker.checkpoints.len();
        let (records, seqs) = feed(&mut checker, &path, several, &mut each)?;
        if several {
            checker.name_file(before, &path);
        }
        checkpoints.extend(
            checker
                .checkpoints
                .drain(before_cp..)
                .map(|(line, e)| (path.clone(), line, e)),
        );
        out_files.push(ChainFile {
            path,
            seqs,
            records,
        });
    }
    let hashes = checker.hashes.take().unwrap_or_default();
    let mut verification = checker.finish();
    verification.problems.extend(foreign);
    let first_seq = out_files.iter().find_map(|f| f.seqs.map(|s| s.0));
    let last_seq = out_files.iter().rev().find_map(|f| f.seqs.map(|s| s.1));
    let last_ts = times.last().map(|t| t.1);
    Ok(ChainVerification {
        verification,
        chain,
        files: out_files,
        first_seq,
        last_seq,
        last_ts,
        other_file_chains,
        hashes,
        times,
        checkpoints,
    })
}

/// A file that begins with a `log_continued` record written before chain names existed: it
/// may belong to any chain, so it is never left out for naming another.
fn is_legacy(first: &Entry) -> bool {
    first.event_kind() == Some(Event::LogContinued)
        && first.detail.as_ref().and_then(|d| d.get("chain")).is_none()
}

/// Streams one file into `checker`; returns its record count and first and last seq.
fn feed(
    checker: &mut Checker,
    path: &Path,
    file_start: bool,
    each: &mut impl FnMut(&Entry),
) -> Result<(u64, Option<(u64, u64)>), AuditError> {
    let mut lines = open_lines(path)?;
    checker.file_start = file_start;
    let mut records = 0;
    let mut seqs: Option<(u64, u64)> = None;
    while let Some((line_no, raw)) = lines
        .next_line()
        .map_err(|e| AuditError::io(path, "cannot read", e))?
    {
        match raw {
            RawLine::TooLong(len) => checker.malformed(line_no, None, &Fault::TooLong(len)),
            RawLine::Text { bytes, terminated } => match line::parse_read(bytes, terminated) {
                Ok(parsed) => {
                    each(&parsed.entry);
                    records += 1;
                    let seq = parsed.entry.seq;
                    seqs = Some(seqs.map_or((seq, seq), |(first, _)| (first, seq)));
                    checker.record(line_no, parsed.entry, parsed.intact);
                }
                Err(fault) => checker.malformed(line_no, Some(bytes), &fault),
            },
        }
    }
    checker.file_start = false;
    Ok((records, seqs))
}
