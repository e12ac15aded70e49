//! The anchored audit trail with a real agent: the agent anchors its chain's head on the target
//! as it goes; a log with one termination removed and every hash recomputed, and a log cut
//! short with `head`, verify on their own but fail `curfew audit verify` and `curfew report`
//! (exit 3, naming the first missing or differing seq) once the anchors are read; a rotated log
//! set verifies as one chain, as files and as a directory, with its signed checkpoints.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Dir, agent, cluster, curfew, dir, lines_of, signal, wait_for};
use curfew_audit::{AuditLog, Entry, Event, Record};

const RULES: &str = r#"
[[rule]]
name = "inactivity"
idle = "1s"
roles = ["kim"]
"#;

/// `curfew ARGS -c POLICY`: exit code, stdout, stderr.
fn run(args: &[&str], paths: &[&Path], policy: &Path) -> (Option<i32>, String, String) {
    let out = curfew()
        .args(args)
        .args(paths)
        .arg("-c")
        .arg(policy)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// End `n` sessions of kim through the agent (idle 1 s).
fn terminations(cluster: &curfew_sandbox::Cluster, n: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut ended = Vec::new();
        for _ in 0..n {
            ended.push(common::session(cluster, "kim").await);
        }
        for (_client, _pid, rx) in &ended {
            rx.recv_timeout(Duration::from_secs(15)).unwrap();
        }
    });
}

/// The highest anchored seq on the target (as the superuser).
fn anchored(cluster: &curfew_sandbox::Cluster) -> u64 {
    let top = cluster
        .psql("SELECT coalesce(max(seq), 0) FROM curfew.anchor")
        .unwrap();
    top.trim().parse().unwrap()
}

fn records(paths: &[PathBuf]) -> Vec<Entry> {
    let mut all = Vec::new();
    let v = curfew_audit::verify_chain(paths, |e| all.push(e.clone())).unwrap();
    assert!(v.is_intact(), "{:?}", v.verification.problems);
    all
}

/// The forger, holding write access to the log: the termination with intent seq `intent` and
/// its outcome are dropped, the rest renumbered (outcomes' intent references too) and every
/// hash recomputed, into one file.
fn forge(entries: &[Entry], intent: u64, to: &Path) {
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
}

