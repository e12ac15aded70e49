//! Column-aligned text tables for terminals: every column padded to its widest cell except the
//! last, which runs free (it holds sentences).

/// A Markdown table cell: pipes escaped, line breaks flattened.
pub(crate) fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
}
