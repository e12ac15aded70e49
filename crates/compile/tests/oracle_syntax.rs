//! The Oracle output is checked for syntax by a recognizer written for exactly the forms
//! `curfew compile --dialect oracle` emits (no Oracle server is available to run it):
//!
//! - `SET DEFINE OFF` (a SQL*Plus command, on a line of its own);
//! - `CREATE PROFILE name LIMIT resource value ...;` and `ALTER PROFILE` likewise, where
//!   resource is `IDLE_TIME`, `CONNECT_TIME` or `SESSIONS_PER_USER` (each at most once) and value
//!   is a positive integer, `UNLIMITED` or `DEFAULT`;
//! - `ALTER USER name PROFILE name;` naming a profile created earlier in the script;
//! - `ALTER SYSTEM SET RESOURCE_LIMIT = TRUE|FALSE [SCOPE = MEMORY|SPFILE|BOTH];`;
//! - comments (`-- ...` and `/* ... */`), never ending a line with a hyphen (SQL*Plus's
//!   continuation mark);
//! - names: unquoted (a letter, then letters, digits, `_`, `$`, `#`) or quoted `"..."` by
//!   Oracle's rules: 1 to 128 bytes, no double quote or NUL inside;
//! - a statement ends with `;` at the end of a line, and has no blank line inside (SQL*Plus
//!   would end it there).
//!
//! After the `-- ==== sqlnet.ora` marker, only comments follow; the `-- NAME = value` lines in
//! them are the sqlnet.ora lines, each `SQLNET.EXPIRE_TIME` (minutes) or
//! `SQLNET.INBOUND_CONNECT_TIMEOUT` (seconds) with a positive integer.
//!
//! Anything else is rejected, and deliberately broken inputs check that it is.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

const EXAMPLE: &str = include_str!("../../../examples/curfew.toml");
const GOLDEN: &str = include_str!("golden/examples-oracle.sql");
const SQLNET_MARKER: &str = "-- ==== sqlnet.ora ";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word, upper-cased.
    Word(String),
    /// A quoted name, as written between the quotes.
    Quoted(String),
    Number(u64),
    Equals,
    Semicolon,
}

#[derive(Debug, Clone)]
struct Located {
    token: Token,
    line: usize,
}

/// What a script does, once recognized.
#[derive(Debug, Default, PartialEq, Eq)]
struct Script {
    created: Vec<String>,
    altered: Vec<String>,
    /// (user, profile)
    users: Vec<(String, String)>,
    resource_limit: Option<bool>,
    define_off: bool,
    sqlnet: BTreeMap<String, u64>,
}

fn recognize(text: &str) -> Result<Script, String> {
    let (sql, sqlnet) = match text.find(SQLNET_MARKER) {
        Some(at) => (&text[..at], Some(&text[at..])),
        None => (text, None),
    };
    let mut script = Script::default();
    let mut statement_lines: Vec<(usize, &str)> = Vec::new();
    let mut in_block_comment = false;
    for (index, line) in sql.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.ends_with('-') && !in_block_comment {
            return Err(format!(
                "line {number}: ends with a hyphen (SQL*Plus continuation)"
            ));
        }
        if statement_lines.is_empty() && !in_block_comment {
            if trimmed.is_empty() || trimmed.starts_with("--") {
                continue;
            }
            if trimmed.to_ascii_uppercase().starts_with("SET ") {
                if trimmed.eq_ignore_ascii_case("SET DEFINE OFF") {
                    script.define_off = true;
                    continue;
                }
                return Err(format!(
                    "line {number}: unknown SQL*Plus command {trimmed:?}"
                ));
            }
        }
        if trimmed.is_empty() && !statement_lines.is_empty() {
            return Err(format!("line {number}: blank line inside a statement"));
        }
        statement_lines.push((number, line));
        in_block_comment = block_comment_open(line, in_block_comment);
        let tokens = tokenize(&statement_lines)?;
        if tokens.is_empty() {
            // Only comments so far.
            if !in_block_comment {
                statement_lines.clear();
            }
            continue;
        }
        if let Some(last) = tokens.last()
            && last.token == Token::Semicolon
            && last.line == number
            && !in_block_comment
        {
            if tokens
                .iter()
                .filter(|t| t.token == Token::Semicolon)
                .count()
                != 1
            {
                return Err(format!("line {number}: more than one statement"));
            }
            statement(&tokens[..tokens.len() - 1], &mut script)?;
            statement_lines.clear();
        } else if tokens.iter().any(|t| t.token == Token::Semicolon) {
            return Err(format!("line {number}: text after the ';'"));
        }
    }
    if in_block_comment {
        return Err("a /* comment is not closed".into());
    }
    if let Some((number, _)) = statement_lines.first() {
        return Err(format!("line {number}: statement without a ';'"));
    }
    if let Some(section) = sqlnet {
        script.sqlnet = sqlnet_lines(section)?;
    }
    Ok(script)
}

