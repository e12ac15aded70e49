//! The chain section says exactly what was checked: "no record altered, removed or inserted"
//! only as far as anchors confirm it, and a contradiction by anchors prominently.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_audit::Verification;
use curfew_policy::explain::explain;
use curfew_policy::parse_policy;

use crate::{ChainProblem, Input, Integrity, Report, build};

fn report(integrity: &Integrity) -> Report {
    let text = "[[target]]\nname = \"primary\"\nurl = \"postgresql://curfew@db1/postgres\"\n\n[[rule]]\nname = \"idle\"\nidle = \"15m\"\n";
    let policy = parse_policy("curfew.toml", text, jiff::tz::db())
        .unwrap()
        .policy;
    let explanation = explain(&policy);
    build(&Input {
        policy_source: "curfew.toml",
        policy_sha256: "ab12",
        policy: &policy,
        explanation: &explanation,
        audit_path: "audit.jsonl",
        entries: &[],
        verification: &Verification {
            records: 12,
            problems: vec![],
            last_hash: Some("feedface".to_owned()),
        },
        integrity,
        since: None,
        generated_at: "2026-11-23T12:00:00Z".parse().unwrap(),
    })
}

const CLAIM: &str = "no record up to seq";

#[test]
fn without_anchors_the_report_claims_only_internal_consistency() {
    let r = report(&Integrity {
        seqs: Some((1, 12)),
        checked: vec!["anchors: not checked: --offline".to_owned()],
        ..Integrity::default()
    });
    assert!(r.chain.intact);
    assert!(r.chain.statement.contains("internally consistent"));
    for text in [r.to_markdown(), r.to_html().unwrap()] {
        assert!(!text.contains(CLAIM));
        assert!(!text.contains("no record altered, removed or inserted"));
        assert!(text.contains("anchors: not checked: --offline"));
    }
    // The header does not say "intact" for a chain nothing outside the log confirms.
    assert!(!r.chain.confirmed());
    assert!(
        r.to_markdown().contains(
            "- **Audit chain:** internally consistent only: not confirmed by anchors kept outside the log"
        )
    );
}

#[test]
fn anchors_back_the_claim_up_to_the_anchored_seq() {
    let r = report(&Integrity {
        seqs: Some((1, 12)),
        anchored_up_to: Some((
            10,
            "2026-11-23T11:00:00Z".parse().unwrap(),
            "primary".to_owned(),
        )),
        ..Integrity::default()
    });
    assert!(r.chain.intact);
    assert!(
        r.chain
            .statement
            .contains("no record up to seq 10 was altered, removed or inserted")
    );
    assert!(
        r.chain
            .statement
            .contains("Records after seq 10 were not anchored yet")
    );
    assert!(r.to_markdown().contains("confirm it up to seq 10"));
    assert!(r.chain.confirmed());
    assert_eq!(
        r.chain.headline(),
        "intact, confirmed by anchors on target \"primary\" up to seq 10; seq 11 to 12 not anchored yet"
    );
}

#[test]
fn a_contradiction_by_anchors_is_stated_and_listed() {
    let r = report(&Integrity {
        seqs: Some((1, 12)),
        contradicted: true,
        problems: vec![ChainProblem {
            line: 0,
            seq: Some(13),
            kind: "missing_records".to_owned(),
            message: "records from seq 13 missing".to_owned(),
        }],
        ..Integrity::default()
    });
    assert!(!r.chain.intact);
    assert!(r.chain.statement.contains("CONTRADICTS"));
    assert!(
        r.chain
            .statement
            .contains("the first missing or differing seq is 13")
    );
    let md = r.to_markdown();
    assert!(md.contains("**CONTRADICTED.**"), "{md}");
    assert!(
        md.contains("- **Audit chain:** **CONTRADICTED by what was kept of it outside the log (first missing or differing seq 13)**"),
        "{md}"
    );
    assert!(md.contains("records from seq 13 missing"));
    let html = r.to_html().unwrap();
    assert!(html.contains("contradicted"));
    assert!(html.contains("audit chain BROKEN"), "the title says so too");
}

#[test]
fn a_set_that_starts_after_seq_1_claims_nothing_before_it() {
    let r = report(&Integrity {
        seqs: Some((40, 52)),
        anchored_up_to: Some((
            52,
            "2026-11-23T11:00:00Z".parse().unwrap(),
            "primary".to_owned(),
        )),
        ..Integrity::default()
    });
    assert!(
        r.chain
            .statement
            .contains("no record from seq 40 up to seq 52 was altered")
    );
    assert!(
        r.chain
            .statement
            .contains("Records before seq 40 are in files not given")
    );
}
