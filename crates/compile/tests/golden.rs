//! Golden tests: the output for `examples/curfew.toml`, in both dialects, is exactly the
//! checked-in file. `CURFEW_UPDATE_GOLDEN=1 cargo test -p curfew-compile --test golden`
//! rewrites the files instead; review the diff before committing it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const EXAMPLE: &str = include_str!("../../../examples/curfew.toml");
const SOURCE: &str = "examples/curfew.toml";

fn example() -> (curfew_policy::Policy, String) {
    let policy = curfew_policy::parse_policy_with(
        SOURCE,
        EXAMPLE,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap()
    .policy;
    let sha256 = Sha256::digest(EXAMPLE.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (policy, sha256)
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("CURFEW_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .map_or_else(
                || expected.lines().count().min(actual.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "the output differs from {} (first at line {line}):\n  expected: {:?}\n  actual:   {:?}\n\
             If the change is intended, rewrite the golden file with\n  \
             CURFEW_UPDATE_GOLDEN=1 cargo test -p curfew-compile --test golden\n\
             and review the diff.",
            path.display(),
            expected.lines().nth(line - 1).unwrap_or("<end of file>"),
            actual.lines().nth(line - 1).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn postgres_output_for_the_example_is_the_golden_file() {
    let (policy, sha256) = example();
    check(
        "examples-postgres.sql",
        &curfew_compile::postgres(&policy, SOURCE, &sha256),
    );
}

#[test]
fn oracle_output_for_the_example_is_the_golden_file() {
    let (policy, sha256) = example();
    check(
        "examples-oracle.sql",
        &curfew_compile::oracle(&policy, SOURCE, &sha256),
    );
}

#[test]
fn the_output_is_deterministic_and_names_the_file_and_its_hash() {
    let (policy, sha256) = example();
    for dialect in [
        curfew_compile::Dialect::Postgres,
        curfew_compile::Dialect::Oracle,
    ] {
        let first = curfew_compile::compile(&policy, dialect, SOURCE, &sha256);
        let second = curfew_compile::compile(&policy, dialect, SOURCE, &sha256);
        assert_eq!(first, second);
        assert!(first.contains(&format!("-- Policy: {SOURCE}\n")), "{first}");
        assert!(
            first.contains(&format!("-- SHA-256: {sha256}\n")),
            "{first}"
        );
    }
}
