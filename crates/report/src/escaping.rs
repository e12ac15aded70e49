//! Text made safe for the page's HTML and the Markdown document, and timestamps as both show
//! them: the leaf helpers every renderer (page, Markdown, evidence sections, timeline) shares,
//! apart from the renderers themselves so none of them depends on another for an escape.

use jiff::Timestamp;

/// Escape text for HTML (element content and quoted attribute values): the one escape every
/// fragment built outside the template uses.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Escape `text` for HTML and turn each pair of backticks into `<code>`; an unpaired backtick
/// stays as it is.
pub(crate) fn prose(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut html = String::with_capacity(text.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        let paired = i % 2 == 1 && i + 1 < parts.len();
        if paired {
            html.push_str("<code>");
            html.push_str(&escape(part));
            html.push_str("</code>");
        } else {
            if i % 2 == 1 {
                html.push('`');
            }
            html.push_str(&escape(part));
        }
    }
    html
}

/// "2026-03-01 14:05:09 UTC".
pub(crate) fn time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Text as literal Markdown inline content on one line, safe in a table cell: the characters
/// that start markup (including raw HTML) are backslash-escaped.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '|' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prose;

    #[test]
    fn code_spans_of_the_explanation_become_code_and_everything_stays_escaped() {
        assert_eq!(
            prose("Sessions of roles `analyst_*` or `<b>`, unless exempt."),
            "Sessions of roles <code>analyst_*</code> or <code>&lt;b&gt;</code>, unless exempt."
        );
        assert_eq!(prose("a ` lone <tick>"), "a ` lone &lt;tick&gt;");
        assert_eq!(prose("\"x\" & 'y'"), "&#34;x&#34; &amp; &#39;y&#39;");
    }
}
