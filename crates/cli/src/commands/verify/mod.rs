//! `curfew verify`: the control test the Oracle STIG describes, run live. A canary role opens
//! a session in a rule's scope, switches off PostgreSQL's own timeouts for itself, and waits
//! for the agent: out an idle-type rule's limit, to a window edge a few seconds ahead, or one
//! session beyond a cap; a canary role is also locked and unlocked through the ledger. A test
//! passes live when the agent ended what it should (and nothing else), using the session fails,
//! and the audit log holds the agent's record. What is not tested live is EVALUATED (not a
//! proof) or NOT TESTED, with why. The result is recorded as `control_verified`, with the
//! policy's hash.

mod live;
mod lock;
mod output;
mod special;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use curfew_agent::LoadedPolicy;
use curfew_policy::Limit;
use curfew_postgres::Announcement;
use curfew_verify::{Planned, RuleResult, Status};
use jiff::Timestamp;
use live::Fallback;

use super::Document as Format;
use crate::exit::{Failure, out, out_text};
use crate::policy_file;

/// Options of `curfew verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Idle-type rules with a longer limit (as waited) are checked by evaluation instead of
    /// waited out.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    max_wait: Limit,
    /// Wait each idle-type rule's configured limit, not `[verify] test_limit` (still bounded
    /// by --max-wait).
    #[arg(long)]
    full: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// The agent's audit log: its records are looked up there, and the result is recorded
    /// there (default: `audit_log` in `[agent]`).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Do not record the result in the audit log.
    #[arg(long)]
    no_record: bool,
}

/// One target's results.
#[derive(Debug, serde::Serialize)]
pub(super) struct Verified {
    target: String,
    server: Option<String>,
    /// What the leading agent announced, if one leads.
    agent: Option<String>,
    results: Vec<RuleResult>,
    /// Tests of mechanisms rather than of one rule (the login lock).
    mechanisms: Vec<RuleResult>,
    /// Problems removing what verify created.
    cleanup: Vec<String>,
}

/// Verify each target.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = policy_file::targets(&loaded, args.target.as_deref())?;
    let audit_log = args
        .audit_log
        .clone()
        .or_else(|| loaded.policy.agent.audit_log.as_ref().map(Into::into));
    let token = curfew_postgres::random_hex(3).context("reading random bytes")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let started = Timestamp::now();
    let mut verified = Vec::new();
    for target in targets {
        let options = curfew_verify::Options {
            max_wait: args.max_wait,
            full: args.full,
        };
        let result = runtime.block_on(verify_target(
            &loaded,
            target,
            options,
            audit_log.as_deref(),
            &token,
        ));
        verified.push(result?);
    }
    let failed = verified
        .iter()
        .flat_map(|v| v.results.iter().chain(&v.mechanisms))
        .filter(|r| r.status == Status::Fail)
        .count();
    if !args.no_record {
        super::record_result(
            audit_log.as_deref(),
            records(&verified, &loaded, args.max_wait, args.full),
        );
    }
    match args.format {
        Format::Md => out_text(&output::markdown(
            &verified,
            &loaded,
            started,
            args.max_wait,
        ))?,
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "verified_at": started.to_string(),
                "policy": {"source": loaded.source, "sha256": loaded.sha256},
                "max_wait": args.max_wait.to_string(),
                "full": args.full,
                "passed": failed == 0,
                "targets": verified,
            }))
            .context("serializing the results")?
        ))?,
    }
    if failed > 0 {
        Err(Failure::Check(format!(
            "{failed} test{} failed verification",
            if failed == 1 { "" } else { "s" }
        )))
    } else {
        Ok(())
    }
}

