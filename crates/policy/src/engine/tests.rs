//! Engine behaviour, one condition at a time, on hand-made sessions.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::test_support::{ago, client_session, now, policy};
use super::*;
use crate::session::{BackendType, SessionState};

fn session(pid: i64, role: &str) -> Session {
    client_session(pid, role, SessionState::Idle)
}

fn idle_for(mut s: Session, secs: i64) -> Session {
    s.state = SessionState::Idle;
    s.state_change = Some(ago(secs));
    s
}

fn pids(decisions: &[Decision]) -> Vec<i64> {
    decisions.iter().map(|d| d.session.pid).collect()
}

const IDLE_15M: &str = "[[rule]]\nname = \"inactivity\"\nidle = \"15m\"\nwarn = \"2m\"\n";

#[test]
fn idle_session_past_its_limit_ends_with_a_reason() {
    let p = policy(IDLE_15M);
    let s = idle_for(session(1, "kim"), 15 * 60 + 2);
    let plan = evaluate(&p, std::slice::from_ref(&s), now());
    assert_eq!(pids(&plan.terminations), [1]);
    let d = &plan.terminations[0];
    assert_eq!(
        d.deadline,
        s.state_change.unwrap() + SignedDuration::from_mins(15)
    );
    assert_eq!(d.reason(&p, now()), "idle for 15m02s; limit 15m");
    assert!(d.cause.depends_on_idleness());
}

#[test]
fn idle_session_before_its_limit_wakes_the_agent_at_the_deadline() {
    let p = policy(IDLE_15M);
    let s = idle_for(session(1, "kim"), 5 * 60);
    let plan = evaluate(&p, &[s], now());
    assert!(plan.terminations.is_empty());
    assert!(plan.warnings.is_empty());
    // The warning (2m before the end) comes first: 15m - 2m - 5m = 8m from now.
    assert_eq!(plan.next_wake, Some(now() + SignedDuration::from_mins(8)));
}

#[test]
fn session_inside_the_warning_lead_is_warned_not_ended() {
    let p = policy(IDLE_15M);
    let plan = evaluate(&p, &[idle_for(session(1, "kim"), 14 * 60)], now());
    assert!(plan.terminations.is_empty());
    assert_eq!(pids(&plan.warnings), [1]);
    assert_eq!(plan.next_wake, Some(now() + SignedDuration::from_mins(1)));
}

#[test]
fn a_running_statement_is_never_idle() {
    let p = policy(IDLE_15M);
    let mut s = idle_for(session(1, "kim"), 3_000);
    s.state = SessionState::Active;
    let plan = evaluate(&p, &[s], now());
    assert!(plan.terminations.is_empty());
    assert_eq!(plan.next_wake, None);
}

#[test]
fn idle_in_transaction_covers_aborted_transactions_too() {
    let p = policy("[[rule]]\nname = \"abandoned\"\nidle_in_transaction = \"5m\"\n");
    let mut open = idle_for(session(1, "kim"), 400);
    open.state = SessionState::IdleInTransaction;
    let mut aborted = idle_for(session(2, "kim"), 400);
    aborted.state = SessionState::IdleInTransactionAborted;
    let plain_idle = idle_for(session(3, "kim"), 4_000);
    let plan = evaluate(&p, &[open, aborted, plain_idle], now());
    assert_eq!(pids(&plan.terminations), [1, 2]);
    assert_eq!(
        plan.terminations[0].reason(&p, now()),
        "idle in transaction for 6m40s; limit 5m"
    );
}

#[test]
fn lifetime_ends_even_a_busy_session() {
    let p = policy("[[rule]]\nname = \"life\"\nlifetime = \"1h\"\n");
    let mut s = session(1, "kim");
    s.state = SessionState::Active;
    s.backend_start = ago(3_601);
    let plan = evaluate(&p, &[s], now());
    assert_eq!(pids(&plan.terminations), [1]);
    assert_eq!(
        plan.terminations[0].reason(&p, now()),
        "connected for 1h00m01s; limit 1h"
    );
}

#[test]
fn earliest_deadline_wins_when_rules_overlap() {
    let p = policy(
        "[[rule]]\nname = \"life\"\nlifetime = \"1h\"\n\n[[rule]]\nname = \"idle\"\nidle = \"10m\"\n",
    );
    // Started 2h ago (lifetime deadline 1h ago); idle for 20m (deadline 10m ago).
    let mut s = idle_for(session(1, "kim"), 1_200);
    s.backend_start = ago(7_200);
    let plan = evaluate(&p, &[s], now());
    assert_eq!(plan.terminations.len(), 1);
    assert_eq!(p.rules[plan.terminations[0].rule].name, "life");
}

