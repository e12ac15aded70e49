//! The audit chain anchored on a MariaDB target (issue 18): with a MariaDB-only policy the agent
//! stores its chain's head in `curfew`.`anchor` as it goes; `curfew report` and `curfew audit
//! verify` read the anchors back and confirm the log, and a log cut short after anchoring (which
//! verifies on its own) and one with a termination removed and every hash recomputed are reported
//! as contradicted, naming the first missing or differing seq. `curfew init`
//! installs the store (and the login-lock ledger) as an administrator, idempotently, with table
//! grants only.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{agent, curfew, dir, lines_of, signal, wait_for};
use curfew_audit::{AuditLog, Entry, Event, Record};
use curfew_sandbox::{MariaDbOptions, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

const AGENT: &str = "curfew_agent";

/// A MariaDB server with curfew's account (its password in `password_file`) and `kim`.
fn mariadb(password_file: &Path) -> MariaDbServer {
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql(&format!(
            "CREATE USER '{AGENT}'@'127.0.0.1' IDENTIFIED BY 'agent-secret';
             GRANT PROCESS, CONNECTION ADMIN ON *.* TO '{AGENT}'@'127.0.0.1';
             CREATE USER 'kim'@'127.0.0.1';"
        ))
        .unwrap();
    std::fs::write(password_file, "agent-secret\n").unwrap();
    std::fs::set_permissions(password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    server
}

async fn admin(server: &MariaDbServer) -> Conn {
    let opts = OptsBuilder::default()
        .socket(Some(server.socket().display().to_string()))
        .prefer_socket(true)
        .user(Some(server.admin()));
    Conn::new(opts).await.unwrap()
}

async fn client(server: &MariaDbServer, user: &str) -> Conn {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port())
        .prefer_socket(false)
        .user(Some(user));
    Conn::new(opts).await.unwrap()
}

/// The highest anchored seq on the target (as the administrator).
fn anchored(server: &MariaDbServer) -> u64 {
    let top = server
        .admin_sql("SELECT COALESCE(MAX(seq), 0) FROM curfew.anchor")
        .unwrap();
    top.trim().parse().unwrap()
}

/// `curfew ARGS -c POLICY`: exit code, stdout, stderr.
fn run(args: &[&str], policy: &Path) -> (Option<i32>, String, String) {
    let out = curfew().args(args).arg("-c").arg(policy).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The agent on a MariaDB-only policy ends two idle sessions of kim and anchors its head; the
/// server and the log's path.
pub(crate) fn anchored_run(
    d: &common::Dir,
    install: impl FnOnce(&MariaDbServer, &Path),
) -> (MariaDbServer, std::path::PathBuf, std::path::PathBuf) {
    let password_file = d.0.join("maria.password");
    let maria = mariadb(&password_file);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\naudit_log = \"{}\"\n\n\
             [[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n",
            audit.display(),
            maria.url(AGENT, ""),
            password_file.display(),
        ),
    )
    .unwrap();
    install(&maria, &policy);
    let mut child = agent(&policy, &audit);
    let lines = lines_of(&mut child);
    wait_for(&lines, "this agent leads", Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _a = client(&maria, "kim").await;
        let _b = client(&maria, "kim").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let records = curfew_audit::read(&audit).unwrap();
            let ended = records
                .iter()
                .filter(|r| r.as_ref().is_ok_and(|r| r.event == "session_terminated"))
                .count();
            if ended >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "kim's sessions were not ended");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // The agent anchors the head within a tick or so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = curfew_audit::verify_chain(std::slice::from_ref(&audit), |_| {})
            .unwrap()
            .last_seq
            .unwrap();
        if anchored(&maria) == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the head seq {last} was not anchored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    (maria, policy, audit)
}

/// Installs the anchor store as an administrator would, from `curfew_mysql::anchor_install_sql`.
fn install_by_hand(server: &MariaDbServer, _policy: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut admin = admin(server).await;
        for statement in curfew_mysql::anchor_install_sql(&format!("'{AGENT}'@'127.0.0.1'")) {
            admin.query_drop(statement).await.unwrap();
        }
    });
}

