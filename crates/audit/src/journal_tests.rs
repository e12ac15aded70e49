//! The journal's contract: an outcome repeats its intent and links to it; a dropped token
//! leaves an open intent that verification reports and the writer notes.

use super::*;
use crate::problem::ProblemKind;
use crate::record::Entry;
use curfew_testkit::TempDir;

/// A log's path in a directory of its own; the directory lives as long as the `TempDir`.
fn scratch(name: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("journal", name);
    let path = dir.join("audit.jsonl");
    (dir, path)
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn entries(path: &std::path::Path) -> Vec<Entry> {
    crate::read(path)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn session() -> SessionInfo {
    SessionInfo {
        pid: 4711,
        backend_start: ts("2026-03-01T08:00:00Z"),
        role: "app".to_owned(),
        database: "shop".to_owned(),
        client_addr: None,
        application: "psql".to_owned(),
        state: "idle".to_owned(),
    }
}

#[test]
fn an_outcome_repeats_its_intent_and_is_the_record_the_agent_wrote_before() {
    let (_dir, path) = scratch("outcome");
    let log = AuditLog::open(&path).unwrap();
    let deadline = ts("2026-03-01T09:00:00Z");
    let plan = TerminationPlan {
        deadline,
        policy_sha256: "ab".repeat(32),
    };
    let intent = Intent::<Termination>::new(ts("2026-03-01T09:00:01Z"), "main", Some(&plan))
        .with_rule("idle")
        .with_reason("idle for 15m02s; limit 15m")
        .with_session(session());
    let token = log.intend(intent).unwrap();
    assert_eq!(token.seq(), 1);
    // The action gets the request bound to the intent; the token is completed after it.
    let request = token.authorize((4711, "idle"));
    assert_eq!((request.intent_seq(), request.request().0), (1, 4711));
    let at = ts("2026-03-01T09:00:01.5Z");
    let ended = SessionEnded {
        at,
        exit_confirmed_at: ts("2026-03-01T09:00:01.6Z"),
        lateness_ms: 1500.0,
        gateway_client: None,
        gateway_id: None,
    };
    let outcome_ts = ts("2026-03-01T09:00:02Z");
    let appended = token
        .complete(outcome_ts, TerminationOutcome::Ended(ended))
        .unwrap();
    assert_eq!(appended.seq, 2);

    // The same records, built by hand as the agent's act.rs does.
    let (_other_dir, other) = scratch("outcome-by-hand");
    let by_hand = AuditLog::open(&other).unwrap();
    let mut intent = Record::new(ts("2026-03-01T09:00:01Z"), Event::TerminationIntent)
        .with_target("main")
        .with_rule("idle")
        .with_reason("idle for 15m02s; limit 15m")
        .with_session(session());
    intent.detail = Some(serde_json::json!({
        "deadline": deadline.to_string(),
        "policy_sha256": "ab".repeat(32),
    }));
    let mut outcome = Record::new(outcome_ts, Event::SessionTerminated)
        .with_target("main")
        .with_rule("idle")
        .with_reason("idle for 15m02s; limit 15m")
        .with_session(session())
        .with_result("ended")
        .with_intent(1);
    outcome.detail = Some(serde_json::json!({
        "at": at.to_string(),
        "exit_confirmed_at": ts("2026-03-01T09:00:01.6Z").to_string(),
        "lateness_ms": 1500.0,
    }));
    by_hand.append_all(vec![intent, outcome]).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&other).unwrap(),
        "the journal writes the very bytes the agent wrote"
    );
    assert!(crate::verify(&path).unwrap().is_intact());
    assert!(log.take_abandoned_intents().is_empty());
}

#[test]
fn a_token_dropped_without_outcome_leaves_an_open_intent_that_is_reported() {
    let (_dir, path) = scratch("dropped");
    let log = AuditLog::open(&path).unwrap();
    let plan = LoginChangePlan {
        action: "lock".to_owned(),
        role: "app".to_owned(),
        role_oid: 16_384,
        locks: vec![1],
        policy_sha256: "cd".repeat(32),
    };
    let intents = vec![
        Intent::<LoginChange>::new(ts("2026-03-01T09:00:00Z"), "main", Some(&plan))
            .with_reason("disable the login of role \"app\""),
        Intent::<LoginChange>::new(ts("2026-03-01T09:00:00Z"), "main", Some(&plan)),
    ];
    let mut tokens = log.intend_all(intents).unwrap();
    let kept = tokens.remove(0);
    drop(tokens); // the second intent never gets its outcome
    let outcome = LoginChangeOutcome {
        end: LoginChangeEnd::Disabled,
        detail: LoginChangeResult {
            role: Some("app".to_owned()),
            role_oid: Some(16_384),
            error: None,
        },
    };
    log.complete_all(ts("2026-03-01T09:00:01Z"), vec![(kept, outcome)])
        .unwrap();
    let written = entries(&path);
    assert_eq!(written[2].event, "login_locked");
    assert_eq!(written[2].result.as_deref(), Some("disabled"));
    assert_eq!(written[2].intent, Some(1));
    assert_eq!(
        written[2].reason.as_deref(),
        Some("disable the login of role \"app\"")
    );
    let problems = crate::verify(&path).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::IntentWithoutOutcome);
    assert_eq!(problems[0].seq, Some(2));
    assert_eq!(log.take_abandoned_intents(), [2]);
    assert!(log.take_abandoned_intents().is_empty(), "taken once");
}

#[test]
fn a_squatters_outcome_says_what_became_of_it_and_another_logs_token_is_refused() {
    let (_dir, path) = scratch("squat");
    let log = AuditLog::open(&path).unwrap();
    let (_other_dir, other_path) = scratch("squat-other");
    let other = AuditLog::open(&other_path).unwrap();
    let (_elsewhere_dir, elsewhere) = scratch("squat-elsewhere");
    let intent = Intent::<SquatterEnding>::new(ts("2026-03-01T09:00:00Z"), "main", None)
        .with_rule("leader lock")
        .with_reason("a session of role x held the leader lock")
        .with_session(session());
    let token = log.intend(intent).unwrap();
    let outcome = SquatOutcome {
        result: "ended".to_owned(),
        reason: "a session of role x held the leader lock; it was ended".to_owned(),
        detail: SquatEnding {
            lock_holder_pid: 4711,
        },
    };
    let refused = other
        .complete_all(
            ts("2026-03-01T09:00:01Z"),
            vec![(other_token(&other, &elsewhere), outcome.clone())],
        )
        .unwrap_err();
    assert!(
        refused.to_string().contains("another audit log"),
        "{refused}"
    );
    token.complete(ts("2026-03-01T09:00:01Z"), outcome).unwrap();
    let written = entries(&path);
    assert_eq!(written[0].detail, None, "a squatter's intent has no detail");
    assert_eq!(written[1].event, "leader_squatted");
    assert_eq!(
        written[1].reason.as_deref(),
        Some("a session of role x held the leader lock; it was ended")
    );
    assert_eq!(
        written[1].details::<SquatEnding>().unwrap().lock_holder_pid,
        4711
    );
}

/// A token of `log` offered to a log it does not belong to is refused: build one from
/// another file, `elsewhere`.
fn other_token(of: &AuditLog, elsewhere: &std::path::Path) -> IntentToken<SquatterEnding> {
    let elsewhere = AuditLog::open(elsewhere).unwrap();
    assert!(!Arc::ptr_eq(&elsewhere.inner, &of.inner));
    elsewhere
        .intend(Intent::<SquatterEnding>::new(
            ts("2026-03-01T09:00:00Z"),
            "main",
            None,
        ))
        .unwrap()
}
