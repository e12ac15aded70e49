//! Each typed detail serializes to exactly the bytes the writers' `json!` gave before (the
//! `json!` expressions below are copied from the writers as they were), reads back to the
//! same value, and reads older or damaged records as forgivingly as the report did.

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::event::Event;
use crate::line;
use crate::record::{Entry, Record};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The detail as it is written on disk, inside a sealed line, and read back.
fn written<D: Detail + std::fmt::Debug + PartialEq>(
    event: Event,
    typed: &D,
    before: &serde_json::Value,
) -> Entry {
    assert_eq!(
        serde_json::to_string(&typed.to_value()).unwrap(),
        serde_json::to_string(before).unwrap(),
        "the typed detail of {event} must serialize as the json! it replaces"
    );
    let record = Record::new(ts("2026-03-01T10:00:00Z"), event).with_details(typed);
    let with_json = Record::new(ts("2026-03-01T10:00:00Z"), event).with_detail(before.clone());
    let (line, hash) = line::seal(7, line::GENESIS, &record).unwrap();
    let (line_before, hash_before) = line::seal(7, line::GENESIS, &with_json).unwrap();
    assert_eq!(line, line_before, "same line bytes for {event}");
    assert_eq!(hash, hash_before);
    let entry: Entry = serde_json::from_slice(&line[..line.len() - 1]).unwrap();
    assert_eq!(&entry.details::<D>().unwrap(), typed, "{event} reads back");
    entry
}

#[test]
fn termination_details_are_written_as_before() {
    let deadline = ts("2026-03-01T09:59:58.5Z");
    let at = ts("2026-03-01T10:00:00.012345Z");
    let sha = "ab".repeat(32);
    let plan = TerminationPlan {
        deadline,
        policy_sha256: sha.clone(),
    };
    let before = json!({"deadline": deadline.to_string(), "policy_sha256": sha});
    written(Event::TerminationIntent, &plan, &before);
    written(Event::SessionReported, &plan, &before);
    let ended = SessionEnded {
        at,
        exit_confirmed_at: ts("2026-03-01T10:00:00.020Z"),
        lateness_ms: at.duration_since(deadline).as_secs_f64() * 1e3,
        gateway_client: None,
        gateway_id: None,
    };
    written(
        Event::SessionTerminated,
        &ended,
        &json!({
            "at": at.to_string(),
            "exit_confirmed_at": ts("2026-03-01T10:00:00.020Z").to_string(),
            "lateness_ms": at.duration_since(deadline).as_secs_f64() * 1e3,
        }),
    );
    written(
        Event::TerminationSkipped,
        &TerminationSkip { at },
        &json!({"at": at.to_string()}),
    );
    let reason = "terminating connection: permission denied".to_owned();
    written(
        Event::TerminationFailed,
        &TerminationFailure {
            error: reason.clone(),
        },
        &json!({"error": reason}),
    );
    written(
        Event::LeaderSquatted,
        &SquatEnding {
            lock_holder_pid: 4242,
        },
        &json!({ "lock_holder_pid": 4242 }),
    );
}

#[test]
fn warning_and_login_details_are_written_as_before() {
    let deadline = ts("2026-03-01T10:05:00Z");
    let now = ts("2026-03-01T10:00:00Z");
    let hooks = ["command", "webhook"];
    written(
        Event::SessionWarned,
        &SessionWarning {
            deadline,
            lead: "5m".to_owned(),
            ends_in_seconds: deadline.duration_since(now).as_secs_f64().max(0.0),
            hooks: hooks.iter().map(|h| (*h).to_owned()).collect(),
            policy_sha256: "cd".repeat(32),
        },
        &json!({
            "deadline": deadline.to_string(),
            "lead": "5m",
            "ends_in_seconds": deadline.duration_since(now).as_secs_f64().max(0.0),
            "hooks": hooks.iter().collect::<Vec<_>>(),
            "policy_sha256": "cd".repeat(32),
        }),
    );
    let ids: Vec<i64> = vec![3, 9];
    written(
        Event::LoginChangeIntent,
        &LoginChangePlan {
            action: "correct drift on".to_owned(),
            role: "app".to_owned(),
            role_oid: 16_384,
            locks: ids.clone(),
            policy_sha256: "ef".repeat(32),
        },
        &json!({
            "action": "correct drift on",
            "role": "app",
            "role_oid": 16_384_u32,
            "locks": ids,
            "policy_sha256": "ef".repeat(32),
        }),
    );
    for (event, error) in [
        (Event::LoginLocked, None),
        (Event::LoginChangeFailed, Some("connection lost".to_owned())),
    ] {
        written(
            event,
            &LoginChangeResult {
                role: Some("app".to_owned()),
                role_oid: Some(16_384),
                error: error.clone(),
            },
            &json!({"role": "app", "role_oid": 16_384_u32, "error": error}),
        );
    }
}