/// Whether a `/*` comment is still open after `line`.
fn block_comment_open(line: &str, mut open: bool) -> bool {
    let mut rest = line;
    loop {
        if open {
            match rest.find("*/") {
                Some(at) => {
                    rest = &rest[at + 2..];
                    open = false;
                }
                None => return true,
            }
        } else {
            let line_comment = rest.find("--");
            let block = rest.find("/*");
            match (block, line_comment) {
                (Some(b), Some(l)) if l < b => return false,
                (Some(b), _) => {
                    rest = &rest[b + 2..];
                    open = true;
                }
                (None, _) => return false,
            }
        }
    }
}

fn tokenize(lines: &[(usize, &str)]) -> Result<Vec<Located>, String> {
    let mut tokens = Vec::new();
    let mut in_block = false;
    for (number, line) in lines {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if in_block {
                if c == '*' && next == Some('/') {
                    in_block = false;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            let here = |token| Located {
                token,
                line: *number,
            };
            match c {
                ' ' | '\t' | '\r' => i += 1,
                '-' if next == Some('-') => break,
                '/' if next == Some('*') => {
                    in_block = true;
                    i += 2;
                }
                ';' => {
                    tokens.push(here(Token::Semicolon));
                    i += 1;
                }
                '=' => {
                    tokens.push(here(Token::Equals));
                    i += 1;
                }
                '"' => {
                    let end = chars[i + 1..]
                        .iter()
                        .position(|c| *c == '"')
                        .ok_or_else(|| format!("line {number}: unterminated quoted name"))?;
                    let name: String = chars[i + 1..i + 1 + end].iter().collect();
                    if name.is_empty() || name.len() > 128 || name.contains('\0') {
                        return Err(format!(
                            "line {number}: quoted name {name:?} must be 1 to 128 bytes without NUL"
                        ));
                    }
                    i += end + 2;
                    if chars.get(i) == Some(&'"') {
                        return Err(format!(
                            "line {number}: a quoted name cannot contain a double quote"
                        ));
                    }
                    tokens.push(here(Token::Quoted(name)));
                }
                c if c.is_ascii_digit() => {
                    let len = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let digits: String = chars[i..i + len].iter().collect();
                    if chars
                        .get(i + len)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '.')
                    {
                        return Err(format!("line {number}: malformed number after {digits}"));
                    }
                    let n = digits
                        .parse()
                        .map_err(|_| format!("line {number}: number {digits} too large"))?;
                    tokens.push(here(Token::Number(n)));
                    i += len;
                }
                c if c.is_ascii_alphabetic() => {
                    let len = chars[i..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '#'))
                        .count();
                    let word: String = chars[i..i + len].iter().collect();
                    if word.len() > 128 {
                        return Err(format!("line {number}: name longer than 128 bytes"));
                    }
                    tokens.push(here(Token::Word(word.to_ascii_uppercase())));
                    i += len;
                }
                other => return Err(format!("line {number}: unexpected character {other:?}")),
            }
        }
    }
    Ok(tokens)
}

/// A name token: an unquoted word (Oracle upper-cases it) or a quoted name (as written).
fn name(token: Option<&Located>) -> Result<String, String> {
    match token.map(|t| &t.token) {
        Some(Token::Quoted(n)) | Some(Token::Word(n)) => Ok(n.clone()),
        other => Err(format!("expected a name, found {other:?}")),
    }
}

fn keyword(token: Option<&Located>, word: &str) -> Result<(), String> {
    match token.map(|t| &t.token) {
        Some(Token::Word(w)) if w == word => Ok(()),
        other => Err(format!("expected {word}, found {other:?}")),
    }
}

