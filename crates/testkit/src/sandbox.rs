//! Throwaway PostgreSQL clusters as the suites start them: curfew's role created the way the
//! README's least-privilege recipe asks, in one place.

use curfew_sandbox::{Cluster, Options};

/// curfew's role at least privilege: it logs in, reads every session
/// (`pg_read_all_stats`) and may end non-superuser sessions (`pg_signal_backend`).
pub const AGENT_ROLE: &str = "CREATE ROLE curfew_agent LOGIN;
GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;";

/// A started cluster with `options`.
///
/// # Panics
/// When the cluster cannot start, with the sandbox's reason (missing server binaries, a port):
/// a test that needs a server fails loudly rather than skip.
pub fn started(options: Options) -> Cluster {
    Cluster::start(options).unwrap_or_else(|e| panic!("{e}"))
}

/// A trust-authentication cluster with curfew's role ([`AGENT_ROLE`]), then `more_sql` (other
/// roles a test needs; empty for none).
///
/// # Panics
/// When the cluster cannot start or the SQL fails.
pub fn cluster_with_agent_role(more_sql: &str) -> Cluster {
    let cluster = started(Options::default());
    let sql = format!("{AGENT_ROLE}\n{more_sql}");
    if let Err(e) = cluster.psql(&sql) {
        panic!("{e}");
    }
    cluster
}
