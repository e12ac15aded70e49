//! The agent process when its audit log cannot be written: a full disk (a small tmpfs, filled
//! up for real), a log deleted under it, a log rotated with `mv` + SIGHUP. Nothing is ended
//! while no record can be written; enforcement resumes by itself; the logs verify.
//!
//! The full-disk test mounts a tmpfs, which needs root (as in CI); elsewhere it fails and
//! says so.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    KillOnDrop, Response, agent, assert_audit_verifies, cluster, curfew, dir, events, http_get,
    lines_of, session, signal, text, wait_for, wait_for_any,
};
use curfew_audit::{AuditLog, Event, Record};

/// An agent with one rule: kim's sessions idle for 1 s are ended.
fn policy(dir: &Path, cluster: &curfew_sandbox::Cluster, listen: bool) -> PathBuf {
    let policy = dir.join("curfew.toml");
    let listen = if listen {
        "listen = \"127.0.0.1:0\"\n"
    } else {
        ""
    };
    std::fs::write(
        &policy,
        format!(
            "[agent]\ninterval = \"1s\"\n{listen}\n[[target]]\nname = \"db\"\nurl = \"{}\"\n\n\
             [[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n",
            cluster.url("curfew_agent", "postgres")
        ),
    )
    .unwrap();
    policy
}

/// Nothing ends the session for `quiet`.
fn stays(ended: &mpsc::Receiver<()>, quiet: Duration, why: &str) {
    assert!(
        ended.recv_timeout(quiet).is_err(),
        "a session was ended while {why}"
    );
}

fn stop(mut agent: KillOnDrop) {
    signal(&agent, "TERM");
    assert_eq!(agent.wait().unwrap().code(), Some(0));
}

/// `curfew audit verify FILE`'s standard output; it must exit 0.
fn verified(file: &Path) -> String {
    let out = curfew()
        .args(["audit", "verify"])
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A tmpfs mounted on a fresh directory; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let point = dir.join("tmpfs");
        std::fs::create_dir_all(&point).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&point)
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "this test fills a small tmpfs to make the agent's audit writes really fail (root ignores permissions), and mounting one failed ({status:?}): run it as root (or with CAP_SYS_ADMIN)"
        );
        Tmpfs(point)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system of `audit` up, then the room left in the log's last page, by
/// appending small records to the log as a second writer until one does not fit: then no
/// intent record (they are larger) fits either.
fn fill(filler: &Path, audit: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write(&chunk).is_ok_and(|n| n > 0) {}
    let log = AuditLog::open(audit).unwrap();
    for _ in 0..100 {
        let padding = Record::new(jiff::Timestamp::now(), Event::ConfigurationChecked);
        if log.append(padding).is_err() {
            return;
        }
    }
    panic!("the audit log never filled up");
}