/// The report and the verification confirm the anchored log, and catch it cut short.
pub(crate) fn confirmed_then_cut(d: &common::Dir, policy: &Path, audit: &Path, top: u64) {
    let (code, out, err) = run(&["audit", "verify", audit.to_str().unwrap()], policy);
    println!("curfew audit verify:\n{out}{err}");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!(
            "anchors on target \"maria\": {top} compared, confirm the log up to seq {top}"
        )) || out.contains(&format!("confirm the log up to seq {top} ")),
        "{out}"
    );
    let (code, md, err) = run(&["report", "--format", "md"], policy);
    assert_eq!(code, Some(0), "{md}{err}");
    assert!(
        md.contains(&format!("no record up to seq {top} was altered")),
        "{md}"
    );

    // Cut short after anchoring: the first three records kept, which verify on their own.
    let cut = d.0.join("cut.jsonl");
    let text = std::fs::read_to_string(audit).unwrap();
    let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cut, kept).unwrap();
    let (code, out, _) = run(
        &["audit", "verify", "--offline", cut.to_str().unwrap()],
        policy,
    );
    assert_eq!(
        code,
        Some(0),
        "without the anchors the cut goes unnoticed: {out}"
    );
    let (code, out, err) = run(&["audit", "verify", cut.to_str().unwrap()], policy);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("records from seq 4 missing"), "{out}");
    let (code, md, err) = run(
        &[
            "report",
            "--format",
            "md",
            "--audit-log",
            cut.to_str().unwrap(),
        ],
        policy,
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(md.contains("**CONTRADICTED.**"), "{md}");
    assert!(md.contains("records from seq 4 missing"), "{md}");
}

/// The forger, holding write access to the log: the first termination's intent and outcome
/// dropped, the rest renumbered (outcomes' intent references too), every hash recomputed.
/// Returns the dropped intent's seq.
fn forge(from: &Path, to: &Path) -> u64 {
    let entries: Vec<Entry> = curfew_audit::read(from)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let intent = entries
        .iter()
        .find(|e| e.event == "termination_intent")
        .unwrap()
        .seq;
    let dropped: Vec<u64> = entries
        .iter()
        .filter(|e| e.seq == intent || e.intent == Some(intent))
        .map(|e| e.seq)
        .collect();
    assert_eq!(dropped.len(), 2, "an intent and its outcome");
    let renumber = |seq: u64| seq - dropped.iter().filter(|d| **d < seq).count() as u64;
    let log = AuditLog::open(to).unwrap();
    for e in entries.iter().filter(|e| !dropped.contains(&e.seq)) {
        log.append(Record {
            ts: e.ts,
            event: Event::from_name(&e.event).unwrap(),
            target: e.target.clone(),
            rule: e.rule.clone(),
            reason: e.reason.clone(),
            session: e.session.clone(),
            result: e.result.clone(),
            intent: e.intent.map(renumber),
            detail: e.detail.clone(),
        })
        .unwrap();
    }
    intent
}

/// A recomputed log verifies on its own and fails against the MariaDB anchors.
fn recomputed_is_caught(d: &common::Dir, policy: &Path, audit: &Path) {
    let forged = d.0.join("forged.jsonl");
    let intent = forge(audit, &forged);
    let forged = forged.to_str().unwrap();
    let (code, out, _) = run(&["audit", "verify", "--offline", forged], policy);
    assert_eq!(
        code,
        Some(0),
        "the recomputed chain verifies on its own: {out}"
    );
    let (code, out, err) = run(&["audit", "verify", forged], policy);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("is not the record anchored at"), "{out}");
    assert!(
        err.contains("first missing or differing seq "),
        "removed seq {intent}: {err}"
    );
    let (code, md, err) = run(&["report", "--format", "md", "--audit-log", forged], policy);
    assert_eq!(code, Some(3), "{err}");
    assert!(md.contains("**CONTRADICTED.**"), "{md}");
}

