//! What a scoped `idle_in_transaction` rule covers, the clock offset, and that every failed
//! finding says why.

use std::time::Duration;

use curfew_postgres::ClockReading;

use crate::tests::{SHA, default_install, hardened, run, status_of};
use crate::{PolicyContext, Status, judge};

/// Hardened, but with the native idle-in-transaction timeout off: only curfew's rules count.
fn native_off() -> curfew_postgres::ServerFacts {
    let mut facts = hardened();
    facts.settings.insert(
        "idle_in_transaction_session_timeout".to_owned(),
        curfew_postgres::Setting {
            value: "0".to_owned(),
            unit: Some("ms".to_owned()),
            source: "default".to_owned(),
        },
    );
    facts
}

#[test]
fn a_scoped_idle_in_transaction_rule_covers_its_scope_only_and_says_so() {
    let f = run(
        &native_off(),
        "[[rule]]\nname = \"humans-tx\"\nidle_in_transaction = \"5m\"\nmember_of = [\"humans\"]\n\n[[rule]]\nname = \"app-tx\"\nidle_in_transaction = \"10m\"\nroles = [\"appuser\"]\n",
    );
    let tx = status_of(&f, "PG-IDLE-IN-TRANSACTION");
    assert_eq!(tx.status, Status::Fail);
    assert!(
        tx.observed.contains("curfew rule \"humans-tx\"")
            && tx.observed.contains("curfew rule \"app-tx\""),
        "{}",
        tx.observed
    );
    assert!(
        tx.why
            .contains("\"humans-tx\" covers sessions of members of `humans`")
            && tx
                .why
                .contains("\"app-tx\" covers sessions of roles `appuser`")
            && tx.why.contains("sessions outside them"),
        "{}",
        tx.why
    );
}

#[test]
fn a_rule_for_every_session_passes_when_the_agent_enforces_this_policy() {
    let rules = "[[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\n";
    let tx = status_of(&run(&native_off(), rules), "PG-IDLE-IN-TRANSACTION").clone();
    assert_eq!(tx.status, Status::Pass);
    assert!(
        tx.observed
            .contains("covers every session that is not exempt"),
        "{}",
        tx.observed
    );
    assert!(tx.why.is_empty());
    // Also when the native timeout cannot be read at all.
    let mut hidden = native_off();
    hidden
        .settings
        .remove("idle_in_transaction_session_timeout");
    let tx = status_of(&run(&hidden, rules), "PG-IDLE-IN-TRANSACTION").clone();
    assert_eq!(tx.status, Status::Pass, "{}", tx.observed);
    // Without an agent the rule ends nothing: it fails, saying so.
    let mut unled = native_off();
    unled.leader = None;
    let tx = status_of(&run(&unled, rules), "PG-IDLE-IN-TRANSACTION").clone();
    assert_eq!(tx.status, Status::Fail);
    assert!(
        tx.why.contains("but no curfew agent leads this server"),
        "{}",
        tx.why
    );
    // A report-only rule ends nothing.
    let tx = status_of(
        &run(
            &native_off(),
            "[[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\naction = \"report\"\n",
        ),
        "PG-IDLE-IN-TRANSACTION",
    )
    .clone();
    assert_eq!(tx.status, Status::Fail);
    assert!(tx.why.contains("report-only"), "{}", tx.why);
}

#[test]
fn every_failed_finding_says_why_and_no_other_does() {
    let findings = run(
        &default_install(),
        "[[rule]]\nname = \"a\"\nidle = \"15m\"\n",
    );
    assert!(findings.iter().any(|f| f.status == Status::Fail));
    for f in &findings {
        assert_eq!(
            f.status == Status::Fail,
            !f.why.is_empty(),
            "{}: {:?} with why {:?}",
            f.id,
            f.status,
            f.why
        );
    }
    let v = status_of(&findings, "V-261910");
    assert!(
        v.why.contains("no curfew agent leads this server"),
        "{}",
        v.why
    );
}

fn clock_finding(offset_ms: i64, round_trip_ms: u64, max: Duration) -> crate::Finding {
    let mut facts = hardened();
    facts.clock = ClockReading {
        offset: jiff::SignedDuration::from_millis(offset_ms),
        round_trip: Duration::from_millis(round_trip_ms),
    };
    let policy = curfew_policy::parse_policy(
        "t.toml",
        "[[rule]]\nname = \"a\"\nidle = \"15m\"\n",
        jiff::tz::db(),
    )
    .unwrap()
    .policy;
    let findings = judge(
        &facts,
        PolicyContext {
            policy: &policy,
            source: "t.toml",
            sha256: SHA,
            max_clock_offset: max,
        },
    );
    status_of(&findings, "CURFEW-CLOCK").clone()
}

#[test]
fn a_clock_offset_over_the_threshold_fails_and_the_evidence_says_whose_clock_is_whose() {
    let ok = clock_finding(300, 4, Duration::from_secs(2));
    assert_eq!(ok.status, Status::Pass);
    assert!(
        ok.observed.contains("this host's clock is 300ms behind the server's clock")
            && ok.observed.contains("4ms round trip, so within ±2ms")
            && ok.observed.contains("Session ages come from the server's clock; audit timestamps from the clock of the host that writes the log"),
        "{}",
        ok.observed
    );
    let ahead = clock_finding(-5_000, 4, Duration::from_secs(2));
    assert_eq!(ahead.status, Status::Fail);
    assert!(
        ahead
            .observed
            .contains("is 5.0s ahead of the server's clock"),
        "{}",
        ahead.observed
    );
    assert!(
        ahead
            .why
            .contains("the clocks differ by 5.0s, more than 2.0s"),
        "{}",
        ahead.why
    );
    assert!(ahead.fix.contains("NTP"));
    // The threshold is the operator's.
    assert_eq!(
        clock_finding(-5_000, 4, Duration::from_secs(10)).status,
        Status::Pass
    );
}
