//! The PostgreSQL output, applied to a real server: it runs without error (twice: it is
//! idempotent), and the settings read back from the catalogs are what the rules say.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;

use curfew_sandbox::Cluster;

const EXAMPLE: &str = include_str!("../../../examples/curfew.toml");

fn cluster() -> Cluster {
    Cluster::start(Default::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn compile(text: &str) -> String {
    compile_with(text, curfew_compile::Margin::Default)
}

fn compile_with(text: &str, margin: curfew_compile::Margin) -> String {
    let policy = curfew_policy::parse_policy_with(
        "curfew.toml",
        text,
        jiff::tz::db(),
        &[&curfew_postgres::POSTGRES_URLS],
    )
    .unwrap()
    .policy;
    curfew_compile::compile_with(
        &policy,
        curfew_compile::Dialect::Postgres,
        "curfew.toml",
        "0",
        margin,
    )
}

/// Role settings as "role|database" → sorted settings ("a=1,b=2"); database empty for role-wide.
fn settings(cluster: &Cluster) -> BTreeMap<String, String> {
    let rows = cluster
        .psql(
            "SELECT r.rolname, coalesce(d.datname, ''),
                    (SELECT string_agg(c, ',' ORDER BY c) FROM unnest(s.setconfig) c)
             FROM pg_db_role_setting s
             JOIN pg_roles r ON r.oid = s.setrole
             LEFT JOIN pg_database d ON d.oid = s.setdatabase
             ORDER BY 1, 2",
        )
        .unwrap();
    rows.lines()
        .map(|line| {
            let mut parts = line.splitn(3, '|');
            let role = parts.next().unwrap();
            let database = parts.next().unwrap();
            let config = parts.next().unwrap();
            (format!("{role}|{database}"), config.to_owned())
        })
        .collect()
}

/// `rolconnlimit` of every role that has one.
fn connection_limits(cluster: &Cluster) -> BTreeMap<String, i32> {
    cluster
        .psql("SELECT rolname, rolconnlimit FROM pg_roles WHERE rolconnlimit <> -1 ORDER BY 1")
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (role, limit) = l.rsplit_once('|').unwrap();
            (role.to_owned(), limit.parse().unwrap())
        })
        .collect()
}

/// Run `sql` in a new session of `role` in `database` (over TCP, as a client would) and return
/// what it prints.
fn session(cluster: &Cluster, role: &str, database: &str, sql: &str) -> String {
    let mut command = Command::new(cluster.bin_dir().join("psql"));
    command
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            cluster.host(),
        ])
        .args([
            "-p",
            &cluster.port().to_string(),
            "-U",
            role,
            "-d",
            database,
        ])
        .args(["-c", sql]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

const WEIRD: &str = "analyst_o'brien \"q\" ü";

#[test]
fn the_example_applies_and_its_settings_read_back() {
    let cluster = cluster();
    cluster
        .psql(
            "CREATE ROLE appowner NOLOGIN;
             CREATE ROLE appuser LOGIN;
             CREATE ROLE backupuser LOGIN;
             CREATE ROLE humans NOLOGIN;
             CREATE ROLE analyst_kim LOGIN IN ROLE humans;
             CREATE ROLE analyst_lee LOGIN IN ROLE humans;
             CREATE ROLE \"analyst_o'brien \"\"q\"\" ü\" LOGIN IN ROLE humans;
             CREATE ROLE ops NOLOGIN IN ROLE humans;
             CREATE ROLE ops_sam LOGIN IN ROLE ops;
             CREATE ROLE \"analystXkim\" LOGIN;
             CREATE ROLE replicator LOGIN REPLICATION IN ROLE humans;
             CREATE ROLE curfew_agent LOGIN IN ROLE humans;",
        )
        .unwrap();
    let sql = compile(EXAMPLE);
    cluster.psql(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));

    // Issue 13: each timeout is a backstop a margin above curfew's limit (the larger of 1 minute
    // and a tenth), so that the agent ends the session first and records why: 5m + 1m,
    // 15m + 90s, 10m + 1m.
    let humans = "idle_in_transaction_session_timeout=6min,idle_session_timeout=990s";
    let mut expected: BTreeMap<String, String> = [
        "humans",
        "analyst_kim",
        "analyst_lee",
        WEIRD,
        "ops",     // a member of humans
        "ops_sam", // a member through ops
    ]
    .iter()
    .map(|r| (format!("{r}|"), humans.to_owned()))
    .collect();
    expected.insert(
        "appuser|".into(),
        "idle_in_transaction_session_timeout=11min".into(),
    );
    // Not there: replicator and postgres (exempt), curfew_agent (curfew's own role),
    // backupuser (report-only rule), analystXkim ("_" in analyst_* is not a wildcard).
    assert_eq!(settings(&cluster), expected);
    let limits: BTreeMap<String, i32> = [("analyst_kim", 1), ("analyst_lee", 1), (WEIRD, 1)]
        .iter()
        .map(|(r, n)| ((*r).to_owned(), *n))
        .collect();
    assert_eq!(connection_limits(&cluster), limits);

    // A new session of the role gets the settings, and, as the output warns, can switch them off.
    assert_eq!(
        session(
            &cluster,
            "analyst_kim",
            "postgres",
            "SHOW idle_session_timeout"
        ),
        "990s"
    );
    assert_eq!(
        session(
            &cluster,
            "ops_sam",
            "postgres",
            "SHOW idle_in_transaction_session_timeout"
        ),
        "6min"
    );
    assert_eq!(
        session(
            &cluster,
            "analyst_kim",
            "postgres",
            "SET idle_session_timeout = 0; SHOW idle_session_timeout"
        ),
        "0"
    );

    // Applying it again changes nothing.
    cluster.psql(&sql).unwrap();
    assert_eq!(settings(&cluster), expected);
    assert_eq!(connection_limits(&cluster), limits);
    // The helpers are gone.
    assert_eq!(
        cluster
            .psql("SELECT count(*) FROM pg_proc WHERE proname LIKE 'curfew\\_%'")
            .unwrap(),
        "0"
    );
}

