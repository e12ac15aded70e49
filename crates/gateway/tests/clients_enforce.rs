//! The policy the gateway enforces (issue 17) as the clients users run see it: psycopg 3 gets
//! PostgreSQL's own exception classes (`IdleSessionTimeout`, `IdleInTransactionSessionTimeout`,
//! `AdminShutdown`) with the rule in the message and the HINT, and the WARNING through its
//! notice handler before the end; psql prints the FATAL, its HINT and the lost connection, and
//! a warned psql user who runs a statement in time keeps the session; logins refused during a
//! deny window and an incident lock read the same in psql with every `sslmode` and in psycopg.
//! Timings are asserted with seconds of slack: the CI machine is loaded.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clients::{Finished, psql, python_with_psycopg, run};
use common::policy::{audit_text_when, deny_now, lock_incident, policy};
use common::{ALICE_PASSWORD, Harness, Setup};

/// One line the psycopg script printed: its kind, seconds since the script started, fields.
#[derive(Debug, Clone)]
struct Event {
    kind: String,
    at: f64,
    fields: Vec<String>,
}

impl Event {
    fn field(&self, n: usize) -> &str {
        self.fields.get(n).map_or("", String::as_str)
    }
}

/// A field with the script's escapes (`\\`, `\n`, `\t`) undone.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The events in the script's output (its escapes undone).
fn events(stdout: &str) -> Vec<Event> {
    stdout
        .lines()
        .map(|line| {
            let mut parts = line.split('\t').map(unescape);
            let kind = parts.next().unwrap_or_default();
            let at = parts
                .next()
                .and_then(|at| at.parse().ok())
                .unwrap_or_else(|| panic!("no time in {line:?}"));
            Event {
                kind,
                at,
                fields: parts.collect(),
            }
        })
        .collect()
}

/// Runs the psycopg script through the gateway as `user` with `steps`; its events.
async fn psycopg(
    harness: &Harness,
    user: &str,
    password: &str,
    extra: &str,
    steps: &[&str],
) -> Vec<Event> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/psycopg_enforce.py");
    let mut command = python_with_psycopg();
    command
        .arg(script)
        .arg(harness.conninfo(harness.gateway(), user, extra))
        .args(steps)
        .env("PGPASSWORD", password)
        .env("PYTHONUNBUFFERED", "1");
    let finished = run(command).await;
    assert!(
        finished.success,
        "psycopg as {user} failed\n--- stdout\n{}\n--- stderr\n{}",
        finished.stdout, finished.stderr
    );
    eprintln!("psycopg as {user} {steps:?}:\n{}", finished.stdout);
    events(&finished.stdout)
}

/// The only event of `kind` with `sqlstate` (its second field).
fn the<'a>(events: &'a [Event], kind: &str, sqlstate: &str) -> &'a Event {
    let found: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == kind && e.field(1) == sqlstate)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {sqlstate} in {events:#?}");
    found[0]
}

