//! `curfew compile --dialect postgres --login-trigger` as a user runs it: the script, `-o`, and
//! the usage errors (exit 2) — above all a missing `--on-error`, which has no default.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{run as curfew, text};
use curfew_testkit::TempDir;

const BASE: [&str; 6] = [
    "compile",
    "-c",
    "examples/curfew.toml",
    "--dialect",
    "postgres",
    "--login-trigger",
];

fn with(more: &[&str]) -> std::process::Output {
    let args: Vec<&str> = BASE.iter().copied().chain(more.iter().copied()).collect();
    curfew(&args)
}

#[test]
fn the_login_trigger_needs_an_explicit_on_error_choice() {
    let out = with(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--on-error"),
        "{}",
        text(&out.stderr)
    );
    let out = with(&["--on-error", "maybe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("open"), "{}", text(&out.stderr));
}

#[test]
fn the_login_trigger_options_go_together_and_with_postgres_only() {
    // --on-error and --break-glass mean nothing without --login-trigger.
    for extra in [["--on-error", "open"], ["--break-glass", "oncall"]] {
        let out = curfew(&[
            BASE[0], BASE[1], BASE[2], BASE[3], BASE[4], extra[0], extra[1],
        ]);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(
            text(&out.stderr).contains("--login-trigger"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = curfew(&[
        "compile",
        "-c",
        "examples/curfew.toml",
        "--dialect",
        "oracle",
        "--login-trigger",
        "--on-error",
        "open",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--dialect postgres"),
        "{}",
        text(&out.stderr)
    );
    let out = with(&["--on-error", "open", "--break-glass", ""]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--break-glass"),
        "{}",
        text(&out.stderr)
    );
    let out = with(&["--on-error", "open", "--margin", "2m"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_login_trigger_script_goes_to_stdout_or_the_output_file() {
    let out = with(&["--on-error", "closed", "--break-glass", "oncall"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sql = text(&out.stdout);
    assert!(sql.starts_with("-- curfew compile --dialect postgres --login-trigger\n"));
    assert!(sql.contains("CREATE EVENT TRIGGER curfew_login ON login"));
    assert!(sql.contains("IF who = 'oncall' THEN"));
    assert!(sql.contains("fails closed (--on-error closed)"));
    assert!(sql.ends_with("COMMIT;\n"));

    let dir = TempDir::new("cli", "trigger");
    let path = dir.join("trigger.sql");
    let out = with(&["--on-error", "open", "-o", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("(--on-error open)"));
}