fn healthz(address: &str, healthy: bool, limit: Duration) -> Response {
    let deadline = Instant::now() + limit;
    loop {
        match http_get(address, "/healthz") {
            Ok(r) if (r.code == 200) == healthy => return r,
            Ok(r) if Instant::now() > deadline => {
                panic!("/healthz still {} after {limit:?}:\n{}", r.code, r.body)
            }
            Err(e) if Instant::now() > deadline => panic!("/healthz: {e}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_terminations_until_there_is_room_again() {
    let cluster = cluster();
    let d = dir("audit-full");
    let disk = Tmpfs::mount(&d.0, "512k");
    let audit = disk.0.join("audit.jsonl");
    let policy = policy(&d.0, &cluster, true);
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    let address = common::listen_address(&lines);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    healthz(&address, true, Duration::from_secs(10));

    let filler = disk.0.join("filler");
    fill(&filler, &audit);
    let (_kim, kim_pid, kim_ended) = session(&cluster, "kim").await;
    wait_for(&lines, "No space left", Duration::from_secs(10));
    let r = healthz(&address, false, Duration::from_secs(5));
    assert!(r.body.contains("FAIL audit log"), "{}", r.body);
    stays(&kim_ended, Duration::from_secs(10), "the disk was full");

    std::fs::remove_file(&filler).unwrap();
    let seen = wait_for(&lines, "ended pid", Duration::from_secs(20));
    assert!(
        seen.last().unwrap().contains(&format!("pid {kim_pid} (")),
        "{seen:#?}"
    );
    kim_ended.recv_timeout(Duration::from_secs(5)).unwrap();
    healthz(&address, true, Duration::from_secs(10));
    stop(agent);

    let recorded = events(&audit);
    let resumed = recorded.iter().position(|e| e == "audit_resumed");
    let ended = recorded.iter().position(|e| e == "session_terminated");
    assert!(
        resumed.is_some() && resumed < ended,
        "audit_resumed, then session_terminated: {recorded:?}"
    );
    assert_audit_verifies(&audit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_log_stops_terminations_until_sighup_creates_a_new_one() {
    let cluster = cluster();
    let d = dir("audit-deleted");
    let audit = d.0.join("audit.jsonl");
    let policy = policy(&d.0, &cluster, false);
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));

    std::fs::remove_file(&audit).unwrap();
    let (_kim, kim_pid, kim_ended) = session(&cluster, "kim").await;
    wait_for(&lines, "deleted while in use", Duration::from_secs(10));
    stays(&kim_ended, Duration::from_secs(5), "the log was deleted");
    assert!(!audit.exists(), "nothing creates the log before SIGHUP");

    signal(&agent, "HUP");
    let seen = wait_for(&lines, "ended pid", Duration::from_secs(15));
    assert!(
        seen.last().unwrap().contains(&format!("pid {kim_pid} (")),
        "{seen:#?}"
    );
    kim_ended.recv_timeout(Duration::from_secs(5)).unwrap();
    stop(agent);

    let recorded = events(&audit);
    assert_eq!(recorded[0], "log_continued", "{recorded:?}");
    assert!(recorded.iter().any(|e| e == "session_terminated"));
    assert!(verified(&audit).contains("continues a previous file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_moved_away_and_sighup_go_on_in_a_new_file_that_continues_the_chain() {
    let cluster = cluster();
    let d = dir("audit-rotated");
    let audit = d.0.join("audit.jsonl");
    let rotated = d.0.join("audit.1");
    let policy = policy(&d.0, &cluster, false);
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let (_k1, _, k1_ended) = session(&cluster, "kim").await;
    k1_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    wait_for(&lines, "ended pid", Duration::from_secs(5));

    std::fs::rename(&audit, &rotated).unwrap();
    signal(&agent, "HUP");
    wait_for(&lines, "continues the audit log", Duration::from_secs(10));
    let (_k2, _, k2_ended) = session(&cluster, "kim").await;
    k2_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    wait_for(&lines, "ended pid", Duration::from_secs(5));
    stop(agent);

    let old = events(&rotated);
    let new = events(&audit);
    assert!(old.iter().any(|e| e == "session_terminated"), "{old:?}");
    assert!(
        new[0] == "log_continued" || new.iter().any(|e| e == "audit_resumed"),
        "{new:?}"
    );
    assert!(new.iter().any(|e| e == "session_terminated"), "{new:?}");
    assert!(!verified(&rotated).contains("continues"));
    let said = verified(&audit);
    let old_last = curfew_audit::verify(&rotated).unwrap().last_hash.unwrap();
    assert!(
        said.contains("continues a previous file") && said.contains(&old_last),
        "{said}"
    );
    let both = d.0.join("both.jsonl");
    let mut bytes = std::fs::read(&rotated).unwrap();
    bytes.extend(std::fs::read(&audit).unwrap());
    std::fs::write(&both, bytes).unwrap();
    assert_audit_verifies(&both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_truncated_in_place_goes_on_by_itself() {
    let cluster = cluster();
    let d = dir("audit-copytruncate");
    let audit = d.0.join("audit.jsonl");
    let copy = d.0.join("audit.1");
    let policy = policy(&d.0, &cluster, false);
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));

    // The agent records its leadership right after saying so: wait for that record, since
    // one appended between the copy and the truncation is lost (copytruncate's own race,
    // which verification of the two files would report as a gap).
    let limit = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .contains("\"leader_acquired\"")
    {
        assert!(
            std::time::Instant::now() < limit,
            "no leader_acquired record"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // logrotate's copytruncate, and no signal.
    std::fs::copy(&audit, &copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&audit)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Either the agent finds the file emptied and continues the chain in it (`log_continued`),
    // or a record it was writing raced the truncation: the check before the write passed, the
    // append landed at offset 0, and the shrink shows at the next append; the file then starts
    // with that record, still linked to the copy, and the log resumes (`audit_resumed`). CI
    // saw the second.
    wait_for_any(
        &lines,
        &[
            "continues the audit log",
            "the audit log takes records again",
        ],
        Duration::from_secs(15),
    );
    let (_kim, _, kim_ended) = session(&cluster, "kim").await;
    kim_ended.recv_timeout(Duration::from_secs(15)).unwrap();
    wait_for(&lines, "ended pid", Duration::from_secs(5));
    stop(agent);

    let new = events(&audit);
    assert!(
        new[0] == "log_continued" || new.iter().any(|e| e == "audit_resumed"),
        "{new:?}"
    );
    assert!(new.iter().any(|e| e == "session_terminated"), "{new:?}");
    assert!(verified(&audit).contains("continues a previous file"));
    let both = d.0.join("both.jsonl");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes.extend(std::fs::read(&audit).unwrap());
    std::fs::write(&both, bytes).unwrap();
    assert_audit_verifies(&both);
}
