//! Finding where an existing chain ends, reading only the end of the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::AuditError;
use crate::line::GENESIS;
use crate::line::{self, Fault};

/// How much of the file's end is read first; doubled while no complete record is in view.
const FIRST_CHUNK: u64 = 64 * 1024;

/// Where appending continues.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    /// The seq of the next record.
    pub(crate) next_seq: u64,
    /// The hash the next record links to.
    pub(crate) prev: String,
    /// The file does not end with `\n`; one must be written before the next record.
    pub(crate) needs_newline: bool,
    /// What an operator should know about the tail.
    pub(crate) warnings: Vec<String>,
}

/// Outcome of looking at one window of the file's end.
enum Look {
    Done(Tail),
    /// The window starts in the middle of the line that decides; read a bigger one.
    NeedMore,
}

/// Finds the last record of the file `file` of length `len`.
pub(crate) fn scan(file: &File, path: &Path, len: u64) -> Result<Tail, AuditError> {
    scan_with_chunk(file, path, len, FIRST_CHUNK)
}

pub(crate) fn scan_with_chunk(
    file: &File,
    path: &Path,
    len: u64,
    first_chunk: u64,
) -> Result<Tail, AuditError> {
    let mut chunk = first_chunk.max(1);
    loop {
        let start = len.saturating_sub(chunk);
        let size = usize::try_from(len - start).map_err(|_| {
            AuditError::io(
                path,
                "cannot read the end",
                std::io::ErrorKind::OutOfMemory.into(),
            )
        })?;
        let mut buf = vec![0; size];
        file.read_exact_at(&mut buf, start)
            .map_err(|e| AuditError::io(path, "cannot read the end", e))?;
        match look(&buf, start == 0, path)? {
            Look::Done(tail) => return Ok(tail),
            Look::NeedMore => chunk = chunk.saturating_mul(2),
        }
    }
}

/// Where the previous line ends within `buf[..end]`, i.e. where the line ending at `end`
/// starts; `None` if that start lies before the window.
fn line_start(buf: &[u8], end: usize, at_file_start: bool) -> Option<usize> {
    match buf[..end].iter().rposition(|&b| b == b'\n') {
        Some(i) => Some(i + 1),
        None if at_file_start => Some(0),
        None => None,
    }
}

fn look(buf: &[u8], at_file_start: bool, path: &Path) -> Result<Look, AuditError> {
    let shown = path.display();
    let mut warnings = Vec::new();
    let mut end = buf.len();
    let needs_newline = buf.last().is_some_and(|&b| b != b'\n');

    if needs_newline {
        let Some(start) = line_start(buf, end, at_file_start) else {
            return Ok(Look::NeedMore);
        };
        let fragment = &buf[start..end];
        if let Ok(parsed) = line::parse(fragment) {
            // The record is whole; only its newline was lost.
            warnings.push(format!(
                "audit log {shown} ended without a newline after its last record (seq {}); a newline was added",
                parsed.entry.seq
            ));
            return Ok(Look::Done(continue_after(
                parsed.entry.seq,
                parsed.entry.hash,
                parsed.intact,
                true,
                warnings,
                path,
            )));
        }
        warnings.push(format!(
            "audit log {shown} ended with an incomplete line of {} bytes (a write cut off by a crash); it was closed with a newline, the chain continues after the last complete record, and `curfew audit verify` will report that line as malformed",
            fragment.len()
        ));
        end = start;
    }

    // Complete lines, last first. Lines without a hash field are fragments of earlier
    // crashes (closed by an earlier open); a line with a hash field that is not a record is
    // damage, and continuing past it would hide it.
    let mut skipped = 0u64;
    while end > 0 {
        let Some(start) = line_start(buf, end - 1, at_file_start) else {
            return Ok(Look::NeedMore);
        };
        match line::parse(&buf[start..end - 1]) {
            Ok(parsed) => {
                if skipped > 0 {
                    warnings.push(incomplete_lines_warning(path, skipped));
                }
                return Ok(Look::Done(continue_after(
                    parsed.entry.seq,
                    parsed.entry.hash,
                    parsed.intact,
                    needs_newline,
                    warnings,
                    path,
                )));
            }
            Err(Fault::NoHash | Fault::Empty) => {
                skipped += 1;
                end = start;
            }
            Err(fault) => {
                return Err(AuditError::Corrupt {
                    path: path.to_owned(),
                    reason: fault.reason(),
                });
            }
        }
    }
    if !at_file_start {
        return Ok(Look::NeedMore);
    }
    if skipped > 0 {
        warnings.push(incomplete_lines_warning(path, skipped));
    }
    Ok(Look::Done(Tail {
        next_seq: 1,
        prev: GENESIS.to_owned(),
        needs_newline,
        warnings,
    }))
}

fn incomplete_lines_warning(path: &Path, skipped: u64) -> String {
    format!(
        "audit log {} has {skipped} incomplete line(s) after its last complete record (writes cut off by earlier crashes); the chain continues after that record",
        path.display()
    )
}

fn continue_after(
    seq: u64,
    hash: String,
    intact: bool,
    needs_newline: bool,
    mut warnings: Vec<String>,
    path: &Path,
) -> Tail {
    if !intact {
        warnings.push(format!(
            "audit log {}: the last record (seq {seq}) does not match its hash; the chain continues from it, but check the log with `curfew audit verify`",
            path.display()
        ));
    }
    Tail {
        next_seq: seq.saturating_add(1),
        prev: hash,
        needs_newline,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::record::Record;

    /// Scans `text` as a file, starting with a window far smaller than a line so the
    /// window has to grow.
    fn scan_text(name: &str, text: &[u8]) -> Result<Tail, AuditError> {
        let dir = curfew_testkit::TempDir::new("audit-tail", name);
        let path = dir.join("audit.jsonl");
        std::fs::write(&path, text).unwrap();
        let file = File::open(&path).unwrap();
        scan_with_chunk(&file, &path, text.len() as u64, 7)
    }

    fn chain(count: u64) -> (Vec<u8>, String) {
        let mut text = Vec::new();
        let mut prev = GENESIS.to_owned();
        for seq in 1..=count {
            let ts = jiff::Timestamp::from_second(1_800_000_000).unwrap();
            let (line, hash) = line::seal(seq, &prev, &Record::new(ts, Event::LeaderLost)).unwrap();
            text.extend_from_slice(&line);
            prev = hash;
        }
        (text, prev)
    }

    #[test]
    fn finds_the_last_record_with_a_growing_window() {
        let (text, last) = chain(3);
        let tail = scan_text("grow", &text).unwrap();
        assert_eq!((tail.next_seq, tail.prev.as_str()), (4, last.as_str()));
        assert!(!tail.needs_newline && tail.warnings.is_empty());

        let empty = scan_text("empty", b"").unwrap();
        assert_eq!((empty.next_seq, empty.prev.as_str()), (1, GENESIS));
    }

    #[test]
    fn skips_torn_fragments() {
        let (mut text, last) = chain(2);
        text.extend_from_slice(b"{\"seq\":3,\n{\"seq\":3,\"ts\"");
        let tail = scan_text("torn", &text).unwrap();
        assert_eq!((tail.next_seq, tail.prev.as_str()), (3, last.as_str()));
        assert!(tail.needs_newline);
        assert_eq!(tail.warnings.len(), 2);

        let only_fragment = scan_text("fragment", b"{\"seq\":1").unwrap();
        assert_eq!(only_fragment.next_seq, 1);
        assert!(only_fragment.needs_newline);
    }
}