#[test]
fn a_mariadb_target_anchors_the_log_and_the_report_catches_it_cut_short_or_recomputed() {
    let d = dir("mariadb-anchor");
    let (maria, policy, audit) = anchored_run(&d, install_by_hand);
    let top = anchored(&maria);
    assert!(top >= 4, "anchored up to seq {top}");
    confirmed_then_cut(&d, &policy, &audit, top);
    recomputed_is_caught(&d, &policy, &audit);
}

/// `curfew init` as an administrator `dba` (twice: idempotent): the store, the ledger and the
/// grants, the account quoted, no database-wide grant to curfew's account.
fn install_by_init(server: &MariaDbServer, policy: &Path) {
    let password = policy.with_file_name("dba.password");
    std::fs::write(&password, "dba-secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    server
        .admin_sql(
            "CREATE USER 'dba'@'127.0.0.1' IDENTIFIED BY 'dba-secret';
             GRANT ALL PRIVILEGES ON *.* TO 'dba'@'127.0.0.1' WITH GRANT OPTION;",
        )
        .unwrap();
    for _ in 0..2 {
        let (code, out, err) = run(
            &[
                "init",
                "--admin-user",
                "dba",
                "--admin-password-file",
                password.to_str().unwrap(),
            ],
            policy,
        );
        println!("curfew init:\n{out}{err}");
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(
            out.contains(
                "target maria: the curfew database is installed for `curfew_agent`@`127.0.0.1`"
            ),
            "{out}"
        );
        assert!(out.contains("the login-lock ledger"), "{out}");
        assert!(
            out.contains(
                "GRANT SELECT, INSERT ON `curfew`.`anchor` TO `curfew_agent`@`127.0.0.1`;"
            ),
            "{out}"
        );
        assert!(!out.contains("dba-secret") && !err.contains("dba-secret"));
    }
    let grants = server
        .admin_sql("SHOW GRANTS FOR 'curfew_agent'@'127.0.0.1'")
        .unwrap();
    assert!(!grants.contains("`curfew`.*"), "{grants}");
    assert!(
        grants.contains("PROCESS, CONNECTION ADMIN ON *.*"),
        "{grants}"
    );
    assert!(
        !grants.contains("CREATE USER") && !grants.contains("global_priv"),
        "{grants}"
    );
    assert!(
        grants.contains("GRANT EXECUTE ON PROCEDURE `curfew`.`set_account_lock`"),
        "{grants}"
    );
}

#[test]
fn curfew_init_installs_the_store_on_mariadb_and_the_agent_anchors_there() {
    let d = dir("mariadb-init");
    let (maria, policy, audit) = anchored_run(&d, install_by_init);
    let top = anchored(&maria);
    assert!(top >= 4, "anchored up to seq {top}");
    confirmed_then_cut(&d, &policy, &audit, top);
    // The ledger init made is ready for login locks: `curfew locks` reads it.
    let (code, out, err) = run(&["locks"], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn curfew_init_on_mariadb_names_a_missing_account() {
    let d = dir("mariadb-init-missing");
    let password_file = d.0.join("maria.password");
    let maria = mariadb(&password_file);
    let policy = d.0.join("curfew.toml");
    std::fs::write(
        &policy,
        format!(
            "[[target]]\nname = \"maria\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1s\"\n",
            maria.url(AGENT, ""),
            password_file.display(),
        ),
    )
    .unwrap();
    maria
        .admin_sql("GRANT ALL PRIVILEGES ON *.* TO 'curfew_agent'@'127.0.0.1' WITH GRANT OPTION;")
        .unwrap();
    let (code, out, err) = run(&["init", "--agent-role", "nobody'here"], &policy);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("no account named `nobody'here` exists"),
        "{err}"
    );
}
