//! Streaming a log line by line, for `audit show` and for verification.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::AuditError;
use crate::line;
use crate::problem::Problem;
use crate::record::Entry;

/// Longest line kept in memory; records are a few hundred bytes, so anything longer is
/// damage, and capping it keeps a hostile file from exhausting memory.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;

/// One line of the file.
pub(crate) enum RawLine<'a> {
    /// The line's bytes without `\n`; `terminated` is false for a last line without `\n`.
    Text { bytes: &'a [u8], terminated: bool },
    /// A line longer than [`MAX_LINE`]; its length in bytes.
    TooLong(u64),
}

/// Splits a reader into lines without holding more than one (capped) line in memory.
pub(crate) struct Lines<R> {
    reader: R,
    line_no: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R) -> Self {
        Lines {
            reader,
            line_no: 0,
            buf: Vec::new(),
        }
    }

    /// The next line and its 1-based number, or `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<(u64, RawLine<'_>)>> {
        self.buf.clear();
        let mut len: u64 = 0;
        let mut terminated = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let (take, used) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, i + 1),
                None => (available.len(), available.len()),
            };
            let room = (MAX_LINE + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&available[..take.min(room)]);
            len += take as u64;
            self.reader.consume(used);
            if used > take {
                terminated = true;
                break;
            }
        }
        if len == 0 && !terminated {
            return Ok(None);
        }
        self.line_no += 1;
        let raw = if self.buf.len() > MAX_LINE {
            RawLine::TooLong(len)
        } else {
            RawLine::Text {
                bytes: &self.buf,
                terminated,
            }
        };
        Ok(Some((self.line_no, raw)))
    }
}

/// Opens `path` for streaming.
pub(crate) fn open_lines(path: &Path) -> Result<Lines<BufReader<File>>, AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, "cannot open for reading", e))?;
    Ok(Lines::new(BufReader::with_capacity(64 * 1024, file)))
}

/// Parses one raw line into an entry or a Malformed problem. Hashes are not checked here
/// (that is [`crate::verify`]'s job); this is for displaying a log.
fn to_entry(line_no: u64, raw: RawLine<'_>) -> Result<Entry, Problem> {
    match raw {
        RawLine::TooLong(len) => Err(Problem::malformed(
            line_no,
            None,
            &line::Fault::TooLong(len),
        )),
        RawLine::Text { bytes, terminated } => line::parse_read(bytes, terminated)
            .map(|parsed| parsed.entry)
            .map_err(|fault| Problem::malformed(line_no, line::salvage(bytes).0, &fault)),
    }
}

/// An iterator over the lines of a log: each item is an entry, or the reason a line is not
/// one, or an I/O error (after which the iterator ends).
pub struct Entries {
    path: PathBuf,
    lines: Option<Lines<BufReader<File>>>,
}

impl Iterator for Entries {
    type Item = Result<Result<Entry, Problem>, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        let lines = self.lines.as_mut()?;
        match lines.next_line() {
            Ok(Some((line_no, raw))) => Some(Ok(to_entry(line_no, raw))),
            Ok(None) => {
                self.lines = None;
                None
            }
            Err(e) => {
                self.lines = None;
                Some(Err(AuditError::io(&self.path, "cannot read", e)))
            }
        }
    }
}

/// Streams the entries of the log at `path` (for large files; see [`read`]).
pub fn entries(path: &Path) -> Result<Entries, AuditError> {
    Ok(Entries {
        path: path.to_owned(),
        lines: Some(open_lines(path)?),
    })
}

/// Reads the whole log at `path`: one item per line, in file order. Lines that are not
/// records come back as [`Problem`]s of kind [`crate::ProblemKind::Malformed`]. Hashes and
/// links are not checked; use [`crate::verify`] for that.
pub fn read(path: &Path) -> Result<Vec<Result<Entry, Problem>>, AuditError> {
    entries(path)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line number and (bytes, terminated), or `None` for a too-long line.
    type Got = (u64, Option<(Vec<u8>, bool)>);

    fn collect(input: &[u8]) -> Vec<Got> {
        let mut lines = Lines::new(BufReader::with_capacity(3, input));
        let mut out = Vec::new();
        while let Some((n, raw)) = lines.next_line().unwrap() {
            out.push(match raw {
                RawLine::Text { bytes, terminated } => (n, Some((bytes.to_vec(), terminated))),
                RawLine::TooLong(_) => (n, None),
            });
        }
        out
    }

    #[test]
    fn splits_lines_across_buffer_boundaries() {
        let got = collect(b"abcdef\n\nxy");
        assert_eq!(
            got,
            vec![
                (1, Some((b"abcdef".to_vec(), true))),
                (2, Some((Vec::new(), true))),
                (3, Some((b"xy".to_vec(), false))),
            ]
        );
        assert!(collect(b"").is_empty());
        assert_eq!(collect(b"a\n").len(), 1);
    }
}