async fn verify_target(
    loaded: &LoadedPolicy,
    target: &curfew_policy::Target,
    options: curfew_verify::Options,
    audit_log: Option<&Path>,
    token: &str,
) -> Result<Verified, Failure> {
    let max_wait = options.max_wait;
    let policy = &loaded.policy;
    let now = Timestamp::now();
    let plans = curfew_verify::plan(policy, options, now, token);
    let evaluated =
        |index: usize, why: &str| curfew_verify::by_evaluation(policy, index, why, now, token);
    let not_tested = |index: usize, why: &str| RuleResult::not_tested(&policy.rules[index], why);
    let spec = crate::policy_file::target_spec(target)?;
    let connected = curfew_postgres::connect(&spec).await;
    let mut verified = Verified {
        target: target.name.clone(),
        server: None,
        agent: None,
        results: Vec::new(),
        mechanisms: Vec::new(),
        cleanup: Vec::new(),
    };
    // Why live tests cannot run on this target, if they cannot.
    let mut blocked: Option<Fallback> = None;
    let admin = match connected {
        Ok(c) => {
            for warning in &c.warnings {
                eprintln!("curfew: warning: {warning}");
            }
            verified.server = Some(format!("PostgreSQL {}", c.connection.info.version));
            Some(c.connection)
        }
        Err(e) => {
            blocked = Some(Fallback::Fail(format!(
                "The target could not be reached: {e}."
            )));
            None
        }
    };
    if let Some(admin) = &admin {
        if admin.info.in_recovery {
            blocked = Some(Fallback::Evaluate(
                "the target is a standby (read-only): a canary role cannot be created there"
                    .to_owned(),
            ));
        } else {
            let leader = admin
                .leader()
                .await
                .with_context(|| format!("target \"{}\"", target.name))?;
            let announced = leader
                .as_ref()
                .and_then(|l| l.application.as_deref())
                .and_then(Announcement::parse);
            verified.agent = leader.as_ref().and_then(|l| l.application.clone());
            blocked = match announced {
                None => Some(Fallback::Fail(
                    format!(
                        "No curfew agent enforces the policy on target \"{}\": no session holds curfew's leader lock, so nothing would end the canary. Start `curfew agent` and verify again.",
                        target.name
                    ),
                )),
                Some(a) if a.dry_run => Some(Fallback::Fail(
                    "The curfew agent leading this server runs as a dry run: it records what it would do and ends nothing.".to_owned(),
                )),
                Some(_) => None,
            };
        }
    }
    let created = Mutex::new(Vec::new());
    let locked = Mutex::new(Vec::new());
    let mut live = Vec::new();
    let mut results: Vec<Option<RuleResult>> = vec![None; plans.len()];
    for (index, planned) in plans.iter().enumerate() {
        results[index] = match (planned, &blocked) {
            (Planned::NotTested { why }, _) => Some(not_tested(index, why)),
            (Planned::Evaluate { why }, _) => Some(evaluated(index, why)),
            (_, Some(fallback)) => Some(fallback.result(policy, index, now, token)),
            (planned, None) => {
                live.push((index, planned));
                None
            }
        };
    }
    // The login-lock test runs wherever the live tests can.
    let test_locks = match &blocked {
        None => admin.is_some(),
        Some(fallback) => {
            verified.mechanisms.push(fallback.mechanism(lock::SUBJECT));
            false
        }
    };
    if let (Some(admin), true) = (&admin, !live.is_empty() || test_locks) {
        let bench = live::Bench {
            admin,
            spec: &spec,
            policy,
            audit_log,
            created: &created,
            token,
            max_wait,
            locked: &locked,
        };
        let longest = live
            .iter()
            .filter_map(|(_, p)| match p {
                Planned::Live { limit, .. } => Some(live::wait_for(policy, *limit)),
                _ => None,
            })
            .max()
            .unwrap_or_default()
            .max(live::wait_for_edge(
                policy,
                curfew_verify::EDGE_LEAD.unsigned_abs(),
            ));
        eprintln!(
            "curfew: target \"{}\": canary sessions in the scope of {}{}; waiting up to {}s for the agent",
            target.name,
            live.iter()
                .map(|(i, _)| format!("\"{}\"", policy.rules[*i].name))
                .collect::<Vec<_>>()
                .join(", "),
            if test_locks {
                ", and a canary role to lock and unlock"
            } else {
                ""
            },
            longest.as_secs()
        );
        let tests = futures_util::future::join_all(live.iter().map(|(index, planned)| {
            let bench = &bench;
            let index = *index;
            async move {
                match planned {
                    Planned::Live { canary, limit, .. } => {
                        live::test(bench, index, canary, *limit).await
                    }
                    Planned::Edge => special::edge(bench, index).await,
                    Planned::Cap { canary, cap } => special::cap(bench, index, canary, *cap).await,
                    Planned::Evaluate { why } => evaluated(index, why),
                    Planned::NotTested { why } => not_tested(index, why),
                }
            }
        }));
        let lock_test = async {
            if test_locks {
                Some(lock::test(&bench, &target.name).await)
            } else {
                None
            }
        };
        let interrupted = tokio::select! {
            (done, locks) = futures_util::future::join(tests, lock_test) => {
                for ((index, _), result) in live.iter().zip(done) {
                    results[*index] = Some(result);
                }
                verified.mechanisms.extend(locks);
                false
            }
            _ = stop_requested() => true,
        };
        // Whatever happened: the locks verify took are released, then its roles dropped.
        let locked = live::lock(&locked).clone();
        for oid in locked {
            if let Err(e) = admin
                .release_incident_lock(oid, "curfew verify (cleanup)")
                .await
            {
                verified.cleanup.push(format!(
                    "the incident lock on canary role oid {oid} was not released: {e}"
                ));
            }
        }
        let created = live::lock(&created).clone();
        for role in &created {
            if let Err(e) = admin.drop_canary(role).await {
                verified
                    .cleanup
                    .push(format!("canary role \"{role}\" was not dropped: {e}"));
            }
        }
        if interrupted {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "interrupted; the canary roles created were dropped"
            )));
        }
    }
    verified.results = results.into_iter().flatten().collect();
    Ok(verified)
}

/// One `control_verified` record per target, with the evidence, for `curfew report`.
fn records(
    verified: &[Verified],
    loaded: &LoadedPolicy,
    max_wait: Limit,
    full: bool,
) -> Vec<curfew_audit::Record> {
    verified
        .iter()
        .map(|v| {
            let all: Vec<RuleResult> = v.results.iter().chain(&v.mechanisms).cloned().collect();
            let failed = all.iter().any(|r| r.status == Status::Fail);
            curfew_audit::Record::new(Timestamp::now(), curfew_audit::Event::ControlVerified)
                .with_target(&v.target)
                .with_result(if failed { "failed" } else { "passed" })
                .with_reason(format!("curfew verify: {}", curfew_verify::summary(&all)))
                .with_detail(serde_json::json!({
                    // Who ran it: the real uid's user and the role the target's URL connects as.
                    "actor": crate::actor::current(
                        loaded.policy.targets.iter().find(|t| t.name == v.target).and_then(|t| t.url.login_role.as_deref()),
                    ).to_json(),
                    "server": v.server,
                    "agent": v.agent,
                    // The hash `policy_loaded` records carry: `report` compares the two.
                    "policy_sha256": loaded.sha256,
                    "max_wait": max_wait.to_string(),
                    "full": full,
                    "counts": curfew_verify::counts(&all),
                    "rules": v.results,
                    "mechanisms": v.mechanisms,
                    "cleanup": v.cleanup,
                }))
        })
        .collect()
}

/// Ctrl-C, or SIGTERM (a service manager or `timeout` stopping verify): either way the canary
/// roles and locks are cleaned up before exiting.
async fn stop_requested() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            // Without a SIGTERM handler only Ctrl-C is heard.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
