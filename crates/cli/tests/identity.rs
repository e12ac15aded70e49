//! Who did it: `curfew lock` / `unlock` record the user of the process's real uid and the
//! database role curfew connected as, never `$USER`; `unlock` needs a reason.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{cluster, curfew, dir, policy_text, text};

/// The records of an audit log as JSON.
fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn user_the_ciso_curfew_unlock_does_not_record_the_ciso() {
    let cluster = cluster();
    cluster.psql("CREATE ROLE ana LOGIN;").unwrap();
    let d = dir("identity");
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
    let config = policy.to_str().unwrap();
    let audit_arg = audit.to_str().unwrap();
    let init = curfew()
        .args(["init", "--admin-user", "postgres", "-c", config])
        .output()
        .unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    // Whoever the environment claims to be...
    let pretend = |command: &mut std::process::Command| {
        command
            .env("USER", "the_ciso")
            .env("LOGNAME", "the_ciso")
            .env("SUDO_USER", "the_ciso");
    };
    let mut lock = curfew();
    lock.args(["lock", "ana", "--reason", "INC-9: leaked", "-c", config])
        .args(["--audit-log", audit_arg]);
    pretend(&mut lock);
    let lock = lock.output().unwrap();
    assert_eq!(
        lock.status.code(),
        Some(0),
        "{}{}",
        text(&lock.stdout),
        text(&lock.stderr)
    );
    assert!(
        !text(&lock.stdout).contains("the_ciso"),
        "{}",
        text(&lock.stdout)
    );

    // No reason, no unlock: a usage error that says what is missing, and nothing released.
    let mut bare = curfew();
    bare.args(["unlock", "ana", "-c", config, "--audit-log", audit_arg]);
    let bare = bare.output().unwrap();
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        text(&bare.stderr).contains("needs --reason"),
        "{}",
        text(&bare.stderr)
    );

    let mut unlock = curfew();
    unlock
        .args(["unlock", "ana", "--reason", "INC-9 closed", "-c", config])
        .args(["--audit-log", audit_arg]);
    pretend(&mut unlock);
    let unlock = unlock.output().unwrap();
    assert_eq!(
        unlock.status.code(),
        Some(0),
        "{}{}",
        text(&unlock.stdout),
        text(&unlock.stderr)
    );

    let all = records(&audit);
    let uid = rustix::process::getuid().as_raw();
    for event in ["lock_created", "lock_released"] {
        let record = all
            .iter()
            .find(|r| r["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {all:#?}"));
        let actor = &record["detail"]["actor"];
        assert_eq!(actor["uid"], uid, "{record}");
        assert_eq!(actor["db_role"], "curfew_agent", "{record}");
        assert_ne!(actor["os_user"], "the_ciso", "{record}");
        // The role comes from the server's stamp, which the command cannot choose.
        assert_eq!(actor["server"]["session_user"], "curfew_agent", "{record}");
        assert!(actor["server"]["pid"].as_i64().is_some(), "{record}");
    }
    let released = all.iter().find(|r| r["event"] == "lock_released").unwrap();
    assert_eq!(released["detail"]["release_reason"], "INC-9 closed");
    assert!(
        released["reason"]
            .as_str()
            .unwrap()
            .ends_with(": INC-9 closed"),
        "{released}"
    );
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(!log.contains("the_ciso"), "{log}");
    // The ledger too: `curfew locks --all` shows who, by the uid.
    let list = curfew()
        .args(["locks", "--all", "-c", config])
        .output()
        .unwrap();
    let table = text(&list.stdout);
    assert!(!table.contains("the_ciso"), "{table}");
    assert!(table.contains(&format!("uid {uid}")), "{table}");
}