/// The seq named by "first missing or differing seq N" in `text`.
fn first_named(text: &str) -> u64 {
    let at = text
        .find("first missing or differing seq ")
        .unwrap_or_else(|| panic!("no first seq named in:\n{text}"));
    text[at + "first missing or differing seq ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// `curfew report --format md` over the log set `log` (a file or a directory).
fn report_md(log: &Path, policy: &Path) -> (Option<i32>, String, String) {
    run(
        &[
            "report",
            "--format",
            "md",
            "--audit-log",
            log.to_str().unwrap(),
        ],
        &[],
        policy,
    )
}

/// A directory with a policy for `cluster` whose audit log is in it, and `curfew init` run on
/// the cluster (so that it has an anchor store): the directory, the policy, the log's path.
fn initialised(cluster: &curfew_sandbox::Cluster, name: &str) -> (Dir, PathBuf, PathBuf) {
    let d = dir(name);
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        common::policy_text(cluster, RULES).replace(
            "[agent]\n",
            &format!("[agent]\naudit_log = \"{}\"\n", audit.display()),
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["init", "--admin-user", "postgres"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
    (d, policy, audit)
}

#[test]
fn forged_and_cut_logs_fail_against_the_anchors_and_a_rotated_set_verifies_as_one_chain() {
    let cluster = cluster();
    let d = dir("anchor");
    let logs = d.0.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let policy = d.0.join("curfew.toml");
    let audit = logs.join("audit.jsonl");
    let key = d.0.join("checkpoint.key");
    let (code, out, err) = run(
        &["audit", "keygen", "--out", key.to_str().unwrap()],
        &[],
        &policy,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let public = d.0.join("checkpoint.key.pub");
    assert!(public.exists());
    std::fs::write(
        &policy,
        common::policy_text(&cluster, RULES).replace(
            "[agent]\n",
            &format!(
                "[audit]\nsigning_key = \"{}\"\n\n[agent]\naudit_log = \"{}\"\n",
                key.display(),
                audit.display()
            ),
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["init", "--admin-user", "postgres"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");

    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    terminations(&cluster, 2);
    // Rotation: the file is moved away, SIGHUP makes the agent continue in a new one.
    let rotated = logs.join("audit.jsonl.1");
    std::fs::rename(&audit, &rotated).unwrap();
    signal(&agent, "HUP");
    wait_for(&lines, "continues the audit log", Duration::from_secs(10));
    terminations(&cluster, 2);
    // The agent anchors the head within a tick or so.
    let set = vec![rotated.clone(), audit.clone()];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Read while the agent writes: an intent may still wait for its outcome.
        let last = curfew_audit::verify_chain(&set, |_| {})
            .unwrap()
            .last_seq
            .unwrap();
        if anchored(&cluster) == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the head seq {last} was not anchored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&agent, "TERM");
    assert!(agent.wait().unwrap().success());
    let all = records(&set);
    let top = anchored(&cluster);
    assert!(top >= 8, "anchored up to seq {top}");

    // (c) The rotated set is one chain, as files and as a directory, anchored and signed.
    let public_arg = public.to_str().unwrap();
    for paths in [
        vec![rotated.as_path(), audit.as_path()],
        vec![logs.as_path()],
    ] {
        let (code, out, err) = run(
            &["audit", "verify", "--public-key", public_arg],
            &paths,
            &policy,
        );
        assert_eq!(code, Some(0), "{out}{err}");
        println!("curfew audit verify --public-key KEY {paths:?}:\n{out}");
        assert!(
            out.contains("in 2 file(s), chain and sequence unbroken"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "anchors on target \"db\": {top} compared, confirm the log up to seq {top}"
            )) || out.contains(&format!("confirm the log up to seq {top} ")),
            "{out}"
        );
        assert!(out.contains("signed checkpoints: "), "{out}");
        assert!(!out.contains("signed checkpoints: 0 valid"), "{out}");
    }
    // The default is the policy's audit_log and its rotated files beside it.
    let (code, out, err) = run(&["audit", "verify"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(" in 2 file(s)"), "{out}");
    // The current file alone: the rotated file's anchored records are missing from it.
    let (code, out, err) = run(&["audit", "verify"], &[audit.as_path()], &policy);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("continues a previous file"), "{out}");
    assert!(out.contains("are not in the files given"), "{out}");
    let (code, md, err) = report_md(&logs, &policy);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        md.contains(&format!("no record up to seq {top} was altered")),
        "{md}"
    );

    // (b) Cut short with head: one record of the current file left.
    let cut = d.0.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::copy(&rotated, cut.join("audit.jsonl.1")).unwrap();
    let head = std::process::Command::new("head")
        .args(["-n", "1"])
        .arg(&audit)
        .output()
        .unwrap();
    std::fs::write(cut.join("audit.jsonl"), head.stdout).unwrap();
    let kept = records(std::slice::from_ref(&cut)).last().unwrap().seq;
    let (code, out, _) = run(&["audit", "verify", "--offline"], &[cut.as_path()], &policy);
    assert_eq!(
        code,
        Some(0),
        "without the anchors the cut goes unnoticed: {out}"
    );
    let (code, out, err) = run(&["audit", "verify"], &[cut.as_path()], &policy);
    println!("curfew audit verify CUT:\n{out}{err}");
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains(&format!("records from seq {} missing", kept + 1)),
        "{out}"
    );
    assert_eq!(first_named(&err), kept + 1, "{err}");
    let (code, md, err) = report_md(&cut, &policy);
    assert_eq!(code, Some(3), "{err}");
    assert!(md.contains("**CONTRADICTED.**"), "{md}");
    assert!(
        md.contains(&format!("records from seq {} missing", kept + 1)),
        "{md}"
    );
    assert_eq!(first_named(&err), kept + 1, "{err}");

    // (a) One termination removed and every hash recomputed.
    let intent = all
        .iter()
        .find(|e| e.event == "termination_intent")
        .unwrap()
        .seq;
    let forged = d.0.join("forged.jsonl");
    forge(&all, intent, &forged);
    let (code, out, _) = run(
        &["audit", "verify", "--offline"],
        &[forged.as_path()],
        &policy,
    );
    assert_eq!(
        code,
        Some(0),
        "the recomputed chain verifies on its own: {out}"
    );
    let (code, out, err) = run(&["audit", "verify"], &[forged.as_path()], &policy);
    println!("curfew audit verify FORGED:\n{out}{err}");
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("is not the record anchored at"), "{out}");
    let first = first_named(&err);
    assert!(
        first <= intent,
        "first named seq {first}, removed seq {intent}: {err}"
    );
    let (code, out, _) = run(
        &["audit", "verify", "--offline", "--public-key", public_arg],
        &[forged.as_path()],
        &policy,
    );
    assert_eq!(code, Some(3), "the signed checkpoints fail too: {out}");
    assert!(out.contains("is not the record signed"), "{out}");
    let (code, md, err) = report_md(&forged, &policy);
    assert_eq!(code, Some(3), "{err}");
    assert!(md.contains("**CONTRADICTED.**"), "{md}");
    assert!(md.contains("is not the record anchored at"), "{md}");
    assert!(!md.contains("was altered, removed or inserted."), "{md}");
}

#[test]
fn a_dry_run_agent_anchors_its_log_too_and_an_offline_check_says_so() {
    let cluster = cluster();
    let (_d, policy, audit) = initialised(&cluster, "anchor-dry");
    let mut agent = common::agent_command(&policy, &audit)
        .arg("--dry-run")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let _lines = lines_of(&mut agent);
    let deadline = Instant::now() + Duration::from_secs(20);
    while anchored(&cluster) == 0 {
        assert!(Instant::now() < deadline, "a dry run anchored nothing");
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&agent, "TERM");
    assert!(agent.wait().unwrap().success());
    let (code, out, err) = run(&["audit", "verify", "--offline"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("anchors: not checked: --offline"), "{out}");
    let (code, out, err) = run(&["audit", "verify"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("anchors on target \"db\": "), "{out}");
    assert!(out.contains("confirm the log up to seq"), "{out}");
}

/// The chains anchored on the target, oldest first.
fn chains(cluster: &curfew_sandbox::Cluster) -> Vec<String> {
    cluster
        .psql("SELECT chain FROM curfew.anchor GROUP BY chain ORDER BY min(anchored_at)")
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Run a dry-run agent until the target holds anchors of `n` chains.
fn run_agent_until(cluster: &curfew_sandbox::Cluster, policy: &Path, audit: &Path, n: usize) {
    let mut agent = common::agent_command(policy, audit)
        .arg("--dry-run")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let _lines = lines_of(&mut agent);
    let deadline = Instant::now() + Duration::from_secs(20);
    while chains(cluster).len() < n {
        assert!(Instant::now() < deadline, "no anchor of chain {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&agent, "TERM");
    assert!(agent.wait().unwrap().success());
}

#[test]
fn a_replaced_log_an_emptied_log_and_an_unreadable_anchor_store_do_not_verify() {
    let cluster = cluster();
    let (d, policy, audit) = initialised(&cluster, "anchor-replaced");
    run_agent_until(&cluster, &policy, &audit, 1);
    let (code, out, err) = run(&["audit", "verify"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");

    // `: > audit.jsonl` with the agent stopped: no record, but the target holds anchors
    // stored from this host with this credential.
    std::fs::write(&audit, "").unwrap();
    let (code, out, err) = run(&["audit", "verify"], &[], &policy);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("this log holds no record"), "{out}");

    // Restarted on the emptied log: a new chain, anchored as it goes.
    run_agent_until(&cluster, &policy, &audit, 2);
    let old = chains(&cluster)[0].clone();
    let (code, out, err) = run(&["audit", "verify"], &[], &policy);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains(&format!("chain {old} was anchored in target \"db\"")),
        "{out}"
    );
    assert!(out.contains(&format!("--other-chain {old}")), "{out}");
    let (code, out, _) = run(&["report", "--format", "md"], &[], &policy);
    assert_eq!(code, Some(3), "{out}");
    assert!(!out.contains("confirmed by anchors"), "{out}");
    // Replicas on one host: acknowledged, and said so.
    let (code, out, err) = run(&["audit", "verify", "--other-chain", &old], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("acknowledged as another agent's log"), "{out}");
    let (code, _, err) = run(&["audit", "verify", "--other-chain", "abc"], &[], &policy);
    assert_eq!(code, Some(2), "{err}");

    // A private key given as the public one.
    let key = d.0.join("checkpoint.key");
    let (code, out, err) = run(
        &["audit", "keygen", "--out", key.to_str().unwrap()],
        &[],
        &policy,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = run(
        &[
            "audit",
            "verify",
            "--offline",
            "--public-key",
            key.to_str().unwrap(),
        ],
        &[],
        &policy,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("this is the private checkpoint key"), "{err}");

    // The anchor store unreadable (a forger can arrange it): NOT CONFIRMED, exit 3.
    cluster.psql("DROP SCHEMA curfew CASCADE").unwrap();
    let (code, out, err) = run(&["audit", "verify", "--other-chain", &old], &[], &policy);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.starts_with("NOT CONFIRMED: "), "{out}");
    assert!(err.contains("NOT CONFIRMED"), "{err}");
    let (code, out, err) = run(&["audit", "verify", "--offline"], &[], &policy);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("confirmed"), "{out}");
}

#[test]
fn a_log_verified_without_a_policy_says_nothing_outside_it_was_checked() {
    let d = dir("anchor-nopolicy");
    let audit = d.0.join("audit.jsonl");
    let log = AuditLog::open(&audit).unwrap();
    log.append(Record::new(jiff::Timestamp::now(), Event::SessionReported))
        .unwrap();
    let (code, out, err) = run(
        &["audit", "verify"],
        &[audit.as_path()],
        &d.0.join("none.toml"),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("nothing outside the log was checked (no policy file"),
        "{out}"
    );
    assert!(!out.contains("confirmed"), "{out}");
}

#[test]
fn an_agent_on_a_log_with_a_damaged_first_line_warns_once_that_it_cannot_anchor() {
    let cluster = cluster();
    let (_d, policy, audit) = initialised(&cluster, "anchor-damaged");
    let log = AuditLog::open(&audit).unwrap();
    for _ in 0..2 {
        log.append(Record::new(jiff::Timestamp::now(), Event::SessionReported))
            .unwrap();
    }
    drop(log);
    let text = std::fs::read_to_string(&audit).unwrap();
    std::fs::write(&audit, format!("#{}", &text[1..])).unwrap();
    let mut agent = common::agent_command(&policy, &audit)
        .arg("--dry-run")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let lines = lines_of(&mut agent);
    let seen = wait_for(
        &lines,
        "the audit chain cannot be anchored",
        Duration::from_secs(20),
    );
    assert!(
        seen.last().unwrap().contains("the first line of"),
        "{seen:?}"
    );
    // Several ticks later: said once, and nothing was anchored.
    std::thread::sleep(Duration::from_secs(3));
    signal(&agent, "TERM");
    assert!(agent.wait().unwrap().success());
    let again: Vec<String> = lines
        .try_iter()
        .filter(|l| l.contains("cannot be anchored"))
        .collect();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(anchored(&cluster), 0);
}