#[test]
fn lock_details_are_written_as_before_with_and_without_an_actor() {
    let created_at = ts("2026-03-01T08:00:00Z");
    let expires_at: Option<Timestamp> = Some(ts("2026-03-01T20:00:00Z"));
    let released_at: Option<Timestamp> = None;
    let released_by: Option<&str> = None;
    let before = json!({
        "lock_id": 12_i64,
        "role": "app",
        "kind": "manual",
        "rule": Option::<String>::None,
        "created_by": "alice (uid 1000, database role curfew_agent)",
        "created_at": created_at.to_string(),
        "expires_at": expires_at.map(|t| t.to_string()),
        "released_by": released_by,
        "released_at": released_at.map(|t| t.to_string()),
    });
    let plain = LockRecord {
        lock_id: Some(12),
        role: Some("app".to_owned()),
        kind: Some("manual".to_owned()),
        rule: None,
        created_by: Some("alice (uid 1000, database role curfew_agent)".to_owned()),
        created_at: Some(created_at.to_string()),
        expires_at: expires_at.map(|t| t.to_string()),
        released_by: None,
        released_at: None,
        actor: None,
        release_reason: None,
    };
    let entry = written(Event::LockCreated, &plain, &before);
    assert_eq!(entry.details::<LockRecord>().unwrap().actor(), None);

    let actor = json!({"os_user": "alice", "uid": 1000, "db_role": "curfew_agent"});
    let mut with_actor = before.clone();
    let map = with_actor.as_object_mut().unwrap();
    map.insert("actor".to_owned(), actor.clone());
    map.insert("release_reason".to_owned(), json!("INC-4711 closed"));
    let typed = LockRecord {
        actor: Some(actor),
        release_reason: Some("INC-4711 closed".to_owned()),
        ..plain
    };
    let entry = written(Event::LockReleased, &typed, &with_actor);
    let read = entry.details::<LockRecord>().unwrap();
    assert_eq!(
        read.actor().and_then(|a| a.words()).as_deref(),
        Some("alice (uid 1000) as role curfew_agent")
    );
}

#[test]
fn continuity_details_are_written_as_before() {
    written(
        Event::AgentStarted,
        &AgentStart {
            version: "0.1.0".to_owned(),
            dry_run: false,
            pid: 777,
        },
        &json!({"version": "0.1.0", "dry_run": false, "pid": 777_u32}),
    );
    let targets = vec!["main".to_owned(), "reporting".to_owned()];
    written(
        Event::PolicyLoaded,
        &PolicyLoad {
            source: Some("/etc/curfew/policy.toml".to_owned()),
            sha256: Some("12".repeat(32)),
            policy_sha256: None,
            rules: Some(4),
            targets: targets.clone(),
        },
        &json!({
            "source": "/etc/curfew/policy.toml",
            "sha256": "12".repeat(32),
            "rules": 4_usize,
            "targets": targets,
        }),
    );
    let problems = vec!["policy.toml:3:1: unknown key `rulez`".to_owned()];
    written(
        Event::PolicyRejected,
        &PolicyRejection {
            source: "policy.toml".to_owned(),
            errors: problems.clone(),
        },
        &json!({"source": "policy.toml", "errors": problems}),
    );
    // A heartbeat with every optional key, and one with none.
    let since = ts("2026-03-01T09:58:00Z");
    let mut full = json!({"state": "audit_unwritable", "interval_ms": 60_000_u64});
    full["why"] = json!("disk full");
    full["clock_offset_ms"] = json!(-3_i64);
    full["since"] = json!(since.to_string());
    written(
        Event::Heartbeat,
        &Heartbeat {
            state: "audit_unwritable".to_owned(),
            interval_ms: Some(60_000),
            why: Some("disk full".to_owned()),
            clock_offset_ms: Some(-3),
            since: Some(since),
        },
        &full,
    );
    written(
        Event::Heartbeat,
        &Heartbeat {
            state: "enforcing".to_owned(),
            interval_ms: Some(60_000),
            why: None,
            clock_offset_ms: None,
            since: None,
        },
        &json!({"state": "enforcing", "interval_ms": 60_000_u64}),
    );
    written(
        Event::LeaderAcquired,
        &Leadership {
            lock_session_pid: 31,
            lock_session_start: ts("2026-03-01T07:00:00.5Z"),
        },
        &json!({
            "lock_session_pid": 31,
            "lock_session_start": ts("2026-03-01T07:00:00.5Z").to_string(),
        }),
    );
}

