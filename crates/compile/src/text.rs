//! Text building blocks shared by both dialects: comments that cannot be broken out of, quoted
//! names for display, line wrapping.

/// Width that comment paragraphs are wrapped to.
pub(crate) const WIDTH: usize = 100;

/// Policy text made safe for a `--` comment: control characters (a newline would end the comment
/// and let the rest run as SQL) are shown escaped.
pub(crate) fn comment_safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    safe
}

/// A name as shown in comments: in double quotes, inner double quotes doubled (as SQL writes an
/// identifier), control characters escaped.
pub(crate) fn shown(name: &str) -> String {
    format!("\"{}\"", comment_safe(&name.replace('"', "\"\"")))
}

/// Several names as shown in comments: `"a", "b"`.
pub(crate) fn shown_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(shown).collect::<Vec<_>>().join(", ")
}

/// A SQL string literal (`'it''s'`), for PostgreSQL with `standard_conforming_strings = on` and
/// for Oracle alike: only the single quote is special. A NUL, which neither database accepts in
/// text, becomes U+FFFD.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''").replace('\0', "\u{fffd}"))
}

/// Append `paragraph` to `out` as comment lines starting with `prefix` (e.g. `"-- "` or
/// `"--   "`), wrapped at [`WIDTH`] columns; `continuation` starts the lines after the first.
/// Lines never end with a hyphen (SQL*Plus reads a trailing hyphen as a line continuation) or
/// with white space.
pub(crate) fn comment(out: &mut String, prefix: &str, continuation: &str, paragraph: &str) {
    let paragraph = comment_safe(paragraph);
    let mut line = String::from(prefix);
    let mut empty = true;
    let mut words = paragraph.split(' ').filter(|w| !w.is_empty()).peekable();
    while let Some(word) = words.next() {
        // Keep a word that ends with a hyphen together with the next one.
        let mut unit = word.to_owned();
        while unit.ends_with('-') {
            match words.next() {
                Some(next) => {
                    unit.push(' ');
                    unit.push_str(next);
                }
                None => {
                    unit.push('.');
                    break;
                }
            }
        }
        let needed = if empty { unit.len() } else { unit.len() + 1 };
        if !empty && line.chars().count() + needed > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(continuation);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&unit);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Append a `--` line, empty or as given (no wrapping).
pub(crate) fn comment_line(out: &mut String, text: &str) {
    let text = comment_safe(text);
    if text.is_empty() {
        out.push_str("--\n");
    } else {
        out.push_str(format!("-- {text}").trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn comments_cannot_be_broken_out_of() {
        let mut out = String::new();
        comment(&mut out, "-- ", "-- ", "rule \"x\nDROP TABLE t; --\"\r");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("\\n"), "{out}");
        assert_eq!(shown("a\"b\nc"), "\"a\"\"b\\nc\"");
    }

    #[test]
    fn long_paragraphs_wrap_and_never_end_a_line_with_a_hyphen() {
        let mut out = String::new();
        let text = "word ".repeat(40) + "pre- and post- end-";
        comment(&mut out, "-- ", "--   ", &text);
        for line in out.lines() {
            assert!(line.chars().count() <= WIDTH, "{line}");
            assert!(!line.ends_with('-'), "{line}");
            assert!(line.starts_with("-- "), "{line}");
        }
        assert!(out.lines().count() > 1);
        assert!(out.contains("end-."), "{out}");
    }

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(literal("o'brien"), "'o''brien'");
        assert_eq!(literal("a\0b"), "'a\u{fffd}b'");
    }
}
