//! Quoting for SQL text that cannot take bind parameters (account names in `GRANT`, values in
//! a compound statement), correct whatever the session's SQL mode.

/// An identifier in backquotes, backquotes doubled: the same under every SQL mode
/// (`ANSI_QUOTES` changes what `"` means, not what `` ` `` means).
pub fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string as a hexadecimal literal converted to utf8mb4: no quote or backslash in it can
/// end it early, whether `NO_BACKSLASH_ESCAPES` is set or not.
pub fn string_literal(text: &str) -> String {
    if text.is_empty() {
        return "''".to_owned();
    }
    let hex: String = text.bytes().map(|b| format!("{b:02X}")).collect();
    format!("CONVERT(X'{hex}' USING utf8mb4)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_strings_cannot_break_out() {
        assert_eq!(quote_identifier("a`b"), "`a``b`");
        assert_eq!(
            string_literal("o'b\\"),
            "CONVERT(X'6F27625C' USING utf8mb4)"
        );
        assert_eq!(string_literal(""), "''");
    }
}