#[test]
fn report_rules_record_without_ending() {
    let p = policy(
        "[[rule]]\nname = \"staged\"\nidle = \"5m\"\naction = \"report\"\n\n[[rule]]\nname = \"real\"\nidle = \"30m\"\n",
    );
    let ten_minutes = idle_for(session(1, "kim"), 600);
    let hour = idle_for(session(2, "lee"), 3_600);
    let plan = evaluate(&p, &[ten_minutes, hour], now());
    assert_eq!(pids(&plan.reports), [1]);
    assert_eq!(
        pids(&plan.terminations),
        [2],
        "a terminating rule due now takes precedence"
    );
}

#[test]
fn allow_windows_end_sessions_outside_them() {
    let p = policy(
        "[[rule]]\nname = \"hours\"\nallow = [\"Mon-Fri 07:00-09:00\"]\ntimezone = \"America/New_York\"\nroles = [\"analyst_*\"]\n",
    );
    // 10:00 New York on a Monday: the window closed at 09:00 (14:00Z).
    let early = session(1, "analyst_kim"); // connected 09:00 local: at the close
    let mut late = session(2, "analyst_lee");
    late.backend_start = ago(600); // connected 09:50 local, after the close
    let other = session(3, "appuser");
    let plan = evaluate(&p, &[early, late, other], now());
    assert_eq!(pids(&plan.terminations), [1, 2]);
    let closed: Timestamp = "2026-11-23T14:00:00Z".parse().unwrap();
    assert_eq!(plan.terminations[0].deadline, closed);
    assert_eq!(
        plan.terminations[1].deadline,
        ago(600),
        "deadline is the connection time"
    );
    assert_eq!(
        plan.terminations[0].reason(&p, now()),
        "outside the allowed windows (Mon-Fri 07:00-09:00 America/New_York) since 2026-11-23 09:00 EST"
    );
}

#[test]
fn allow_window_close_is_the_next_wake() {
    let p = policy(
        "[[rule]]\nname = \"hours\"\nallow = [\"Mon-Fri 07:00-19:00\"]\ntimezone = \"America/New_York\"\n",
    );
    let plan = evaluate(&p, &[session(1, "kim")], now());
    assert!(plan.terminations.is_empty());
    // 19:00 EST = 00:00Z next day.
    assert_eq!(
        plan.next_wake,
        Some("2026-11-24T00:00:00Z".parse().unwrap())
    );
}

#[test]
fn deny_windows_end_sessions_inside_them() {
    let p = policy(
        "[[rule]]\nname = \"maint\"\ndeny = [\"2026-11-23 14:30 - 2026-11-23 16:00\"]\ntimezone = \"UTC\"\n",
    );
    let plan = evaluate(&p, &[session(1, "kim")], now());
    assert_eq!(pids(&plan.terminations), [1]);
    assert_eq!(plan.terminations[0].deadline, ago(1_800));
    let before = evaluate(&p, &[session(1, "kim")], ago(3_599));
    assert!(before.terminations.is_empty());
    assert_eq!(before.next_wake, Some(ago(1_800)));
}

#[test]
fn max_sessions_ends_the_newest_beyond_the_limit_per_role() {
    let p = policy("[[rule]]\nname = \"one\"\nmax_sessions = 1\nroles = [\"analyst_*\"]\n");
    let mut sessions = Vec::new();
    for (pid, age) in [(1, 300), (2, 900), (3, 60)] {
        let mut s = session(pid, "analyst_kim");
        s.backend_start = ago(age);
        sessions.push(s);
    }
    let mut lee = session(4, "analyst_lee");
    lee.backend_start = ago(10);
    sessions.push(lee);
    let plan = evaluate(&p, &sessions, now());
    // Kim's oldest (pid 2) stays; 1 and 3 end. Lee has one session.
    let mut ended = pids(&plan.terminations);
    ended.sort_unstable();
    assert_eq!(ended, [1, 3]);
    let reason = plan
        .terminations
        .iter()
        .find(|d| d.session.pid == 3)
        .unwrap()
        .reason(&p, now());
    assert_eq!(
        reason,
        "session 3 of 3 of its role, oldest first; limit 1 per role"
    );
}

