//! `curfew compile` as a user runs it: the scripts for the example, `-o`, and errors.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{run as curfew, text, workspace};
use curfew_testkit::TempDir;

#[test]
fn compile_prints_the_golden_scripts_for_the_example() {
    for (dialect, golden) in [
        ("postgres", "examples-postgres.sql"),
        ("oracle", "examples-oracle.sql"),
    ] {
        let out = curfew(&[
            "compile",
            "-c",
            "examples/curfew.toml",
            "--dialect",
            dialect,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let expected =
            std::fs::read_to_string(workspace().join("crates/compile/tests/golden").join(golden))
                .unwrap();
        // The golden files name the example by the same path and hash the CLI computes.
        assert_eq!(text(&out.stdout), expected, "{dialect}");
    }
}

#[test]
fn compile_writes_the_output_file() {
    let dir = TempDir::new("cli", "compile");
    let path = dir.join("native.sql");
    let out = curfew(&[
        "compile",
        "--dialect",
        "postgres",
        "-c",
        "examples/curfew.toml",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("-- curfew compile --dialect postgres\n"));
    assert!(written.ends_with("COMMIT;\n"));

    let out = curfew(&[
        "compile",
        "--dialect",
        "oracle",
        "-c",
        "examples/curfew.toml",
        "-o",
        "/nonexistent-dir/x.sql",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("writing /nonexistent-dir/x.sql"));
}

#[test]
fn compile_needs_a_dialect_and_a_valid_policy() {
    let out = curfew(&["compile", "-c", "examples/curfew.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--dialect"));
    let out = curfew(&[
        "compile",
        "-c",
        "examples/curfew.toml",
        "--dialect",
        "sqlserver",
    ]);
    assert_eq!(out.status.code(), Some(2));
    for dialect in ["mariadb", "mysql"] {
        let out = curfew(&[
            "compile",
            "-c",
            "examples/curfew.toml",
            "--dialect",
            dialect,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with(&format!("-- curfew compile --dialect {dialect}\n")));
    }
    let out = curfew(&["compile", "-c", "no-such-file.toml", "--dialect", "oracle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read policy file"));
}

#[test]
fn compile_margin_sets_the_backstop_and_a_bad_one_exits_2() {
    let args = |margin: &str| {
        curfew(&[
            "compile",
            "-c",
            "examples/curfew.toml",
            "--dialect",
            "postgres",
            "--margin",
            margin,
        ])
    };
    let out = args("2m");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sql = text(&out.stdout);
    assert!(
        sql.contains("'idle_session_timeout', '17min', member_of => ARRAY['humans']"),
        "{sql}"
    );
    let none = text(&args("0").stdout);
    assert!(
        none.contains("'idle_session_timeout', '15min', member_of => ARRAY['humans']"),
        "{none}"
    );
    let bad = args("soon");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--margin"),
        "{}",
        text(&bad.stderr)
    );
}