/// Login roles `name`, each with the SCRAM password `name-secret`.
fn roles(harness: &Harness, names: &[&str]) {
    for name in names {
        harness
            .cluster
            .psql(&format!(
                "SET password_encryption = 'scram-sha-256'; CREATE ROLE {name} LOGIN PASSWORD '{name}-secret';"
            ))
            .expect("role");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_sessions_end_by_their_rule_with_postgres_exceptions_messages_and_hints() {
    python_with_psycopg();
    let harness = Harness::start("psycopg-enforce", Setup::default()).await;
    roles(&harness, &["bob", "carol", "dave"]);
    harness.gateway.enforce(policy(
        "[[rule]]\nname = \"inactivity\"\nroles = [\"alice\"]\nidle = \"4s\"\nwarn = \"2s\"\n\
         [[rule]]\nname = \"open-transaction\"\nroles = [\"bob\"]\nidle_in_transaction = \"3s\"\n\
         [[rule]]\nname = \"life\"\nroles = [\"carol\"]\nlifetime = \"5s\"\nwarn = \"2s\"\n",
    ));
    let (asleep, listening, in_transaction, busy, untouched) = tokio::join!(
        // Away from the keyboard past the deadline, then a statement.
        psycopg(
            &harness,
            "alice",
            ALICE_PASSWORD,
            "",
            &["exec:SELECT 1", "sleep:8", "exec:SELECT 2"]
        ),
        // Idle, reading what arrives.
        psycopg(
            &harness,
            "alice",
            ALICE_PASSWORD,
            "",
            &["exec:SELECT 1", "watch:14"]
        ),
        psycopg(
            &harness,
            "bob",
            "bob-secret",
            "",
            &["exec:BEGIN", "exec:SELECT 1", "sleep:7", "exec:SELECT 2"]
        ),
        // Busy all along: the lifetime ends it all the same.
        psycopg(
            &harness,
            "carol",
            "carol-secret",
            "",
            &["every:0.3:15:SELECT 1"]
        ),
        // No rule for dave: idle as long as the others, kept.
        psycopg(
            &harness,
            "dave",
            "dave-secret",
            "",
            &["exec:SELECT 1", "watch:9", "exec:SELECT 'kept'"]
        ),
    );

    // alice asleep: the statement after the deadline raises IdleSessionTimeout, the WARNING
    // handed to the notice handler first.
    let warning = the(&asleep, "notice", "01000");
    assert_eq!(warning.field(2), "WARNING");
    assert!(
        warning
            .field(3)
            .starts_with("this session will be ended in ")
            && warning.field(3).contains("(rule inactivity: idle for "),
        "{warning:?}"
    );
    assert_eq!(warning.field(4), "run any statement to keep the session");
    let error = the(&asleep, "error", "57P05");
    assert_eq!(error.field(0), "IdleSessionTimeout", "{error:?}");
    assert_eq!(error.field(2), "FATAL");
    assert!(
        error
            .field(3)
            .starts_with("terminating connection: idle for 4")
            && error.field(3).ends_with("; limit 4s (rule inactivity)"),
        "{error:?}"
    );
    assert_eq!(error.field(4), "reconnect to continue");
    assert!(
        asleep.iter().position(|e| e.kind == "notice")
            < asleep.iter().position(|e| e.kind == "error")
    );

    // alice listening: the WARNING at about 2 s, the FATAL (libpq hands an error outside a
    // query to the notice handler) at about 4 s, then the connection is closed.
    let warning = the(&listening, "notice", "01000");
    let fatal = the(&listening, "notice", "57P05");
    assert_eq!(fatal.field(2), "FATAL");
    assert!(fatal.field(3).ends_with("(rule inactivity)"), "{fatal:?}");
    assert!((1.5..6.0).contains(&warning.at), "warned at {}", warning.at);
    assert!((3.8..9.0).contains(&fatal.at), "ended at {}", fatal.at);
    assert!(fatal.at - warning.at >= 1.5, "{warning:?} {fatal:?}");
    let closed = listening
        .iter()
        .find(|e| e.kind == "closed")
        .expect("closed");
    assert!(closed.at - fatal.at < 2.0, "{closed:?}");

    // bob idle in his transaction: IdleInTransactionSessionTimeout, the rollback said.
    let error = the(&in_transaction, "error", "25P03");
    assert_eq!(
        error.field(0),
        "IdleInTransactionSessionTimeout",
        "{error:?}"
    );
    assert!(
        error.field(3).ends_with("(rule open-transaction)"),
        "{error:?}"
    );
    assert_eq!(
        error.field(4),
        "reconnect to continue; unsaved work in the open transaction was rolled back"
    );

    // carol busy: AdminShutdown at about 5 s, warned about 2 s before, told to save her work.
    let warning = the(&busy, "notice", "01000");
    assert_eq!(warning.field(4), "save your work and reconnect later");
    let error = the(&busy, "error", "57P01");
    assert_eq!(error.field(0), "AdminShutdown", "{error:?}");
    assert!(error.field(3).ends_with("(rule life)"), "{error:?}");
    assert_eq!(error.field(4), "reconnect to continue");
    assert!((4.8..11.0).contains(&error.at), "ended at {}", error.at);
    assert!(error.at - warning.at >= 1.0, "{warning:?} {error:?}");

    // dave: nothing said, nothing ended.
    assert!(
        untouched
            .iter()
            .all(|e| e.kind == "login" || e.kind == "ok"),
        "{untouched:#?}"
    );
    assert_eq!(untouched.iter().filter(|e| e.kind == "ok").count(), 2);

    let metrics = harness.gateway.metrics_text();
    for line in [
        "curfew_gateway_policy_sessions_ended_total{rule=\"inactivity\"} 2\n",
        "curfew_gateway_policy_sessions_ended_total{rule=\"open-transaction\"} 1\n",
        "curfew_gateway_policy_sessions_ended_total{rule=\"life\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_three_permission_errors_end_the_session_and_two_do_not() {
    python_with_psycopg();
    let harness = Harness::start("psycopg-violations", Setup::default()).await;
    harness.gateway.enforce(policy(
        "[[rule]]\nname = \"misbehaviour\"\nviolations = { sqlstates = [\"42501\"], count = 3, within = \"10m\", per = \"session\" }\n\
         [[target]]\nname = \"db\"\nurl = \"postgresql://curfew@localhost/postgres\"\n[gateway]\n",
    ));
    let denied = "exec:SELECT rolpassword FROM pg_authid";
    // The third, raised by the session's own code: the SQLSTATE counts, however it came.
    let raised = "exec:DO $$ BEGIN RAISE EXCEPTION 'not yours' USING ERRCODE = '42501'; END $$";
    let three_steps = [denied, denied, raised, "sleep:1", "exec:SELECT 1"];
    let two_steps = [denied, denied, "exec:SELECT 1", "sleep:2", "exec:SELECT 2"];
    let (three, two) = tokio::join!(
        psycopg(&harness, "alice", ALICE_PASSWORD, "", &three_steps),
        psycopg(&harness, "alice", ALICE_PASSWORD, "", &two_steps),
    );

    let errors: Vec<&Event> = three.iter().filter(|e| e.kind == "error").collect();
    assert_eq!(errors.len(), 4, "{three:#?}");
    for error in &errors[..3] {
        assert_eq!(
            (error.field(0), error.field(1), error.field(2)),
            ("InsufficientPrivilege", "42501", "ERROR")
        );
    }
    let fatal = errors[3];
    assert_eq!(fatal.field(0), "AdminShutdown", "{fatal:?}");
    assert_eq!(fatal.field(1), "57P01");
    assert_eq!(fatal.field(2), "FATAL");
    assert_eq!(
        fatal.field(3),
        "terminating connection: 3 errors 42501 by this session within 10m; limit 3 (rule misbehaviour)"
    );
    assert_eq!(fatal.field(4), "reconnect to continue");
    let warning = the(&three, "notice", "01000");
    assert_eq!(warning.field(2), "WARNING");
    assert_eq!(
        warning.field(3),
        "one more error with SQLSTATE 42501 within 10m ends this session: 2 counted; limit 3 (rule misbehaviour)"
    );

    // Two errors: warned, and the session goes on.
    assert_eq!(
        two.iter().filter(|e| e.kind == "error").count(),
        2,
        "{two:#?}"
    );
    assert_eq!(two.iter().filter(|e| e.kind == "ok").count(), 2, "{two:#?}");
    the(&two, "notice", "01000");
}

/// psql as alice through the gateway (`extra` in its connection string) reading its
/// statements from a pipe, each line written after its delay; returns at once.
fn psql_fed(
    harness: &Harness,
    application_name: &str,
    extra: &str,
    script: Vec<(Duration, &'static str)>,
) -> (Child, tokio::task::JoinHandle<()>) {
    let conninfo = harness.conninfo(
        harness.gateway(),
        "alice",
        &format!("application_name={application_name} {extra}"),
    );
    let mut command = Command::new(harness.cluster.bin_dir().join("psql"));
    command
        .args(["-X", "-A", "-t", "-d", &conninfo])
        .env("PGPASSWORD", ALICE_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{:?} could not run: {e}", command.get_program()));
    let mut stdin = child.stdin.take().expect("psql's stdin");
    // Between the lines psql waits on its input, not on the server: the session is idle and
    // nothing the server sends is read, as at an interactive prompt.
    let feeder = tokio::spawn(async move {
        for (delay, line) in script {
            tokio::time::sleep(delay).await;
            let _ = writeln!(stdin, "{line}");
        }
    });
    (child, feeder)
}

/// Until the server has `count` backends for `application_name` (at most `within`).
async fn backends(harness: &Harness, application_name: &str, count: u32, within: Duration) {
    let started = Instant::now();
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application_name}'"
    );
    loop {
        let now = harness.cluster.psql(&sql).expect("count");
        if now.trim() == count.to_string() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{application_name} has {now} backends, not {count}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// psql's output once its input has been fed and it exited.
async fn finished(child: Child, feeder: tokio::task::JoinHandle<()>) -> Finished {
    feeder.await.expect("feeder");
    let finished: Finished = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("psql task")
        .expect("psql's output")
        .into();
    eprintln!("psql:\n{}\n{}", finished.stdout, finished.stderr);
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warned_psql_user_who_runs_a_statement_keeps_the_session_and_one_who_does_not_is_ended() {
    let harness = Harness::start("psql-enforce", Setup::default()).await;
    harness.gateway.enforce(policy(
        "[[rule]]\nname = \"inactivity\"\nidle = \"12s\"\nwarn = \"6s\"\n",
    ));
    let started = Instant::now();
    let (secs, millis) = (Duration::from_secs, Duration::from_millis);
    // Warned at 6 s, a statement at 9 s: the deadline moves to 21 s, warned at 15 s, a
    // statement at 18 s; then psql's input ends and psql with it. Each statement comes 3 s
    // after its warning and 3 s before the deadline: room for three psqls logging in at once
    // on a loaded machine.
    let (kept, kept_feeder) = psql_fed(
        &harness,
        "kept",
        "",
        vec![
            (secs(0), "SELECT 'first';"),
            (secs(9), "SELECT 'kept';"),
            (secs(9), "SELECT 'still kept';"),
        ],
    );
    // Warned at 6 s and ended at 12 s while psql waits on its input; the next statement at
    // 24 s finds the session ended. Over TLS and in plaintext: psql says the loss differently.
    let ended_script = || {
        vec![
            (secs(0), "SELECT 'first';"),
            (secs(24), "SELECT 'too late';"),
        ]
    };
    let (ended, ended_feeder) = psql_fed(&harness, "ended", "", ended_script());
    let (plain, plain_feeder) = psql_fed(
        &harness,
        "plain",
        "sslmode=disable channel_binding=disable",
        ended_script(),
    );
    for name in ["kept", "ended", "plain"] {
        backends(&harness, name, 1, secs(10)).await;
    }
    // Ended at the deadline, not at psql's next statement.
    backends(&harness, "ended", 0, secs(30)).await;
    backends(&harness, "plain", 0, secs(5)).await;
    let gone_at = started.elapsed();
    assert!(
        (millis(11500)..secs(22)).contains(&gone_at),
        "the idle psqls' backends ended at {gone_at:?}"
    );
    backends(&harness, "kept", 1, secs(1)).await;

    let kept = finished(kept, kept_feeder).await;
    assert!(kept.success, "{}", kept.stderr);
    assert_eq!(kept.stdout.trim(), "first\nkept\nstill kept");
    // Warned before each statement, and kept.
    assert_eq!(
        kept.stderr
            .matches(
                " (rule inactivity: idle for 12s; limit 12s)\n\
                 HINT:  run any statement to keep the session\n"
            )
            .count(),
        2,
        "{}",
        kept.stderr
    );
    assert_eq!(
        kept.stderr
            .matches("WARNING:  this session will be ended in ")
            .count(),
        2,
        "{}",
        kept.stderr
    );
    assert!(!kept.stderr.contains("FATAL"), "{}", kept.stderr);

    for (ended, lost) in [
        (
            finished(ended, ended_feeder).await,
            "SSL connection has been closed unexpectedly",
        ),
        (
            finished(plain, plain_feeder).await,
            "server closed the connection unexpectedly\n\
             \tThis probably means the server terminated abnormally\n\
             \tbefore or while processing the request.\n",
        ),
    ] {
        assert!(!ended.success);
        assert_eq!(ended.stdout.trim(), "first");
        // What psql prints at the statement after the end: the warning it had not read, the
        // FATAL with its HINT, and the loss.
        let warning = ended
            .stderr
            .find("WARNING:  this session will be ended in ")
            .unwrap_or_else(|| panic!("no warning in\n{}", ended.stderr));
        let fatal = ended
            .stderr
            .find("FATAL:  terminating connection: idle for 12")
            .unwrap_or_else(|| panic!("no FATAL in\n{}", ended.stderr));
        assert!(warning < fatal, "{}", ended.stderr);
        for line in [
            "; limit 12s (rule inactivity)\nHINT:  reconnect to continue\n",
            lost,
            "connection to server was lost",
        ] {
            assert!(
                ended.stderr[fatal..].contains(line),
                "{line:?} not in\n{}",
                ended.stderr
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_during_a_deny_window_and_an_incident_lock_are_refused_with_the_reason_in_psql_and_psycopg()
 {
    python_with_psycopg();
    let harness = Harness::start(
        "psql-refused",
        Setup {
            auth_function: true,
            audit_log: true,
            ..Setup::default()
        },
    )
    .await;
    roles(&harness, &["bob"]);
    harness
        .gateway
        .enforce(deny_now("maintenance", "roles = [\"bob\"]"));
    lock_incident(&harness, "alice", "laptop stolen");
    let lock = "FATAL:  logins for role alice are closed by an incident lock until \
                2099-01-01 12:00 UTC (reason: laptop stolen)";
    let window = "FATAL:  logins for role bob are closed by rule maintenance until ";
    // psql with the server's libpq (15) and with 18's.
    let bins = [
        harness.cluster.bin_dir().to_owned(),
        curfew_testkit::pg_bin(18),
    ];
    let mut attempts = 0;
    for (user, password, reason) in [
        ("alice", ALICE_PASSWORD, lock),
        ("bob", "bob-secret", window),
    ] {
        // sslmode=prefer: TLS is offered and taken, the refusal comes over it, and libpq makes
        // no plaintext attempt after it (one refusal printed, one recorded).
        for (bin, sslmode) in bins.iter().flat_map(|bin| {
            ["verify-full", "require", "disable", "prefer"].map(|sslmode| (bin, sslmode))
        }) {
            let binding = if sslmode == "verify-full" {
                "require"
            } else {
                "prefer"
            };
            let conninfo = harness.conninfo(
                harness.gateway(),
                user,
                &format!("sslmode={sslmode} channel_binding={binding}"),
            );
            let mut command = psql(bin, &conninfo, password);
            command.args(["-c", "SELECT 1"]);
            let refused = run(command).await;
            attempts += 1;
            let context = format!("{}/psql as {user} with sslmode={sslmode}", bin.display());
            eprintln!("{context}:\n{}", refused.stderr);
            assert!(!refused.success, "{context} logged in");
            assert_eq!(
                refused.stderr.matches(reason).count(),
                1,
                "{context}:\n{}",
                refused.stderr
            );
            assert!(
                refused
                    .stderr
                    .starts_with("psql: error: connection to server at \"127.0.0.1\""),
                "{context}:\n{}",
                refused.stderr
            );
        }
        for sslmode in ["verify-full", "disable"] {
            let events = psycopg(
                &harness,
                user,
                password,
                &format!("sslmode={sslmode} channel_binding=prefer"),
                &["exec:SELECT 1"],
            )
            .await;
            attempts += 1;
            // libpq keeps no SQLSTATE for a failed login, so psycopg's OperationalError has
            // none (`sqlstate` is None): the FATAL's words are what it carries.
            assert_eq!(events.len(), 1, "{events:#?}");
            let refused = &events[0];
            assert_eq!(
                (refused.kind.as_str(), refused.field(0)),
                ("refused", "OperationalError"),
                "{refused:?}"
            );
            assert!(
                refused.field(2).contains(reason),
                "psycopg as {user} with sslmode={sslmode}: {refused:?}"
            );
        }
    }
    // One refusal recorded per attempt: no client retried behind the scenes.
    let path = harness.audit_log.clone().expect("an audit log");
    let count = |text: &str| text.matches("\"login_refused\"").count();
    let text = audit_text_when(&path, |text| count(text) >= attempts).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = std::fs::read_to_string(&path).unwrap_or(text);
    assert_eq!(count(&text), attempts, "{text}");
}

#[test]
fn the_scripts_escapes_are_undone() {
    assert_eq!(unescape(r"a\nb\tc\\n"), "a\nb\tc\\n");
    assert_eq!(unescape("plain"), "plain");
}