#[test]
fn sessions_already_ending_do_not_count_toward_max_sessions() {
    let p = policy(
        "[[rule]]\nname = \"idle\"\nidle = \"10m\"\n\n[[rule]]\nname = \"one\"\nmax_sessions = 1\n",
    );
    let mut old = idle_for(session(1, "kim"), 3_000); // ends by idleness
    old.backend_start = ago(4_000);
    let mut new = session(2, "kim");
    new.state = SessionState::Active;
    new.backend_start = ago(100);
    let plan = evaluate(&p, &[old, new], now());
    assert_eq!(pids(&plan.terminations), [1]);
    assert_eq!(p.rules[plan.terminations[0].rule].name, "idle");
}

#[test]
fn exemptions_and_non_client_backends_are_never_touched() {
    let p = policy(
        "[exempt]\nroles = [\"postgres\"]\nmember_of = [\"dba\"]\napplications = [\"batch-*\"]\naddresses = [\"10.99.0.0/16\", \"local\"]\n\n[[rule]]\nname = \"life\"\nlifetime = \"1m\"\n",
    );
    let by_role = session(1, "postgres");
    let mut by_membership = session(2, "ops_ann");
    by_membership.member_of = Arc::from(vec!["dba".to_owned()]);
    let mut by_app = session(3, "kim");
    by_app.application = "batch-nightly".into();
    let mut by_addr = session(4, "kim");
    by_addr.client_addr = crate::ClientAddr::Ip("10.99.4.5".parse::<IpAddr>().unwrap());
    let mut by_socket = session(5, "kim");
    by_socket.client_addr = crate::ClientAddr::Socket;
    let mut walsender = session(6, "replicator");
    walsender.backend_type = BackendType::Other("walsender".to_owned());
    let target = session(7, "kim");
    let sessions = [
        by_role,
        by_membership,
        by_app,
        by_addr,
        by_socket,
        walsender,
        target,
    ];
    let plan = evaluate(&p, &sessions, now());
    assert_eq!(pids(&plan.terminations), [7]);
    assert_eq!((plan.clients, plan.exempt), (6, 5));
    let verdicts = assess(&p, &sessions, now());
    use ExemptBy::*;
    let expected = [Role, Membership, Application, Address, Address];
    for (v, by) in verdicts.iter().zip(expected) {
        assert_eq!(*v, Verdict::Exempt { by });
    }
    assert_eq!(verdicts[5], Verdict::NotClient);
    assert!(matches!(verdicts[6], Verdict::Ends(_)));
}

#[test]
fn scope_keys_are_anded_and_values_ored() {
    let p = policy(
        "[[rule]]\nname = \"r\"\nlifetime = \"1m\"\nroles = [\"kim\", \"lee\"]\ndatabases = [\"sales\"]\naddresses = [\"10.1.0.0/16\"]\n",
    );
    let mut in_scope = session(1, "lee");
    in_scope.database = "sales".into();
    let mut wrong_db = session(2, "kim");
    wrong_db.database = "hr".into();
    let mut wrong_addr = session(3, "kim");
    wrong_addr.database = "sales".into();
    wrong_addr.client_addr = crate::ClientAddr::Ip("10.2.0.1".parse().unwrap());
    let mut wrong_role = session(4, "ann");
    wrong_role.database = "sales".into();
    let plan = evaluate(&p, &[in_scope, wrong_db, wrong_addr, wrong_role], now());
    assert_eq!(pids(&plan.terminations), [1]);
}

#[test]
fn member_of_follows_memberships_and_the_role_itself() {
    let p = policy("[[rule]]\nname = \"r\"\nlifetime = \"1m\"\nmember_of = [\"humans\"]\n");
    let mut member = session(1, "kim");
    member.member_of = Arc::from(vec!["analysts".to_owned(), "humans".to_owned()]);
    let group_itself = session(2, "humans");
    let outsider = session(3, "appuser");
    let plan = evaluate(&p, &[member, group_itself, outsider], now());
    assert_eq!(pids(&plan.terminations), [1, 2]);
}

#[test]
fn assess_explains_what_will_happen() {
    let p = policy(IDLE_15M);
    let soon = idle_for(session(1, "kim"), 60);
    let mut busy = session(2, "kim");
    busy.state = SessionState::Active;
    let verdicts = assess(&p, &[soon, busy], now());
    match &verdicts[0] {
        Verdict::Scheduled(d) => assert_eq!(d.deadline, now() + SignedDuration::from_mins(14)),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(verdicts[1], Verdict::Untouched);
}

#[test]
fn violations_rules_are_not_evaluated() {
    // Accepted only as report-only documentation: nothing ends, nothing is reported.
    let p = policy(
        "[[rule]]\nname = \"probe\"\naction = \"report\"\nviolations = { sqlstates = [\"42501\"], count = 3, within = \"10m\" }\n",
    );
    let plan = evaluate(&p, &[session(1, "kim")], now());
    assert!(plan.terminations.is_empty());
    assert!(plan.reports.is_empty());
    assert_eq!(plan.next_wake, None);
}

#[test]
fn more_than_64_rules_are_all_evaluated() {
    let mut text = String::new();
    for i in 0..70 {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nlifetime = \"{}m\"\nroles = [\"role{i}\"]\n\n",
            i + 1
        ));
    }
    let p = policy(&text);
    let s = session(1, "role69"); // connected 1h ago; r69 has a 70m lifetime
    let plan = evaluate(&p, &[s], now());
    assert!(plan.terminations.is_empty());
    assert_eq!(plan.next_wake, Some(now() + SignedDuration::from_mins(10)));
}

