//! Real clients through the gateway, each checked direct first: psql, psycopg 3, pgbench and
//! pg_dump, all with `sslmode=verify-full` and `channel_binding=require` against a SCRAM+TLS
//! server, so a failure reads "works direct, fails through the gateway".

mod common;

use std::path::Path;
use std::process::Command;

use common::clients::{Endpoint, Finished, cancels, psql, python_with_psycopg, run};
use common::{ALICE_PASSWORD, Harness, Setup};

/// Fails when `finished` failed, saying whether the same check passed direct.
fn expect_success(what: &str, endpoint: Endpoint, finished: &Finished) {
    let context = match endpoint.name {
        "direct" => "fails direct (so not the gateway's doing)",
        _ => "works direct, fails through the gateway",
    };
    assert!(
        finished.success,
        "{what} {context}\n--- stdout\n{}\n--- stderr\n{}",
        finished.stdout, finished.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_logs_in_with_verify_full_and_channel_binding_both_ways() {
    let harness = Harness::start("psql-clients", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    let mut refusals = Vec::new();
    for endpoint in harness.endpoints() {
        // Startup parameters as sent: application_name, and `options` with a setting.
        let conninfo = harness.conninfo(
            endpoint,
            "alice",
            "application_name=psql-check options='-c work_mem=7MB'",
        );
        let mut command = psql(&bin, &conninfo, ALICE_PASSWORD);
        command
            .args([
                "-c",
                "SELECT current_user || ' ' || current_setting('application_name') || ' ' \
                 || current_setting('work_mem')",
            ])
            .args(["-c", "\\conninfo"])
            .args(["-c", "BEGIN; CREATE TEMP TABLE t AS SELECT 1 AS n; COMMIT"])
            .args(["-c", "SELECT count(*) FROM t"]);
        let finished = run(command).await;
        expect_success("psql", endpoint, &finished);
        let lines: Vec<&str> = finished.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"alice psql-check 7MB"), "{endpoint:?}");
        assert!(
            finished.stdout.contains("SSL connection"),
            "{endpoint:?}: {}",
            finished.stdout
        );
        assert_eq!(lines.last(), Some(&"1"), "{endpoint:?}");

        let conninfo = harness.conninfo(endpoint, "alice", "");
        let mut command = psql(&bin, &conninfo, "not-alice's-password");
        command.args(["-c", "SELECT 1"]);
        let refused = run(command).await;
        assert!(!refused.success, "{endpoint:?} accepted a wrong password");
        refusals.push(server_words(&refused.stderr));
    }
    assert_eq!(
        refusals[0], refusals[1],
        "a wrong password reads differently through the gateway"
    );
    assert!(
        refusals[0].contains("password authentication failed for user \"alice\""),
        "{refusals:?}"
    );
}

/// A 100 kB NOTICE and a 100 kB ERROR (libpq's long message types) reach psql whole, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_gets_whole_100_kb_notices_and_errors_both_ways() {
    let harness = Harness::start("psql-big", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    for endpoint in harness.endpoints() {
        let conninfo = harness.conninfo(endpoint, "alice", "");
        let mut command = psql(&bin, &conninfo, ALICE_PASSWORD);
        command
            .args([
                "-c",
                "DO $$ BEGIN RAISE NOTICE 'big %', repeat('n', 100000); END $$",
            ])
            .args(["-c", "SELECT 'still here'"])
            .args([
                "-c",
                "DO $$ BEGIN RAISE EXCEPTION 'huge %', repeat('e', 100000); END $$",
            ]);
        let finished = run(command).await;
        let context = format!("{endpoint:?}");
        assert!(
            !finished.success,
            "{context}: the exception did not fail psql"
        );
        assert!(
            finished
                .stderr
                .contains(&format!("NOTICE:  big {}\n", "n".repeat(100_000))),
            "{context}: no whole notice ({} bytes of stderr)",
            finished.stderr.len()
        );
        assert!(
            finished
                .stderr
                .contains(&format!("ERROR:  huge {}\n", "e".repeat(100_000))),
            "{context}: no whole error ({} bytes of stderr)",
            finished.stderr.len()
        );
        assert_eq!(finished.stdout.trim(), "DO\nstill here", "{context}");
    }
}

/// A password changed through the gateway holds at the next login through it (the verifier is
/// fetched per login) and the old one is refused, as direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_through_the_gateway_holds_at_the_next_login() {
    let harness = Harness::start("psql-password", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    let gateway = harness.conninfo(harness.gateway(), "alice", "");
    let mut command = psql(&bin, &gateway, ALICE_PASSWORD);
    command.args([
        "-c",
        "SET password_encryption = 'scram-sha-256'; ALTER ROLE alice PASSWORD 'alice-changed'",
    ]);
    let changed = run(command).await;
    assert!(changed.success, "{}", changed.stderr);
    for (password, works) in [("alice-changed", true), (ALICE_PASSWORD, false)] {
        for endpoint in harness.endpoints() {
            let mut command = psql(&bin, &harness.conninfo(endpoint, "alice", ""), password);
            command.args(["-c", "SELECT current_user"]);
            let finished = run(command).await;
            assert_eq!(
                finished.success,
                works,
                "{endpoint:?} with the {} password: {}",
                if works { "new" } else { "old" },
                finished.stderr
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_ctrl_c_and_pg_cancel_backend_end_the_right_sleep_both_ways() {
    let harness = Harness::start("psql-cancel", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    for endpoint in harness.endpoints() {
        let context = match endpoint.name {
            "direct" => "psql direct".to_owned(),
            _ => "psql through the gateway (works direct)".to_owned(),
        };
        cancels(&harness, &bin, endpoint, "", &context).await;
    }
}

/// libpq's message without its address prefix (`connection to server at ..., port N failed:`),
/// which differs between the endpoints.
fn server_words(stderr: &str) -> String {
    stderr
        .find("FATAL:")
        .map_or(stderr, |at| &stderr[at..])
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_queries_transactions_copy_pipelines_and_cancels_both_ways() {
    // Fails before a cluster starts when python3 or psycopg is missing.
    python_with_psycopg();
    let harness = Harness::start("psycopg", Setup::default()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/psycopg_session.py");
    let mut refusals = Vec::new();
    for endpoint in harness.endpoints() {
        let mut command = python_with_psycopg();
        command
            .arg(&script)
            .arg(harness.conninfo(endpoint, "alice", ""))
            .args(["alice", "nobody_at_all", "nologin_role"])
            .env("PGPASSWORD", ALICE_PASSWORD)
            .env("PYTHONUNBUFFERED", "1");
        let finished = run(command).await;
        eprintln!("psycopg {}:\n{}", endpoint.name, finished.stdout);
        expect_success("psycopg", endpoint, &finished);
        for check in [
            "ok tls",
            "ok backend pid",
            "ok server-side parameters",
            "ok prepared statement",
            "ok transactions",
            "ok copy in and out",
            "ok binary copy out",
            "ok pipeline",
            "ok cancel ends pg_sleep",
            "ok cancel_safe ends pg_sleep",
        ] {
            assert!(
                finished.stdout.lines().any(|line| line == check),
                "{endpoint:?} did not report {check:?}:\n{}",
                finished.stdout
            );
        }
        let refused: Vec<String> = finished
            .stdout
            .lines()
            .filter(|line| line.starts_with("refused "))
            .map(str::to_owned)
            .collect();
        assert_eq!(refused.len(), 3, "{}", finished.stdout);
        refusals.push(refused);
    }
    assert_eq!(
        refusals[0], refusals[1],
        "refused logins read differently through the gateway than direct"
    );
    for (user, line) in ["alice", "nobody_at_all", "nologin_role"]
        .iter()
        .zip(&refusals[1])
    {
        assert!(
            line.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{line}"
        );
    }
}

/// The numbers pgbench reports after a run.
#[derive(Debug)]
struct PgbenchRun {
    processed: u64,
    failed: Option<u64>,
}

fn pgbench_report(stdout: &str) -> Option<PgbenchRun> {
    let number_after = |prefix: &str| {
        stdout.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        })
    };
    Some(PgbenchRun {
        processed: number_after("number of transactions actually processed:")?,
        failed: number_after("number of failed transactions:"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_select_only_completes_transactions_both_ways() {
    let harness = Harness::start("pgbench", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    let pgbench = bin.join("pgbench");
    // Initialised by the superuser over the Unix socket; alice reads.
    let mut init = Command::new(&pgbench);
    init.args(["-i", "-q", "-s", "1", "-h"])
        .arg(harness.cluster.socket_dir())
        .args(["-p", &harness.cluster.port().to_string()])
        .args(["-U", harness.cluster.superuser(), "postgres"]);
    let initialised = run(init).await;
    assert!(initialised.success, "pgbench -i: {}", initialised.stderr);
    harness
        .cluster
        .psql(
            "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, \
             pgbench_history TO alice",
        )
        .expect("grants");
    // The builtin select-only run, then a script of pipelines (libpq's pipeline mode, prepared
    // statements).
    let pipeline = harness.dir.write(
        "pipeline.sql",
        "\\set aid random(1, 100000)\n\\startpipeline\n\
         SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n\
         SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 1;\n\
         SELECT count(*) FROM pgbench_branches;\n\\endpipeline\n",
        0o644,
    );
    let pipeline = pipeline.display().to_string();
    let runs: [&[&str]; 2] = [
        &["-n", "-S", "-T", "2", "-c", "4", "-j", "2"],
        &[
            "-n", "-M", "prepared", "-f", &pipeline, "-T", "2", "-c", "2",
        ],
    ];
    for args in runs {
        for endpoint in harness.endpoints() {
            let mut command = Command::new(&pgbench);
            command
                .args(args)
                .arg(harness.conninfo(endpoint, "alice", ""))
                .env("PGPASSWORD", ALICE_PASSWORD);
            let finished = run(command).await;
            let what = format!("pgbench {}", args.join(" "));
            expect_success(&what, endpoint, &finished);
            let report = pgbench_report(&finished.stdout).unwrap_or_else(|| {
                panic!(
                    "{what} {endpoint:?}: no report:\n{}\n{}",
                    finished.stdout, finished.stderr
                )
            });
            eprintln!("{what} {}: {report:?}", endpoint.name);
            assert!(report.processed > 0, "{what} {endpoint:?}: {report:?}");
            assert_eq!(
                report.failed.unwrap_or(0),
                0,
                "{what} {endpoint:?}: {report:?}"
            );
            assert!(
                !finished.stderr.to_lowercase().contains("error"),
                "{what} {endpoint:?}: {}",
                finished.stderr
            );
        }
    }
}

#[test]
fn pgbench_reports_are_read_with_and_without_a_failure_line() {
    let pg15 = "transaction type: <builtin: select only>\n\
                number of transactions actually processed: 1234\n\
                number of failed transactions: 0 (0.000%)\n";
    let run = pgbench_report(pg15).expect("report");
    assert_eq!((run.processed, run.failed), (1234, Some(0)));
    let older = "number of transactions actually processed: 7/7\n";
    assert!(pgbench_report(older).is_none(), "7/7 is not a count");
    assert!(pgbench_report("aborted").is_none());
}

/// pg_dump's plain output without its per-run random `\restrict` key lines.
fn without_restrict_keys(dump: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with("\\restrict ") && !line.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_writes_the_same_dump_direct_and_through_the_gateway() {
    let harness = Harness::start("pg-dump", Setup::default()).await;
    let bin = harness.cluster.bin_dir().to_owned();
    // A schema of alice's with rows, a view and a 600 kB large object (pg_dump reads it with
    // libpq's lo_read: FunctionCall).
    harness
        .cluster
        .psql(
            "CREATE SCHEMA shop AUTHORIZATION alice;
             SET ROLE alice;
             CREATE TABLE shop.items (id int PRIMARY KEY, name text, data bytea);
             INSERT INTO shop.items
               SELECT g, 'item ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 5000) g;
             CREATE VIEW shop.names AS SELECT name FROM shop.items;
             SELECT lo_from_bytea(0, decode(repeat('00ff', 300000), 'hex'));",
        )
        .expect("alice's schema");
    let mut dumps = Vec::new();
    for endpoint in harness.endpoints() {
        let mut command = Command::new(bin.join("pg_dump"));
        command
            .args(["-n", "shop", "-b", "-d"])
            .arg(harness.conninfo(endpoint, "alice", ""))
            .env("PGPASSWORD", ALICE_PASSWORD);
        let finished = run(command).await;
        expect_success("pg_dump", endpoint, &finished);
        for part in [
            "COPY shop.items (id, name, data) FROM stdin;",
            "CREATE VIEW shop.names",
            "SELECT pg_catalog.lo_open(",
        ] {
            assert!(
                finished.stdout.contains(part),
                "{endpoint:?}: no {part:?} in the dump"
            );
        }
        dumps.push(without_restrict_keys(&finished.stdout));
    }
    assert!(
        dumps[0] == dumps[1],
        "pg_dump's output through the gateway differs from direct ({} and {} bytes)",
        dumps[0].len(),
        dumps[1].len()
    );
}