fn statement(tokens: &[Located], script: &mut Script) -> Result<(), String> {
    let line = tokens.first().map_or(0, |t| t.line);
    let at = |e: String| format!("statement at line {line}: {e}");
    let mut t = tokens.iter();
    let first = t.next();
    let second = t.next();
    match (first.map(|t| &t.token), second.map(|t| &t.token)) {
        (Some(Token::Word(a)), Some(Token::Word(b)))
            if b == "PROFILE" && (a == "CREATE" || a == "ALTER") =>
        {
            let profile = name(t.next()).map_err(at)?;
            keyword(t.next(), "LIMIT").map_err(at)?;
            let mut seen = Vec::new();
            while let Some(resource) = t.next() {
                let resource = match &resource.token {
                    Token::Word(w)
                        if ["IDLE_TIME", "CONNECT_TIME", "SESSIONS_PER_USER"]
                            .contains(&w.as_str()) =>
                    {
                        w.clone()
                    }
                    other => return Err(at(format!("unknown profile resource {other:?}"))),
                };
                if seen.contains(&resource) {
                    return Err(at(format!("{resource} given twice")));
                }
                match t.next().map(|t| &t.token) {
                    Some(Token::Number(n)) if *n > 0 => {}
                    Some(Token::Word(w)) if w == "UNLIMITED" || w == "DEFAULT" => {}
                    other => return Err(at(format!("bad value {other:?} for {resource}"))),
                }
                seen.push(resource);
            }
            if seen.is_empty() {
                return Err(at("LIMIT without a resource".into()));
            }
            if profile.to_ascii_uppercase().starts_with("C##") {
                return Err(at("a local profile's name cannot start with C##".into()));
            }
            match a.as_str() {
                "CREATE" => script.created.push(profile),
                _ => {
                    if !script.created.contains(&profile) {
                        return Err(at(format!("ALTER PROFILE {profile} before it is created")));
                    }
                    script.altered.push(profile);
                }
            }
        }
        (Some(Token::Word(a)), Some(Token::Word(b))) if a == "ALTER" && b == "USER" => {
            let user = name(t.next()).map_err(at)?;
            keyword(t.next(), "PROFILE").map_err(at)?;
            let profile = name(t.next()).map_err(at)?;
            if !script.created.contains(&profile) {
                return Err(at(format!(
                    "profile {profile} is not created in the script"
                )));
            }
            script.users.push((user, profile));
        }
        (Some(Token::Word(a)), Some(Token::Word(b))) if a == "ALTER" && b == "SYSTEM" => {
            keyword(t.next(), "SET").map_err(at)?;
            keyword(t.next(), "RESOURCE_LIMIT").map_err(at)?;
            if t.next().map(|t| &t.token) != Some(&Token::Equals) {
                return Err(at("expected =".into()));
            }
            let value = match t.next().map(|t| &t.token) {
                Some(Token::Word(w)) if w == "TRUE" => true,
                Some(Token::Word(w)) if w == "FALSE" => false,
                other => {
                    return Err(at(format!(
                        "RESOURCE_LIMIT must be TRUE or FALSE, not {other:?}"
                    )));
                }
            };
            if let Some(scope) = t.next() {
                keyword(Some(scope), "SCOPE").map_err(at)?;
                if t.next().map(|t| &t.token) != Some(&Token::Equals) {
                    return Err(at("expected = after SCOPE".into()));
                }
                match t.next().map(|t| &t.token) {
                    Some(Token::Word(w)) if ["MEMORY", "SPFILE", "BOTH"].contains(&w.as_str()) => {}
                    other => return Err(at(format!("bad SCOPE {other:?}"))),
                }
            }
            script.resource_limit = Some(value);
        }
        other => return Err(at(format!("not a statement this script emits: {other:?}"))),
    }
    match t.next() {
        None => Ok(()),
        Some(extra) => Err(at(format!("unexpected {:?}", extra.token))),
    }
}

