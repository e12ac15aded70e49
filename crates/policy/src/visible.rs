//! Text from the database or the policy (role, database and application names, rule names,
//! reasons) made safe to print on a terminal: control characters are shown as escapes instead
//! of being obeyed, so that a role named `"\x1b[31m..."` cannot recolour or rewrite the screen
//! and a name holding a newline cannot forge a line of output.
//!
//! JSON output needs none of this (serde escapes control characters); every human-readable
//! output does.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character shown as an escape: `\n`, `\r`, `\t`, `\x1b` (C0 and
/// DEL as `\xNN`), `\u{85}` (C1), and the Unicode characters that reorder or break lines
/// (bidirectional overrides and isolates, line and paragraph separators) as `\u{202e}`.
/// Borrowed when there is nothing to escape. Backslashes are left as they are, so a name that
/// spells `\n` literally reads the same as one holding a newline: readable, never obeyed.
pub fn visible(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// As [`visible`], but line feeds and tabs are kept: for whole documents (Markdown, reports)
/// whose lines are their structure. Names inside them should go through [`visible`] first.
pub fn visible_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && matches!(c, '\n' | '\t');
    if !text.chars().any(|c| needs_escape(c) && !kept(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) || kept(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            visible("kim\x1b[31m\nFAKE\r\t"),
            "kim\\x1b[31m\\nFAKE\\r\\t"
        );
        assert_eq!(visible("a\u{7f}b\u{0}c\u{85}"), "a\\x7fb\\x00c\\u{85}");
        assert_eq!(visible("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(visible("o'brien \"q\" ü \\n"), "o'brien \"q\" ü \\n");
        assert!(matches!(visible("plain name"), Cow::Borrowed(_)));
    }

    #[test]
    fn documents_keep_their_lines() {
        assert_eq!(
            visible_lines("# Title\n\n| a\x1b[2J |\tb\r\n"),
            "# Title\n\n| a\\x1b[2J |\tb\\r\n"
        );
    }
}