#[test]
fn login_windows_lock_outside_allow_and_inside_deny() {
    let p = policy(
        "[[rule]]\nname = \"hours\"\nallow = [\"Mon-Fri 07:00-09:00\"]\ntimezone = \"America/New_York\"\nlock_logins = true\nroles = [\"analyst_*\"]\n\n[[rule]]\nname = \"maint\"\ndeny = [\"2026-11-23 14:30 - 2026-11-23 16:00\"]\ntimezone = \"UTC\"\nlock_logins = true\n\n[[rule]]\nname = \"idle\"\nidle = \"1m\"\n",
    );
    // 10:00 New York on a Monday: after the allow window closed at 09:00 (14:00Z).
    let hours = p.rules[0].login_window(now()).unwrap();
    assert!(hours.locked);
    assert_eq!(hours.since, Some("2026-11-23T14:00:00Z".parse().unwrap()));
    assert_eq!(hours.until, Some("2026-11-24T12:00:00Z".parse().unwrap()));
    let maint = p.rules[1].login_window(now()).unwrap();
    assert!(maint.locked);
    assert_eq!(maint.until, Some("2026-11-23T16:00:00Z".parse().unwrap()));
    assert!(!p.rules[1].login_window(ago(3_600)).unwrap().locked);
    assert_eq!(p.rules[2].login_window(now()), None);
    assert!(p.rules[0].covers_role("analyst_kim", &[]));
    assert!(!p.rules[0].covers_role("appuser", &[]));
}

#[test]
fn upcoming_terminations_within_the_horizon_are_listed_in_order() {
    let p = policy(IDLE_15M);
    let soon = idle_for(session(1, "kim"), 15 * 60 - 1); // due in 1 s
    let sooner = idle_for(session(2, "lee"), 15 * 60); // due now
    let later = idle_for(session(3, "ann"), 60); // due in 14 min
    let mut engine = Engine::new();
    let sessions = [soon, sooner, later];
    let plan = engine.evaluate_ahead(&p, &sessions, now(), SignedDuration::from_secs(2));
    assert_eq!(pids(&plan.terminations), [2]);
    assert_eq!(pids(&plan.upcoming), [1]);
    assert_eq!(
        plan.upcoming[0].deadline,
        now() + SignedDuration::from_secs(1)
    );
    assert!(engine.evaluate(&p, &sessions, now()).upcoming.is_empty());
}

#[test]
fn the_verify_test_limit_shortens_the_tested_rule_for_its_canary_only() {
    let p = policy(&format!("{IDLE_15M}\n[verify]\ntest_limit = \"5s\"\n"));
    let canary = idle_for(session(1, "analyst_curfew_canary_0_ab12"), 6);
    let user = idle_for(session(2, "kim"), 6);
    let plan = evaluate(&p, &[canary, user], now());
    assert_eq!(pids(&plan.terminations), [1]);
    assert_eq!(
        plan.terminations[0].reason(&p, now()),
        "idle for 6s; limit 5s"
    );
    // Only for the rule the canary tests: this one tests rule 1, so rule 0 keeps its 15m.
    let other = idle_for(session(3, "analyst_curfew_canary_1_ab12"), 6);
    assert!(evaluate(&p, &[other], now()).terminations.is_empty());
    // Only ever shorter: a test limit longer than the rule's changes nothing.
    let long =
        policy("[[rule]]\nname = \"quick\"\nidle = \"2s\"\n\n[verify]\ntest_limit = \"1m\"\n");
    let canary = idle_for(session(4, "curfew_canary_0_x"), 3);
    assert_eq!(pids(&evaluate(&long, &[canary], now()).terminations), [4]);
    assert_eq!(
        crate::model::canary_rule("a_curfew_canary_12_x_b"),
        Some(12)
    );
    assert_eq!(crate::model::canary_rule("a_curfew_canary_x_12_b"), None);
    assert_eq!(crate::model::canary_rule("kim"), None);
}