#[test]
fn database_scopes_exempt_databases_and_strictest_limits_read_back() {
    let cluster = cluster();
    cluster
        .psql(
            "CREATE DATABASE app1; CREATE DATABASE app2; CREATE DATABASE maintenance;
             CREATE ROLE humans NOLOGIN;
             CREATE ROLE kim LOGIN IN ROLE humans;
             CREATE ROLE \"Ünï code \"\"x\"\"\" LOGIN;
             CREATE ROLE dba LOGIN IN ROLE humans;
             CREATE ROLE admins NOLOGIN; GRANT admins TO dba;",
        )
        .unwrap();
    // The limits themselves (no margin): this test is about scopes and the strictest value.
    let sql = compile_with(
        "[exempt]\nroles = [\"postgres\"]\nmember_of = [\"admins\"]\ndatabases = [\"maintenance\"]\n\n\
         [[rule]]\nname = \"everyone\"\nidle = \"1h\"\n\n\
         [[rule]]\nname = \"humans\"\nidle = \"10m\"\nmember_of = [\"humans\"]\n\n\
         [[rule]]\nname = \"apps\"\nidle = \"30m\"\nmember_of = [\"humans\"]\ndatabases = [\"app?\"]\n\n\
         [[rule]]\nname = \"unicode\"\nidle_in_transaction = \"1500ms\"\nroles = [\"Ünï code \\\"x\\\"\"]\n\n\
         [[rule]]\nname = \"nobody\"\nmax_sessions = 3\nroles = [\"nobody_*\"]\n",
        curfew_compile::Margin::Fixed(std::time::Duration::ZERO),
    );
    for _ in 0..2 {
        cluster.psql(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }
    let got = settings(&cluster);
    let get = |key: &str| got.get(key).map(String::as_str);
    // Role-wide: the strictest of "everyone" (1h) and "humans" (10m).
    assert_eq!(get("kim|"), Some("idle_session_timeout=10min"));
    assert_eq!(get("humans|"), Some("idle_session_timeout=10min"));
    // Everyone else gets 1h; the unicode role also its own idle-in-transaction limit.
    assert_eq!(
        get("Ünï code \"x\"|"),
        Some("idle_in_transaction_session_timeout=1500ms,idle_session_timeout=1h")
    );
    // In app1/app2 the 30 minutes of "apps" would override the role-wide 10 minutes: the
    // 10 minutes are set again there, last.
    assert_eq!(get("kim|app1"), Some("idle_session_timeout=10min"));
    assert_eq!(get("kim|app2"), Some("idle_session_timeout=10min"));
    // Exempt database: off for every role given the timeouts.
    assert_eq!(get("kim|maintenance"), Some("idle_session_timeout=0"));
    assert_eq!(
        get("Ünï code \"x\"|maintenance"),
        Some("idle_in_transaction_session_timeout=0,idle_session_timeout=0")
    );
    // dba is a member of the exempt admins: untouched everywhere.
    assert!(got.keys().all(|k| !k.starts_with("dba|")), "{got:?}");
    assert!(got.keys().all(|k| !k.starts_with("postgres|")), "{got:?}");
    // No role matches nobody_*: a NOTICE, not an error.
    assert!(connection_limits(&cluster).is_empty());
    // A session in the exempt database sees the timeout off.
    assert_eq!(
        session(&cluster, "kim", "maintenance", "SHOW idle_session_timeout"),
        "0"
    );
    assert_eq!(
        session(&cluster, "kim", "app1", "SHOW idle_session_timeout"),
        "10min"
    );
}