fn sqlnet_lines(section: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut values = BTreeMap::new();
    for line in section.lines() {
        if line.is_empty() {
            continue;
        }
        if line.trim_end().ends_with('-') {
            return Err(format!("sqlnet.ora section: {line:?} ends with a hyphen"));
        }
        let Some(comment) = line.strip_prefix("--") else {
            return Err(format!("sqlnet.ora section: {line:?} is not a comment"));
        };
        let content = comment.trim();
        if !content.starts_with("SQLNET.") || !content.contains(" = ") {
            continue;
        }
        let (parameter, value) = content.split_once(" = ").unwrap_or_default();
        if !["SQLNET.EXPIRE_TIME", "SQLNET.INBOUND_CONNECT_TIMEOUT"].contains(&parameter) {
            return Err(format!("unknown sqlnet.ora parameter {parameter}"));
        }
        let number: u64 = value
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{parameter} = {value:?}: expected a positive integer"))?;
        if values.insert(parameter.to_owned(), number).is_some() {
            return Err(format!("{parameter} given twice"));
        }
    }
    if values.len() != 2 {
        return Err(format!("expected both sqlnet.ora lines, found {values:?}"));
    }
    Ok(values)
}

fn compile(text: &str) -> String {
    let policy = curfew_policy::parse_policy_with(
        "t.toml",
        text,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap()
    .policy;
    curfew_compile::oracle(&policy, "t.toml", "0")
}

#[test]
fn the_golden_oracle_output_is_valid() {
    let script = recognize(GOLDEN).unwrap_or_else(|e| panic!("{e}"));
    let profiles = [
        "CURFEW_1",
        "CURFEW_2",
        "CURFEW_3",
        "CURFEW_1_2",
        "CURFEW_1_3",
        "CURFEW_2_3",
        "CURFEW_1_2_3",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(script.created, profiles);
    assert_eq!(script.altered, profiles);
    assert_eq!(script.resource_limit, Some(true));
    assert!(script.define_off);
    assert_eq!(script.sqlnet["SQLNET.EXPIRE_TIME"], 10);
    assert_eq!(script.sqlnet["SQLNET.INBOUND_CONNECT_TIMEOUT"], 60);
    // The golden file is what the example compiles to now.
    let policy = curfew_policy::parse_policy_with(
        "examples/curfew.toml",
        EXAMPLE,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap()
    .policy;
    let fresh = curfew_compile::oracle(&policy, "examples/curfew.toml", "x");
    assert_eq!(
        recognize(&fresh).unwrap().created,
        script.created,
        "regenerate the golden files"
    );
}

#[test]
fn outputs_for_other_policies_are_valid() {
    let policies = [
        // Named users, rounding, strictest limit, exempt names, a name Oracle cannot hold.
        "[exempt]\nroles = [\"sys_*\"]\n\n\
         [[rule]]\nname = \"a\"\nidle = \"90s\"\nroles = [\"appuser\", \"sys_x\", \"o'brien ü\", \"q\\\"x\"]\n\n\
         [[rule]]\nname = \"b\"\nlifetime = \"1h30s\"\nroles = [\"appuser\"]\n\n\
         [[rule]]\nname = \"c\"\nmax_sessions = 3\nmember_of = [\"humans\"]\n",
        // Five scopes: one profile each.
        &(0..5)
            .map(|i| {
                format!(
                    "[[rule]]\nname = \"r{i}\"\nidle = \"{}m\"\nroles = [\"u{i}\"]\n\n",
                    i + 1
                )
            })
            .collect::<String>(),
        // Nothing maps.
        "[[rule]]\nname = \"a\"\nidle_in_transaction = \"5m\"\n",
        // A rule name and a description that try to break out of comments.
        "[[rule]]\nname = \"x\\n DROP USER y; --\"\ndescription = \"end-\"\nidle = \"1m\"\nroles = [\"a-\"]\n",
    ];
    for text in policies {
        let out = compile(text);
        recognize(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    }
    let out = compile(policies[0]);
    let script = recognize(&out).unwrap();
    assert_eq!(
        script.users,
        vec![
            ("appuser".into(), "CURFEW_1_2".into()),
            ("o'brien ü".into(), "CURFEW_1".into())
        ]
    );
}

#[test]
fn broken_scripts_are_rejected() {
    let ok = "CREATE PROFILE \"P\" LIMIT\n  IDLE_TIME 15;\n";
    assert!(recognize(ok).is_ok());
    let broken = [
        (
            "CREATE PROFILE \"P\" LIMIT\n  IDLE_TIME 15\n",
            "without a ';'",
        ),
        (
            "CREATE PROFILE \"P\" LIMIT IDLE_TIMES 15;\n",
            "unknown profile resource",
        ),
        (
            "CREATE PROFILE \"P\" LIMIT IDLE_TIME 1.5;\n",
            "malformed number",
        ),
        ("CREATE PROFILE \"P\" LIMIT IDLE_TIME 0;\n", "bad value"),
        (
            "CREATE PROFILE \"P\" LIMIT IDLE_TIME 5 IDLE_TIME 6;\n",
            "given twice",
        ),
        ("CREATE PROFILE \"P\" LIMIT;\n", "without a resource"),
        (
            "CREATE PROFILE \"a\"\"b\" LIMIT IDLE_TIME 5;\n",
            "cannot contain a double quote",
        ),
        (
            &format!(
                "CREATE PROFILE \"{}\" LIMIT IDLE_TIME 5;\n",
                "x".repeat(129)
            ),
            "1 to 128 bytes",
        ),
        ("CREATE PROFILE \"\" LIMIT IDLE_TIME 5;\n", "1 to 128 bytes"),
        ("CREATE PROFILE \"C##X\" LIMIT IDLE_TIME 5;\n", "C##"),
        (
            "ALTER PROFILE \"Q\" LIMIT IDLE_TIME 5;\n",
            "before it is created",
        ),
        ("ALTER USER \"kim\" PROFILE \"NOPE\";\n", "not created"),
        ("ALTER SYSTEM SET RESOURCE_LIMIT = YES;\n", "TRUE or FALSE"),
        (
            "ALTER SYSTEM SET RESOURCE_LIMIT = TRUE SCOPE = EVERYWHERE;\n",
            "bad SCOPE",
        ),
        ("DROP PROFILE \"P\";\n", "not a statement"),
        (
            "CREATE PROFILE \"P\" LIMIT\n\n  IDLE_TIME 15;\n",
            "blank line",
        ),
        ("-- a comment that ends with a hyphen -\n", "hyphen"),
        ("/* never closed\n", "not closed"),
        (
            "CREATE PROFILE \"P\" LIMIT IDLE_TIME 5; ALTER SYSTEM SET RESOURCE_LIMIT = TRUE;\n",
            "more than one",
        ),
        ("SET ECHO ON\n", "unknown SQL*Plus command"),
        (
            "CREATE PROFILE 'P' LIMIT IDLE_TIME 5;\n",
            "unexpected character",
        ),
    ];
    for (text, why) in broken {
        let text = format!("{ok}{text}");
        match recognize(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => assert!(
                e.contains(why),
                "{text}\nrejected for {e:?}, expected {why:?}"
            ),
        }
    }
    let sqlnet_broken = [
        (
            "-- SQLNET.EXPIRE_TIME = 10m\n-- SQLNET.INBOUND_CONNECT_TIMEOUT = 60\n",
            "positive integer",
        ),
        ("-- SQLNET.EXPIRE_TIME = 10\n", "both sqlnet.ora lines"),
        (
            "-- SQLNET.EXPIRE_TIME = 10\n-- SQLNET.INBOUND_CONNECT_TIMEOUT = 60\nALTER SYSTEM SET RESOURCE_LIMIT = TRUE;\n",
            "not a comment",
        ),
        (
            "-- SQLNET.EXPIRE_TIMES = 10\n-- SQLNET.INBOUND_CONNECT_TIMEOUT = 60\n",
            "unknown sqlnet.ora parameter",
        ),
    ];
    for (section, why) in sqlnet_broken {
        let text = format!("{ok}{SQLNET_MARKER}====\n{section}");
        match recognize(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => assert!(
                e.contains(why),
                "{text}\nrejected for {e:?}, expected {why:?}"
            ),
        }
    }
    // Damaging the golden file is noticed too.
    let damaged = GOLDEN.replacen("SESSIONS_PER_USER 1;", "SESSIONS_PER_USER 1", 1);
    assert!(recognize(&damaged).is_err());
    let damaged = GOLDEN.replacen("-- SQLNET.EXPIRE_TIME = 10", "SQLNET.EXPIRE_TIME = 10", 1);
    assert!(recognize(&damaged).is_err());
}
