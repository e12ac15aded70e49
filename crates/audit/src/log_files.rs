//! The files of one audit log: the live file and its rotated siblings, read together as one
//! chain by `curfew audit verify` and `curfew report`.

use std::path::{Path, PathBuf};

/// The files of the policy's `audit_log`: the log and its rotated files beside it
/// (`audit.jsonl.1`, `audit.jsonl-20261127`, …; compressed ones cannot be read and are left
/// out), so that anchors naming records in rotated files are not taken for a log cut from
/// the front.
pub fn log_set(log: &Path) -> Vec<PathBuf> {
    let mut set = vec![log.to_path_buf()];
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return set;
    };
    let name = name.to_string_lossy().into_owned();
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return set;
    };
    let mut rotated: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.len() > name.len()
                && n.starts_with(&name)
                && matches!(n.as_bytes()[name.len()], b'.' | b'-')
                && !n.ends_with(".agent-lock")
                && ![".gz", ".xz", ".zst", ".bz2", ".lz4"]
                    .iter()
                    .any(|ext| n.ends_with(ext))
        })
        .map(|n| log.with_file_name(n))
        .collect();
    rotated.sort();
    set.extend(rotated);
    set
}

#[cfg(test)]
mod tests {
    use curfew_testkit::TempDir;

    use super::*;

    #[test]
    fn rotated_files_beside_the_log_join_it_and_compressed_ones_do_not() {
        let dir = TempDir::new("audit-log-files", "rotated");
        for name in [
            "audit.jsonl",
            "audit.jsonl.1",
            "audit.jsonl-20261127",
            "audit.jsonl.2.gz",
            "audit.jsonl.agent-lock",
            "audit.jsonlx",
            "other.jsonl",
        ] {
            dir.write(name, "", 0o600);
        }
        let log = dir.join("audit.jsonl");
        assert_eq!(
            log_set(&log),
            [
                log.clone(),
                dir.join("audit.jsonl-20261127"),
                dir.join("audit.jsonl.1"),
            ]
        );
    }
}