#[test]
fn the_logs_own_details_are_written_as_before() {
    let since = ts("2026-03-01T09:00:00Z");
    for (error, since) in [(Some("No space left on device"), Some(since)), (None, None)] {
        written(
            Event::AuditResumed,
            &AuditResumption {
                error: error.map(str::to_owned),
                since,
                owed_outcomes: 2,
            },
            &json!({
                "error": error,
                "since": since.map(|t| t.to_string()),
                "owed_outcomes": 2_usize,
            }),
        );
    }
    for chain in [Some("aa".repeat(32)), None] {
        written(
            Event::LogContinued,
            &LogContinuation {
                previous_seq: 41,
                previous_hash: "bb".repeat(32),
                chain: chain.clone(),
                why: "the log was rotated".to_owned(),
            },
            &json!({
                "previous_seq": 41_u64,
                "previous_hash": "bb".repeat(32),
                "chain": chain,
                "why": "the log was rotated",
            }),
        );
    }
    written(
        Event::Checkpoint,
        &CheckpointHead {
            chain: "aa".repeat(32),
            seq: 40,
            hash: "bb".repeat(32),
            key: "cc".repeat(32),
            signature: "dd".repeat(64),
        },
        &json!({
            "chain": "aa".repeat(32),
            "seq": 40_u64,
            "hash": "bb".repeat(32),
            "key": "cc".repeat(32),
            "signature": "dd".repeat(64),
        }),
    );
}

fn entry(event: Event, detail: Option<serde_json::Value>) -> Entry {
    Entry {
        seq: 5,
        ts: ts("2026-03-01T10:00:00Z"),
        event: event.as_str().to_owned(),
        target: None,
        rule: None,
        reason: None,
        session: None,
        result: None,
        intent: None,
        detail,
        prev: line::GENESIS.to_owned(),
        hash: line::GENESIS.to_owned(),
    }
}

#[test]
fn older_and_odd_records_read_as_the_report_always_read_them() {
    // An early policy_loaded: no sha256, only policy_sha256; no rules, targets not an array.
    let old = entry(
        Event::PolicyLoaded,
        Some(json!({"policy_sha256": "99", "targets": "main"})),
    )
    .details::<PolicyLoad>()
    .unwrap();
    assert_eq!(old.sha256, None);
    assert_eq!(old.hash(), Some("99"));
    assert_eq!((old.rules, old.targets.len()), (None, 0));
    // Numbers read as text where the report printed them; nulls left out of lists.
    let odd = entry(
        Event::PolicyLoaded,
        Some(json!({"sha256": 12, "rules": "4", "targets": ["a", null, 3]})),
    )
    .details::<PolicyLoad>()
    .unwrap();
    assert_eq!(odd.sha256.as_deref(), Some("12"));
    assert_eq!(odd.rules, None);
    assert_eq!(odd.targets, ["a", "3"]);
    // A heartbeat whose fields are of other types: absent, not an error.
    let beat = entry(
        Event::Heartbeat,
        Some(json!({"state": 1, "interval_ms": -5, "since": "yesterday"})),
    )
    .details::<Heartbeat>()
    .unwrap();
    assert_eq!(beat.state, "");
    assert_eq!((beat.interval_ms, beat.since), (None, None));
    // Findings and rules: missing fields empty, non-objects empty findings and no rules.
    let check = entry(
        Event::ConfigurationChecked,
        Some(json!({"findings": [{"id": "V-1", "status": "pass"}, "junk"], "actor": {}})),
    )
    .details::<ConfigurationCheck>()
    .unwrap();
    let findings = check.findings();
    assert_eq!(findings[0].id, "V-1");
    assert_eq!(findings[0].fix, "");
    assert_eq!(findings[1], RecordedFinding::default());
    assert!(check.rest.contains_key("actor"));
    let verified = entry(
        Event::ControlVerified,
        Some(json!({"rules": [{"rule": "idle", "status": "pass"}, 7]})),
    )
    .details::<ControlVerification>()
    .unwrap();
    assert_eq!(verified.rules().len(), 1);
    assert_eq!(verified.policy_sha256, None);
}

#[test]
fn a_detail_is_only_read_from_its_own_events_and_must_be_there() {
    let beat = entry(Event::Heartbeat, Some(json!({"state": "enforcing"})));
    assert!(matches!(
        beat.details::<PolicyLoad>(),
        Err(DetailError::OtherEvent { .. })
    ));
    assert!(matches!(
        entry(Event::Heartbeat, None).details::<Heartbeat>(),
        Err(DetailError::Missing { seq: 5, .. })
    ));
    let err = entry(Event::SessionTerminated, Some(json!({"at": "soon"})))
        .details::<SessionEnded>()
        .unwrap_err();
    assert!(matches!(err, DetailError::Malformed { .. }), "{err}");
}
