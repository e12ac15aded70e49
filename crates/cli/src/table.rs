//! Column-aligned text tables for terminals: every column padded to its widest cell except the
//! last, which runs free (it holds sentences).

use curfew_policy::visible;

/// A Markdown table cell: pipes escaped, line breaks flattened, other control characters shown
/// as escapes.
pub(crate) fn md_cell(text: &str) -> String {
    curfew_policy::visible(&text.replace('\n', " ")).replace('|', "\\|")
}

/// A Markdown table's header row and separator, with a line break after each.
pub(crate) fn md_header(columns: &[&str]) -> String {
    format!(
        "| {} |\n|{}\n",
        columns.join(" | "),
        " --- |".repeat(columns.len())
    )
}

/// Render `headers` and `rows`, each line starting with `indent`. `flags` (if any) appends a
/// suffix to a row's line, e.g. a marker for an unexpected outcome.
pub(crate) fn render(
    indent: &str,
    headers: &[&str],
    rows: &[Vec<String>],
    flags: &[&str],
) -> String {
    // Cells hold names from the database and the policy: a role named "\x1b[2J" or "a\nb"
    // must show as such, not clear the screen or forge a row.
    let escaped: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| visible(c).into_owned()).collect())
        .collect();
    let rows = &escaped;
    let columns = headers.len();
    let widths: Vec<usize> = (0..columns.saturating_sub(1))
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    let mut line = |cells: &[&str], flag: &str| {
        let mut l = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            match widths.get(i) {
                Some(w) => l.push_str(&format!("{cell:<w$}  ")),
                None => l.push_str(cell),
            }
        }
        let end = l.trim_end().len();
        l.truncate(end);
        l.push_str(flag);
        text.push_str(&l);
        text.push('\n');
    };
    line(headers, "");
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells, flags.get(i).copied().unwrap_or(""));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_the_last_runs_free() {
        let rows = vec![
            vec![
                "1".to_owned(),
                "kim".to_owned(),
                "a long sentence".to_owned(),
            ],
            vec!["1234".to_owned(), "x".to_owned(), "short".to_owned()],
        ];
        let text = super::render("  ", &["PID", "ROLE", "WHY"], &rows, &["", " <--"]);
        assert_eq!(
            text,
            "  PID   ROLE  WHY\n  1     kim   a long sentence\n  1234  x     short <--\n"
        );
    }

    /// Issue 13: a role named with a terminal escape and a newline recoloured the terminal and
    /// forged a row.
    #[test]
    fn control_characters_in_cells_are_escaped_and_aligned() {
        let rows = vec![
            vec![
                "1".to_owned(),
                "\x1b[31mkim\nFAKE".to_owned(),
                "ends".to_owned(),
            ],
            vec!["2".to_owned(), "lee".to_owned(), "why\r".to_owned()],
        ];
        let text = super::render("", &["PID", "ROLE", "WHY"], &rows, &[]);
        assert_eq!(
            text,
            "PID  ROLE               WHY\n1    \\x1b[31mkim\\nFAKE  ends\n2    lee                why\\r\n"
        );
        assert!(!text.contains('\x1b') && !text.contains('\r'));
        assert_eq!(super::md_cell("a|b\x1b[0m\nc"), "a\\|b\\x1b[0m c");
    }
}
