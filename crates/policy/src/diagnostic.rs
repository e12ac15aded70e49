//! Problems found in a policy file, each pinned to a line and column.
//!
//! The parser never stops at the first problem: it collects every error it can find so that a
//! user fixes a file in one round, as a compiler would let them.

use std::fmt;
use std::ops::Range;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The policy is accepted, but something deserves a look.
    Warning,
    /// The policy is rejected.
    Error,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The name of the file (or other source) the policy came from.
    pub source: String,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters, as editors count) of the offending text.
    pub column: usize,
    /// What is wrong and what is expected, as one sentence.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Warning => "warning: ",
            Severity::Error => "",
        };
        write!(
            f,
            "{}:{}:{}: {tag}{}",
            self.source, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a policy that was rejected (at least one is an error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct PolicyErrors {
    /// All diagnostics, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyErrors {
    /// The errors only (warnings left out).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects diagnostics against one source text, turning byte spans into line:column.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    source: &'a str,
    text: &'a str,
    found: Vec<(Range<usize>, Severity, String)>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(source: &'a str, text: &'a str) -> Self {
        Self {
            source,
            text,
            found: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.found.push((span, Severity::Error, message.into()));
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.found.push((span, Severity::Warning, message.into()));
    }

    /// The 1-based line of a byte offset, for "first defined at line N".
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    pub(crate) fn error_count(&self) -> usize {
        self.found
            .iter()
            .filter(|(_, s, _)| *s == Severity::Error)
            .count()
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.found.iter().any(|(_, s, _)| *s == Severity::Error)
    }

    /// The diagnostics in file order (stable for equal positions).
    pub(crate) fn finish(self) -> Vec<Diagnostic> {
        let mut found = self.found;
        found.sort_by_key(|(span, _, _)| span.start);
        found
            .into_iter()
            .map(|(span, severity, message)| {
                let (line, column) = line_col(self.text, span.start);
                Diagnostic {
                    severity,
                    source: self.source.to_owned(),
                    line,
                    column,
                    message,
                }
            })
            .collect()
    }
}

/// 1-based line and column (counted in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| {
            *d <= (c.len() / 3).max(1) || (word.len() >= 3 && c.contains(word.as_str()))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so `idel` is one
/// edit from `idle`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "a = 1\nné = \"x\"\n";
        let offset = text.find('=').unwrap();
        assert_eq!(line_col(text, offset), (1, 3));
        let second = text.rfind('=').unwrap();
        assert_eq!(line_col(text, second), (2, 4));
    }

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_words() {
        let keys = ["idle", "idle_in_transaction", "lifetime", "allow", "deny"];
        assert_eq!(did_you_mean("idel", &keys), Some("idle"));
        assert_eq!(did_you_mean("lifetim", &keys), Some("lifetime"));
        assert_eq!(
            did_you_mean("idle_in_transction", &keys),
            Some("idle_in_transaction")
        );
        assert_eq!(did_you_mean("colour", &keys), None);
    }
}
