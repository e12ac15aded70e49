//! The live test's orchestration on an in-memory enforcement point: an agent that ends the
//! canary at once, and a target where canaries cannot log in.

use std::cell::RefCell;
use std::path::Path;

use curfew_audit::{AuditLog, Event, Record, SessionInfo};
use curfew_testkit::TempDir;
use jiff::Timestamp;

use super::target::{CanaryConnection, CanaryTarget, LockState};
use super::{Live, Notice, Verified};
use crate::{Canary, Options, Planned, Status};

const PID: i64 = 4242;

fn started() -> Timestamp {
    "2026-11-23T12:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A session the in-memory agent ends the first time anyone looks for it.
struct Session {
    ended: RefCell<bool>,
}

impl CanaryConnection for Session {
    fn number(&self) -> i64 {
        PID
    }
    fn place(&self, seen: &mut curfew_policy::Session) {
        seen.pid = PID;
        seen.backend_start = started();
    }
    fn is(&self, recorded: &SessionInfo) -> bool {
        recorded.pid == PID
    }
    fn describe(&self) -> String {
        format!("session {PID}")
    }
    async fn run(&self, _statement: &str) -> Result<(), String> {
        if *self.ended.borrow() {
            Err("the session was ended".to_owned())
        } else {
            Ok(())
        }
    }
    fn sleep(&self, _seconds: f64) -> tokio::task::JoinHandle<Result<(), String>> {
        tokio::spawn(async { Err("the session was ended".to_owned()) })
    }
}

/// An enforcement point kept in memory; `login` is what a login answers.
struct InMemory {
    login: Result<(), String>,
    created: RefCell<Vec<String>>,
    dropped: RefCell<Vec<String>>,
}

impl InMemory {
    fn new(login: Result<(), String>) -> InMemory {
        InMemory {
            login,
            created: RefCell::default(),
            dropped: RefCell::default(),
        }
    }
}

impl CanaryTarget for InMemory {
    type Session = Session;
    type Secret = ();
    type LockedRole = u32;

    fn session_list(&self) -> &str {
        "the session list"
    }
    fn operator(&self) -> &str {
        "curfew"
    }
    async fn now(&self) -> Result<Timestamp, String> {
        Ok(started())
    }
    async fn create_canary(&self, role: &str, _: &[String], _: Timestamp) -> Result<(), String> {
        self.created.borrow_mut().push(role.to_owned());
        Ok(())
    }
    async fn drop_canary(&self, role: &str) -> Result<(), String> {
        self.dropped.borrow_mut().push(role.to_owned());
        Ok(())
    }
    async fn login(&self, _: &Canary, (): &()) -> Result<(Session, String), String> {
        self.login.clone()?;
        let session = Session {
            ended: RefCell::new(false),
        };
        Ok((session, format!("It logged in (session {PID}).")))
    }
    async fn switch_off_own_limits(&self, _: &Session) -> Result<String, String> {
        Ok("nothing to switch off".to_owned())
    }
    async fn session_exists(&self, session: &Session) -> Result<bool, String> {
        // The agent ends it as soon as it is watched.
        session.ended.replace(true);
        Ok(false)
    }
    async fn lock_problem(&self, _: &str) -> Option<String> {
        Some("this target keeps no ledger".to_owned())
    }
    async fn lock_role(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Timestamp,
    ) -> Result<(u32, i64), String> {
        Err("no ledger".to_owned())
    }
    async fn lock_state(&self, _: u32, _: i64) -> Result<LockState, String> {
        Err("no ledger".to_owned())
    }
    async fn unlock_role(&self, _: u32, _: &str) -> Result<(), String> {
        Err("no ledger".to_owned())
    }
}

const POLICY: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"1m\"\n";

/// Run the plan's live tests of [`POLICY`] on `target`, the agent's records in `audit`.
async fn run_on(target: &InMemory, audit: &Path) -> Verified {
    let policy = curfew_policy::parse_policy("p.toml", POLICY, jiff::tz::db())
        .unwrap_or_else(|e| panic!("{e}"))
        .policy;
    let options = Options {
        max_wait: "5m".parse().unwrap_or_else(|e| panic!("{e:?}")),
        full: true,
    };
    let plans = crate::plan(&policy, options, started(), "t0k");
    let live: Vec<(usize, &Planned)> = plans.iter().enumerate().collect();
    assert!(matches!(live[0].1, Planned::Live { .. }), "{plans:?}");
    let mut results = vec![None; plans.len()];
    let mut verified = Verified {
        target: "db".to_owned(),
        server: None,
        agent: None,
        results: Vec::new(),
        mechanisms: Vec::new(),
        cleanup: Vec::new(),
        enforcement_point: "agent",
        gateway: None,
    };
    let notices = RefCell::new(Vec::new());
    let notice = |n: Notice| notices.borrow_mut().push(n);
    let context = Live {
        policy: &policy,
        target: "db",
        audit_log: Some(audit),
        token: "t0k",
        max_wait: options.max_wait,
        now: started(),
        notice: &notice,
    };
    let stopped = context
        .run(
            target,
            &live,
            true,
            &mut results,
            &mut verified,
            std::future::pending(),
        )
        .await;
    assert!(!stopped);
    assert_eq!(notices.borrow().len(), 1, "one line before the wait");
    verified.results = results.into_iter().flatten().collect();
    verified
}

fn canary_ended(audit: &Path, rule: &str) {
    let log = AuditLog::open(audit).unwrap_or_else(|e| panic!("{e}"));
    let session = SessionInfo {
        pid: PID,
        backend_start: started(),
        role: "canary".to_owned(),
        database: "postgres".to_owned(),
        client_addr: None,
        application: "curfew-verify".to_owned(),
        state: "idle".to_owned(),
    };
    log.append(
        Record::new(started(), Event::SessionTerminated)
            .with_rule(rule)
            .with_session(session),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_canary_the_agent_ends_and_records_passes_live_and_is_dropped() {
    let dir = TempDir::new("verify-live", "pass");
    let audit = dir.join("audit.jsonl");
    canary_ended(&audit, "inactivity");
    let target = InMemory::new(Ok(()));
    let verified = run_on(&target, &audit).await;
    let result = &verified.results[0];
    assert_eq!(result.status, Status::LivePass, "{}", result.evidence);
    assert!(
        result
            .evidence
            .contains("Its session was gone from the session list"),
        "{}",
        result.evidence
    );
    assert!(
        result
            .evidence
            .contains("session_terminated, rule \"inactivity\""),
        "{}",
        result.evidence
    );
    // The lock test cannot run here: not tested, with the target's reason.
    assert_eq!(verified.mechanisms.len(), 1);
    assert_eq!(verified.mechanisms[0].status, Status::NotTested);
    assert!(
        verified.mechanisms[0]
            .evidence
            .contains("this target keeps no ledger")
    );
    assert_eq!(
        *target.created.borrow(),
        *target.dropped.borrow(),
        "every canary dropped"
    );
    assert_eq!(
        target.created.borrow().len(),
        1,
        "the rule's canary only: the lock test stops at the missing ledger"
    );
    assert!(verified.cleanup.is_empty(), "{:?}", verified.cleanup);
}

#[tokio::test]
async fn a_record_naming_another_rule_fails() {
    let dir = TempDir::new("verify-live", "other-rule");
    let audit = dir.join("audit.jsonl");
    canary_ended(&audit, "another rule");
    let verified = run_on(&InMemory::new(Ok(())), &audit).await;
    let result = &verified.results[0];
    assert_eq!(result.status, Status::Fail, "{}", result.evidence);
    assert!(
        result
            .evidence
            .contains("It names another rule than \"inactivity\""),
        "{}",
        result.evidence
    );
}

#[tokio::test]
async fn a_canary_that_cannot_log_in_fails_with_the_reason_and_is_still_dropped() {
    let dir = TempDir::new("verify-live", "no-login");
    let audit = dir.join("audit.jsonl");
    let target = InMemory::new(Err("logins are refused here".to_owned()));
    let verified = run_on(&target, &audit).await;
    let result = &verified.results[0];
    assert_eq!(result.status, Status::Fail, "{}", result.evidence);
    assert!(
        result.evidence.contains("logins are refused here"),
        "{}",
        result.evidence
    );
    assert!(!target.created.borrow().is_empty());
    assert_eq!(
        *target.created.borrow(),
        *target.dropped.borrow(),
        "every canary dropped"
    );
}
