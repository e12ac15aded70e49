//! The `curfew` binary against a real PostgreSQL: the agent as a process (SIGHUP reload, SIGTERM
//! stop), `plan`, `audit verify` and the demo.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::{
    agent, cluster, curfew, dir, events, lines_of, policy_text, session, signal, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reloads_on_sighup_keeps_a_bad_policy_out_and_stops_on_sigterm() {
    let cluster = cluster();
    let d = dir("agent");
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(
        &policy,
        policy_text(
            &cluster,
            "[[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"kim\"]\n",
        ),
    )
    .unwrap();
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "connected", Duration::from_secs(20));
    let (_kim, kim_pid, kim_ended) = session(&cluster, "kim").await;

    // A broken file is rejected, and the running policy stays.
    std::fs::write(&policy, "[[rule]]\nname = \"idle\"\nidle = \"soon\"\n").unwrap();
    signal(&agent, "HUP");
    let seen = wait_for(&lines, "stays in force", Duration::from_secs(10));
    assert!(
        seen.iter().any(|l| l.contains("curfew.toml:3:8")),
        "{seen:#?}"
    );

    // Issue 13: an empty file is rejected like any invalid one; it does not switch curfew off.
    std::fs::write(&policy, "").unwrap();
    signal(&agent, "HUP");
    let seen = wait_for(&lines, "stays in force", Duration::from_secs(10));
    assert!(
        seen.iter()
            .any(|l| l.contains("curfew.toml:1:1: the policy defines no [[rule]]")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("curfew.toml:1:1: the policy names no [[target]]")),
        "{seen:#?}"
    );

    // A valid, stricter policy is applied.
    std::fs::write(
        &policy,
        policy_text(
            &cluster,
            "[[rule]]\nname = \"idle\"\nidle = \"1s\"\nroles = [\"kim\"]\n",
        ),
    )
    .unwrap();
    signal(&agent, "HUP");
    let seen = wait_for(&lines, "ended pid", Duration::from_secs(10));
    assert!(
        seen.last().unwrap().contains(&format!("pid {kim_pid} (")),
        "{seen:#?}"
    );
    kim_ended.recv_timeout(Duration::from_secs(5)).unwrap();

    signal(&agent, "TERM");
    let status = agent.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let recorded = events(&audit);
    assert_eq!(
        recorded.iter().filter(|e| *e == "policy_rejected").count(),
        2,
        "{recorded:?}"
    );
    assert_eq!(
        recorded.iter().filter(|e| *e == "policy_loaded").count(),
        2,
        "the empty file must not have been loaded: {recorded:?}"
    );
    for expected in [
        "agent_started",
        "policy_loaded",
        "policy_rejected",
        "termination_intent",
        "session_terminated",
        "agent_stopped",
    ] {
        assert!(
            recorded.iter().any(|e| e == expected),
            "{expected} missing from {recorded:?}"
        );
    }
    let verify = curfew()
        .args(["audit", "verify", audit.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains(": intact: "));
    let show = curfew()
        .args([
            "audit",
            "show",
            audit.to_str().unwrap(),
            "--event",
            "session_terminated",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&show.stdout);
    assert!(
        table.contains("session_terminated") && table.contains("kim") && table.contains("idle for"),
        "{table}"
    );
}

#[test]
fn audit_verify_names_the_tampered_line_and_exits_3() {
    let d = dir("tamper");
    let path = d.0.join("audit.jsonl");
    {
        let log = curfew_audit::AuditLog::open(&path).unwrap();
        for i in 0..4 {
            let record = curfew_audit::Record::new(
                jiff::Timestamp::now(),
                curfew_audit::Event::SessionReported,
            )
            .with_reason(format!("record {i}"));
            log.append(record).unwrap();
        }
    }
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("record 2", "record X", 1)).unwrap();
    let out = curfew()
        .args(["audit", "verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}:3: line 3 (seq 3) was altered", path.display())),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is NOT intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_what_will_happen_to_each_session() {
    let cluster = cluster();
    let d = dir("plan");
    let policy = d.0.join("curfew.toml");
    std::fs::write(&policy, policy_text(&cluster, "[exempt]\nroles = [\"postgres\"]\n\n[[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"kim\"]\n")).unwrap();
    let (_kim, kim_pid, _) = session(&cluster, "kim").await;
    let (_admin, admin_pid, _) = session(&cluster, "postgres").await;
    let now = curfew()
        .args(["plan", "-c", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        now.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&now.stderr)
    );
    let table = String::from_utf8_lossy(&now.stdout);
    let kim_line = table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{kim_pid} ")))
        .unwrap();
    assert!(
        kim_line.contains("in 59m") && kim_line.contains("idle"),
        "{table}"
    );
    let admin_line = table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{admin_pid} ")))
        .unwrap();
    assert!(admin_line.contains("exempt ([exempt] roles)"), "{table}");
    let later = curfew()
        .args(["plan", "-c", policy.to_str().unwrap(), "--at", "+2h"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&later.stdout);
    let kim_line = table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{kim_pid} ")))
        .unwrap();
    assert!(kim_line.contains("ENDS NOW: idle (idle for 2h"), "{table}");
    let bad = curfew()
        .args(["plan", "-c", policy.to_str().unwrap(), "--at", "tomorrow"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_agent_refuses_to_run_without_an_audit_log() {
    let d = dir("no-audit");
    let policy = d.0.join("curfew.toml");
    std::fs::write(&policy, "[[target]]\nname = \"db\"\nurl = \"postgresql://a@127.0.0.1/postgres?sslmode=disable\"\n\n[[rule]]\nname = \"idle\"\nidle = \"1m\"\n").unwrap();
    let out = curfew()
        .args(["agent", "-c", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no audit log"));
}

#[test]
fn the_demo_runs_to_the_end_and_leaves_nothing_running() {
    let out = curfew().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("All 7 sessions were treated as the policy says."),
        "{stdout}"
    );
    assert!(
        stdout.contains("hash chain and sequence intact"),
        "{stdout}"
    );
    // The humans went through the gateway (the session registry lists each with its client's
    // address; the demo checks each one) and the application and the backup did not.
    assert!(
        stdout.contains("Paths: 3 sessions came through the gateway")
            && stdout.contains("4 connected directly"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Summary:"))
        .take_while(|l| !l.is_empty())
        .collect();
    for (role, path) in [
        ("analyst_kim", "gateway"),
        ("analyst_lee", "gateway"),
        ("ops_ann", "gateway"),
        ("appuser", "direct"),
        ("backupuser", "direct"),
        ("a second session", "direct"),
    ] {
        let row = rows
            .iter()
            .find(|r| r.contains(role))
            .unwrap_or_else(|| panic!("no summary row for {role}:\n{stdout}"));
        assert!(
            row.split_whitespace().any(|word| word == path),
            "{role} should be {path}: {row}"
        );
    }
    // A gateway user read the gateway's own FATAL, naming the rule; the analyst's direct
    // second session read only the server's.
    assert!(
        stdout.lines().any(|l| l
            .contains("FATAL 25P03: terminating connection: idle in transaction for ")
            && l.contains("limit 3s (rule abandoned-transaction)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("ended by abandoned-transaction (gateway)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FATAL 57P01: terminating connection due to administrator command"),
        "{stdout}"
    );
    // Neither the cluster's port nor the gateway's answers any more.
    let port_after = |marker: &str, end: char| -> u16 {
        stdout
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split(end).next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port after {marker:?}:\n{stdout}"))
    };
    let port = port_after("on 127.0.0.1:", ',');
    let gateway = port_after("gateway: listens at 127.0.0.1:", ',');
    assert_ne!(port, gateway);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", gateway)).is_err());
}

/// Regression: a demo stopped by SIGTERM (as `scripts/screenshot-status` stops it) or Ctrl-C
/// used to leave its PostgreSQL cluster running.
#[test]
fn an_interrupted_demo_leaves_nothing_running() {
    // Its standard error in a file, shown when the demo ends early (CI saw that once, on
    // PostgreSQL 17 under load, with nothing to say why).
    let stderr_dir = dir("demo-stderr");
    let stderr_path = stderr_dir.join("stderr");
    let stderr_file = std::fs::File::create(&stderr_path).unwrap();
    let mut demo = curfew()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(stderr_file)
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut port = None;
    let mut gateway = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.split("on 127.0.0.1:").nth(1) {
            port = rest
                .split(',')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok());
        }
        if let Some(rest) = line.split("gateway: listens at 127.0.0.1:").nth(1) {
            gateway = rest
                .split(',')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok());
        }
        if line.starts_with("Enforcing") {
            break;
        }
    }
    let port = port.expect("the demo never said where its cluster listens");
    let gateway = gateway.expect("the demo never said where its gateway listens");
    let work_dir = std::env::temp_dir().join(format!("curfew-demo-{}", demo.id()));
    assert!(
        work_dir.exists(),
        "the demo ended before enforcing; its stderr:\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(std::net::TcpStream::connect(("127.0.0.1", gateway)).is_ok());
    signal(&demo, "TERM");
    let status = demo.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the cluster still answers on {port}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", gateway)).is_err(),
        "the gateway still answers on {gateway}"
    );
    assert!(!work_dir.exists(), "{} was left behind", work_dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_unlock_through_the_running_agent() {
    let cluster = cluster();
    cluster
        .psql("CREATE ROLE ana LOGIN; CREATE ROLE admin_x LOGIN CREATEROLE;")
        .unwrap();
    let d = dir("lock");
    let policy = d.0.join("curfew.toml");
    let audit = d.0.join("audit.jsonl");
    // A policy needs a rule (issue 13); this one never touches ana.
    std::fs::write(
        &policy,
        policy_text(
            &cluster,
            "[[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"kim\"]\n",
        ),
    )
    .unwrap();
    let config = policy.to_str().unwrap();
    // Before `curfew init`: the lock is refused, saying what to run.
    let early = curfew()
        .args(["lock", "ana", "--reason", "x", "-c", config])
        .output()
        .unwrap();
    assert_eq!(early.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("curfew init"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    // init as curfew's own role (no administrator) is refused; as the superuser it installs.
    let own = curfew().args(["init", "-c", config]).output().unwrap();
    assert_eq!(own.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&own.stderr).contains("--admin-user"));
    let init = curfew()
        .args(["init", "--admin-user", "postgres", "-c", config])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&init.stdout);
    assert_eq!(
        init.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(
        said.contains("was created") && said.contains("role \"curfew_agent\" may read the ledger"),
        "{said}"
    );
    let mut agent = agent(&policy, &audit);
    let lines = lines_of(&mut agent);
    wait_for(&lines, "this agent leads", Duration::from_secs(20));
    let (_ana, _, ana_ended) = session(&cluster, "ana").await;

    let lock = curfew()
        .args([
            "lock",
            "ana",
            "--reason",
            "INC-7: credentials leaked",
            "-c",
            config,
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&lock.stdout);
    assert_eq!(
        lock.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    assert!(
        said.contains("role \"ana\" is locked out: login disabled, 1 session ended"),
        "{said}"
    );
    ana_ended.recv_timeout(Duration::from_secs(10)).unwrap();

    let list = curfew().args(["locks", "-c", config]).output().unwrap();
    let table = String::from_utf8_lossy(&list.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("ana"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("incident") && row.contains("disabled") && row.contains("INC-7"),
        "{table}"
    );

    let unlock = curfew()
        .args(["unlock", "ana", "--reason", "resolved", "-c", config])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&unlock.stdout);
    assert_eq!(unlock.status.code(), Some(0), "{said}");
    assert!(said.contains("role \"ana\" can log in again"), "{said}");
    let (_back, _, _) = session(&cluster, "ana").await;

    let superuser = curfew()
        .args(["lock", "postgres", "--reason", "x", "-c", config])
        .output()
        .unwrap();
    assert_eq!(superuser.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&superuser.stderr).contains("is a superuser"));
    let admin = curfew()
        .args(["lock", "admin_x", "--reason", "x", "-c", config])
        .output()
        .unwrap();
    assert_eq!(admin.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&admin.stderr).contains("has CREATEROLE"),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let missing = curfew()
        .args(["lock", "nobody", "--reason", "x", "-c", config])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no role named \"nobody\""));

    signal(&agent, "TERM");
    assert_eq!(agent.wait().unwrap().code(), Some(0));
    let recorded = events(&audit);
    for expected in [
        "lock_created",
        "login_locked",
        "session_terminated",
        "lock_released",
        "login_restored",
    ] {
        assert!(
            recorded.iter().any(|e| e == expected),
            "{expected} missing from {recorded:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_when_logins_are_locked_and_restored() {
    let cluster = cluster();
    cluster.psql("CREATE ROLE analyst_ann LOGIN").unwrap();
    let d = dir("plan-locks");
    let policy = d.0.join("curfew.toml");
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let end = start + jiff::SignedDuration::from_hours(2);
    let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
    std::fs::write(
        &policy,
        policy_text(
            &cluster,
            &format!(
                "[[rule]]\nname = \"upgrade\"\ndeny = [\"{} - {}\"]\ntimezone = \"UTC\"\nlock_logins = true\nroles = [\"analyst_*\"]\n",
                fmt(start),
                fmt(end)
            ),
        ),
    )
    .unwrap();
    let config = policy.to_str().unwrap();
    let now = curfew().args(["plan", "-c", config]).output().unwrap();
    let text = String::from_utf8_lossy(&now.stdout);
    assert!(text.contains("Login locks at"), "{text}");
    assert!(
        text.contains("rule upgrade: logins of analyst_ann are allowed until"),
        "{text}"
    );
    let during = curfew()
        .args(["plan", "-c", config, "--at", "+90m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&during.stdout);
    assert!(
        text.contains("rule upgrade: logins of analyst_ann are LOCKED until")
            && text.contains("(login restored then)"),
        "{text}"
    );
}
