//! `curfew verify`: the control test the Oracle STIG describes, run live. For each rule whose
//! limit can be waited out, a canary role opens a session in the rule's scope, switches off
//! PostgreSQL's own timeouts for itself, and waits; the test passes when the agent ended it,
//! using it fails, and the audit log holds the agent's record. Other rules are checked by
//! evaluation at their boundaries. The result is recorded as `control_verified`.

mod live;
mod output;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use curfew_agent::LoadedPolicy;
use curfew_policy::Limit;
use curfew_postgres::{Announcement, TargetSpec};
use curfew_verify::{Method, Planned, RuleResult, Status};
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
    /// Rules with a longer limit are checked by evaluation instead of waited out.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    max_wait: Limit,
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
        let result = runtime.block_on(verify_target(
            &loaded,
            target,
            args.max_wait,
            audit_log.as_deref(),
            &token,
        ));
        verified.push(result?);
    }
    let failed = verified
        .iter()
        .flat_map(|v| &v.results)
        .filter(|r| r.status == Status::Fail)
        .count();
    if !args.no_record {
        super::record_result(
            audit_log.as_deref(),
            records(&verified, &loaded, args.max_wait),
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
                "passed": failed == 0,
                "targets": verified,
            }))
            .context("serializing the results")?
        ))?,
    }
    if failed > 0 {
        Err(Failure::Check(format!(
            "{failed} rule{} failed verification",
            if failed == 1 { "" } else { "s" }
        )))
    } else {
        Ok(())
    }
}

async fn verify_target(
    loaded: &LoadedPolicy,
    target: &curfew_policy::Target,
    max_wait: Limit,
    audit_log: Option<&Path>,
    token: &str,
) -> Result<Verified, Failure> {
    let policy = &loaded.policy;
    let now = Timestamp::now();
    let plans = curfew_verify::plan(policy, max_wait, now, token);
    let evaluated =
        |index: usize, why: &str| curfew_verify::by_evaluation(policy, index, why, now, token);
    let not_tested = |index: usize, why: &str| {
        RuleResult::new(
            &policy.rules[index],
            Method::NotTested,
            Status::Skipped,
            format!("Not tested: {why}."),
        )
    };
    let spec = TargetSpec::from_policy(target);
    let connected = curfew_postgres::connect(&spec).await;
    let mut verified = Verified {
        target: target.name.clone(),
        server: None,
        agent: None,
        results: Vec::new(),
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
    let mut live = Vec::new();
    let mut results: Vec<Option<RuleResult>> = vec![None; plans.len()];
    for (index, planned) in plans.iter().enumerate() {
        results[index] = match (planned, &blocked) {
            (Planned::NotTested { why }, _) => Some(not_tested(index, why)),
            (Planned::Evaluate { why }, _) => Some(evaluated(index, why)),
            (Planned::Live { .. }, Some(fallback)) => {
                Some(fallback.result(policy, index, now, token))
            }
            (Planned::Live { canary, limit }, None) => {
                live.push((index, canary, *limit));
                None
            }
        };
    }
    if let (Some(admin), false) = (&admin, live.is_empty()) {
        let bench = live::Bench {
            admin,
            spec: &spec,
            policy,
            audit_log,
            created: &created,
            token,
        };
        let longest = live.iter().map(|(_, _, l)| *l).max().unwrap_or(max_wait);
        eprintln!(
            "curfew: target \"{}\": {} canary session{} in the scope of {}; waiting up to {}s for the agent to end them",
            target.name,
            live.len(),
            if live.len() == 1 { "" } else { "s" },
            live.iter()
                .map(|(i, _, _)| format!("\"{}\"", policy.rules[*i].name))
                .collect::<Vec<_>>()
                .join(", "),
            live::wait_for(policy, longest).as_secs()
        );
        let tests = futures_util::future::join_all(
            live.iter()
                .map(|(index, canary, limit)| live::test(&bench, *index, canary, *limit)),
        );
        let interrupted = tokio::select! {
            done = tests => {
                for ((index, _, _), result) in live.iter().zip(done) {
                    results[*index] = Some(result);
                }
                false
            }
            _ = tokio::signal::ctrl_c() => true,
        };
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
) -> Vec<curfew_audit::Record> {
    verified
        .iter()
        .map(|v| {
            let failed = v.results.iter().any(|r| r.status == Status::Fail);
            curfew_audit::Record::new(Timestamp::now(), curfew_audit::Event::ControlVerified)
                .with_target(&v.target)
                .with_result(if failed { "failed" } else { "passed" })
                .with_reason(format!(
                    "curfew verify: {}",
                    curfew_verify::summary(&v.results)
                ))
                .with_detail(serde_json::json!({
                    // Who ran it: the real uid's user and the role the target's URL connects as.
                    "actor": crate::actor::current(
                        loaded.policy.targets.iter().find(|t| t.name == v.target).map(|t| t.url.user.as_str()),
                    ).to_json(),
                    "server": v.server,
                    "agent": v.agent,
                    "policy_sha256": loaded.sha256,
                    "max_wait": max_wait.to_string(),
                    "rules": v.results,
                    "cleanup": v.cleanup,
                }))
        })
        .collect()
}
