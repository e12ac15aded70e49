//! Finding one major version of PostgreSQL's binaries for the suites that need a given version
//! (protocol 3.2 needs 18; the login trigger needs 17 and 18): found, or the test fails saying
//! how to get them, never skips.

use std::path::{Path, PathBuf};

/// The environment variable naming PostgreSQL `major`'s bin directory.
pub fn pg_bin_variable(major: u32) -> String {
    format!("CURFEW_PG{major}_BIN")
}

/// The bin directory of PostgreSQL `major` (server, psql and the libpq they load): from
/// `CURFEW_PG<major>_BIN`, else Debian's `/usr/lib/postgresql/<major>/bin`, else the cache
/// `scripts/pg-versions` fills (`CURFEW_PG_CACHE`, `/var/cache/curfew/postgresql` for root,
/// `~/.cache/curfew/postgresql` otherwise).
///
/// # Panics
/// When none has `psql` and `postgres`, naming the variable and how to get them: a test that
/// needs this version fails rather than skips.
pub fn pg_bin(major: u32) -> PathBuf {
    let variable = pg_bin_variable(major);
    let usable = |dir: &Path| dir.join("psql").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os(&variable).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            usable(&dir),
            "{variable}={} lacks psql or postgres; scripts/pg-versions prints PostgreSQL {major}'s \
             bin directory",
            dir.display()
        );
        return dir;
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if usable(&debian) {
        return debian;
    }
    let mut caches: Vec<PathBuf> = Vec::new();
    if let Some(cache) = std::env::var_os("CURFEW_PG_CACHE") {
        caches.push(cache.into());
    }
    caches.push("/var/cache/curfew/postgresql".into());
    if let Some(home) = std::env::var_os("HOME") {
        caches.push(Path::new(&home).join(".cache/curfew/postgresql"));
    }
    let mut found: Vec<PathBuf> = caches
        .iter()
        .filter_map(|cache| std::fs::read_dir(cache).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.split('.').next() == Some(&major.to_string()) && name.contains('.')
        })
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| usable(dir))
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL {major} is missing: set {variable} to its bin directory (psql, postgres \
             and the libpq they load), e.g. the \"{major} <dir>\" line scripts/pg-versions prints \
             (.ci/run exports it); looked at {}, {} and the caches {caches:?}",
            variable,
            debian.display()
        )
    })
}
