//! The `curfew` binary as a user runs it: output, messages and exit codes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod common;

use common::{run as curfew, text, workspace};
use curfew_testkit::TempDir;

/// A policy file in a fresh temporary directory, which lives as long as the `TempDir`.
fn policy_file(name: &str, body: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new("cli", name);
    let path = dir.write("curfew.toml", body, 0o644);
    (dir, path)
}

#[test]
fn validate_lists_each_rule_of_the_example() {
    let out = curfew(&["validate", "-c", "examples/curfew.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("examples/curfew.toml: valid: 10 rules, 2 targets"),
        "{stdout}"
    );
    for rule in [
        "inactivity",
        "working-hours",
        "one-session-each",
        "year-end-maintenance",
    ] {
        assert!(
            stdout.contains(&format!("  {rule} ")),
            "{rule} missing from {stdout}"
        );
    }
    assert!(stdout.contains("allow Mon-Fri 07:00-19:00, Sat 08:00-12:00 (America/New_York)"));
}

#[test]
fn validate_reports_every_error_with_its_position_and_exits_2() {
    let (_dir, path) = policy_file(
        "errors",
        "[[rule]]\nname = \"a\"\nidel = \"5m\"\n\n[[rule]]\nname = \"b\"\nlifetime = \"0s\"\n",
    );
    let out = curfew(&["validate", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let p = path.display();
    assert!(
        stderr.contains(&format!(
            "{p}:3:1: unknown key `idel` in rule \"a\"; did you mean `idle`?"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:7:12: `lifetime` in rule \"b\"")),
        "{stderr}"
    );
    assert!(stderr.contains("curfew: 2 errors in"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn config_goes_before_or_after_the_subcommand() {
    let before = curfew(&["-c", "examples/curfew.toml", "validate", "--quiet"]);
    let after = curfew(&["validate", "--quiet", "--config", "examples/curfew.toml"]);
    assert_eq!(before.status.code(), Some(0));
    assert_eq!(after.status.code(), Some(0));
    assert!(text(&before.stdout).is_empty());
}

#[test]
fn a_missing_policy_file_is_a_usage_error() {
    let out = curfew(&["validate", "-c", "no/such/curfew.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read policy file no/such/curfew.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(curfew(&["valdate"]).status.code(), Some(2));
    assert_eq!(
        curfew(&["explain", "--format", "pdf"]).status.code(),
        Some(2)
    );
}

#[test]
fn policy_from_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["validate", "-c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[[target]]\nname = \"db\"\nurl = \"postgresql://a@/postgres?host=/tmp\"\n\n[[rule]]\nname = \"x\"\nidle = \"1m\"\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("<stdin>: valid: 1 rule, 1 target"));
}

/// Issue 13: an empty policy was valid, so a reload with it switched curfew off.
#[test]
fn validate_refuses_an_empty_policy_with_exit_2() {
    let (_dir, path) = policy_file("empty", "");
    let out = curfew(&["validate", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let p = path.display();
    assert!(
        stderr.contains(&format!("{p}:1:1: the policy defines no [[rule]]")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:1:1: the policy names no [[target]]")),
        "{stderr}"
    );
    assert!(stderr.contains("curfew: 2 errors in"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn validate_refuses_a_policy_without_targets_but_explain_and_compile_accept_it() {
    let (_dir, path) = policy_file("no-target", "[[rule]]\nname = \"x\"\nidle = \"1m\"\n");
    let out = curfew(&["validate", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(":1:1: the policy names no [[target]]"),
        "{}",
        text(&out.stderr)
    );
    for args in [vec!["explain"], vec!["compile", "--dialect", "postgres"]] {
        let mut all = args.clone();
        all.extend(["-c", path.to_str().unwrap()]);
        let out = curfew(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(":1:1: warning: the policy names no [[target]]"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let (_rule_less_dir, rule_less) = policy_file("no-rule", "");
    let out = curfew(&[
        "compile",
        "--dialect",
        "postgres",
        "-c",
        rule_less.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_markdown_covers_every_rule_and_names_the_file_hash() {
    let out = curfew(&["explain", "-c", "examples/curfew.toml"]);
    assert_eq!(out.status.code(), Some(0));
    let md = text(&out.stdout);
    assert!(md.starts_with("# Session termination conditions"));
    assert!(md.contains("Defined in `examples/curfew.toml` (SHA-256 `"));
    for (i, rule) in [
        "inactivity",
        "abandoned-transaction",
        "session-lifetime",
        "working-hours",
    ]
    .iter()
    .enumerate()
    {
        assert!(md.contains(&format!("### {}. {rule}", i + 1)), "{rule}");
    }
    assert!(md.contains("for 15 minutes is ended"));
    assert!(md.contains("- **Time zone:** America/New_York"));
    assert!(md.contains("Report only"));
    assert!(md.contains("## Exemptions"));
}

#[test]
fn explain_json_is_a_document_tools_can_read() {
    let out = curfew(&["explain", "-c", "examples/curfew.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["source"], "examples/curfew.toml");
    assert_eq!(doc["sha256"].as_str().unwrap().len(), 64);
    let rules = doc["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 10);
    assert_eq!(rules[0]["name"], "inactivity");
    assert_eq!(rules[0]["warn"], "2 minutes");
    assert_eq!(rules[9]["enforced_by"], "none");
    assert_eq!(rules[9]["enforced"], false);
    assert!(
        rules[9]["enforcement"]
            .as_str()
            .unwrap()
            .starts_with("NOT ENFORCED")
    );
    assert_eq!(rules[0]["controls"][0]["id"], "NIST-800-171-3.1.11");
    assert_eq!(doc["metadata"]["approved_by"], "J. Smith, CISO");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["explain", "-c", "examples/curfew.toml", "--format", "json"])
        .current_dir(workspace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn the_packaged_policy_is_valid() {
    let out = curfew(&["validate", "-c", "packaging/curfew.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid: 3 rules, 1 target"));
}

#[test]
fn completions_cover_every_command_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = curfew(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for command in ["validate", "agent", "lock", "bench", "completions"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    assert_eq!(curfew(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_pages_are_generated_from_the_help() {
    let out = curfew(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.contains(".TH curfew 1"), "{page}");
    assert!(page.contains("curfew\\-agent(1)"), "{page}");

    // A directory that does not exist yet: `--out-dir` creates it.
    let parent = TempDir::new("cli", "man");
    let dir = parent.join("man");
    let out = curfew(&["man", "--out-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let agent = std::fs::read_to_string(dir.join("curfew-agent.1")).unwrap();
    assert!(agent.contains("\\-\\-dry\\-run"), "{agent}");
    assert!(dir.join("curfew-audit-verify.1").exists());
}

/// The long help of every command reads as prose: a string continued across source lines
/// without a backslash once put the source's indentation in the middle of sentences.
#[test]
fn help_text_has_no_source_indentation_in_its_sentences() {
    let top = text(&curfew(&["--help"]).stdout);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 10, "{top}");
    for command in commands {
        let help = text(&curfew(&[&command, "--help"]).stdout);
        let epilogue = help.split("Print help").last().unwrap_or_default();
        for line in epilogue.lines() {
            let inner = line.trim();
            assert!(
                !inner.contains("     "),
                "`curfew {command} --help` has a run of spaces in {line:?}"
            );
        }
    }
}

/// Issue 13: names from the policy reached the terminal raw: an escape sequence ran, a newline
/// forged a line.
#[test]
fn validate_shows_control_characters_in_names_as_escapes() {
    let (_dir, path) = policy_file(
        "escapes",
        "[[target]]\nname = \"db\"\nurl = \"postgresql://a@/postgres?host=/tmp\"\n\n\
         [[rule]]\nname = \"red\\u001b[31m\\nFAKE: valid\"\nidle = \"1m\"\nroles = [\"x\\r\"]\n",
    );
    let out = curfew(&["validate", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  red\\x1b[31m\\nFAKE: valid  idle 1m · roles x\\r\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("FAKE")), "{stdout}");
}
