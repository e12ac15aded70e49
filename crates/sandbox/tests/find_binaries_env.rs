//! `find_binaries` and `CURFEW_PG_BIN`.
//!
//! Changing this process's environment needs `unsafe` (forbidden here) and
//! would race with parallel tests, so the single test below re-runs this
//! test binary as a child process with the variable set, once per case.
#![allow(clippy::unwrap_used)]

use std::env;
use std::path::PathBuf;
use std::process::Command;

use curfew_sandbox::{Cluster, Options, PG_BIN_ENV, SandboxError, find_binaries};

/// Set in the child process to the case it should check.
const CASE_VAR: &str = "CURFEW_SANDBOX_TEST_CASE";
/// Passes the parent's discovered bin dir to the child.
const EXPECTED_VAR: &str = "CURFEW_SANDBOX_TEST_EXPECTED_BIN";
const TEST_NAME: &str = "curfew_pg_bin_is_honoured";
const MISSING_DIR: &str = "/nonexistent/curfew/pg/bin";

#[test]
fn curfew_pg_bin_is_honoured() {
    if let Ok(case) = env::var(CASE_VAR) {
        let expected = PathBuf::from(env::var_os(EXPECTED_VAR).unwrap());
        check_case(&case, expected);
        return;
    }
    let discovered = find_binaries().unwrap();
    for (case, value) in [
        ("unset", None),
        ("real", Some(discovered.as_os_str())),
        ("missing", Some(MISSING_DIR.as_ref())),
    ] {
        let mut child = Command::new(env::current_exe().unwrap());
        child
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CASE_VAR, case)
            .env(EXPECTED_VAR, &discovered);
        match value {
            Some(value) => child.env(PG_BIN_ENV, value),
            None => child.env_remove(PG_BIN_ENV),
        };
        let output = child.output().unwrap();
        assert!(
            output.status.success(),
            "case {case} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn check_case(case: &str, expected: PathBuf) {
    match case {
        "unset" => {
            let found = find_binaries().unwrap();
            assert!(found.join("initdb").exists(), "{}", found.display());
        }
        "real" => {
            assert_eq!(find_binaries().unwrap(), expected);
            let cluster = Cluster::start(Options::default()).unwrap();
            assert_eq!(cluster.bin_dir(), expected);
            assert_eq!(cluster.psql("select 1").unwrap(), "1");
        }
        "missing" => {
            let err = find_binaries().unwrap_err();
            assert!(matches!(err, SandboxError::NoBinaries(_)), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
            assert!(msg.contains(MISSING_DIR), "{msg}");
            assert!(matches!(
                Cluster::start(Options::default()),
                Err(SandboxError::NoBinaries(_))
            ));
            // An explicit bin_dir takes precedence over the environment.
            let cluster = Cluster::start(Options {
                bin_dir: Some(expected),
                ..Options::default()
            })
            .unwrap();
            assert_eq!(cluster.psql("select 1").unwrap(), "1");
        }
        other => panic!("unknown case {other}"),
    }
}
