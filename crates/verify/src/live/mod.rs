//! The live control test on one target: connect, find the leading agent, then run every rule's
//! planned test (a canary waited out, a window edge, a session cap) and the login-lock test
//! concurrently, and clean up what was created whatever happens. Results only; how they are
//! shown is the caller's.

mod canary;
mod gateway;
mod gateway_bench;
mod gateway_lock;
mod lock;
mod mariadb;
mod mariadb_connect;
mod postgres;
mod special;
pub mod target;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;

use curfew_policy::{LoadedPolicy, Target};
use curfew_postgres::{Announcement, PgError, TargetSpec};
use jiff::Timestamp;
use mariadb::MariaDbCanaries;
use postgres::PostgresCanaries;
use target::CanaryTarget;

use crate::{Options, Planned, RuleResult};
use canary::Fallback;
pub use gateway::ThroughGateway;

/// One target's results.
#[derive(Debug, serde::Serialize)]
pub struct Verified {
    /// The target's name.
    pub target: String,
    /// The server, as reached ("PostgreSQL 17.2"), if it was.
    pub server: Option<String>,
    /// What the leading agent announced, if one leads.
    pub agent: Option<String>,
    /// One result per rule.
    pub results: Vec<RuleResult>,
    /// Tests of mechanisms rather than of one rule (the login lock).
    pub mechanisms: Vec<RuleResult>,
    /// Problems removing what verify created.
    pub cleanup: Vec<String>,
    /// The enforcement point `results` and `mechanisms` are for: `agent` (direct connections).
    pub enforcement_point: &'static str,
    /// The rules tested through the curfew gateway in front of this target, when the policy
    /// has a `[gateway]` forwarding to it (and `--through` asks for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<ThroughGateway>,
}

/// What the live test tells its caller as it goes (the caller decides how to show it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A warning from connecting to the target.
    ConnectWarning(String),
    /// The live tests start: canaries for these rules (and a lock canary if `locks`), waiting
    /// up to `longest`.
    Waiting {
        /// The target.
        target: String,
        /// The rules tested live, by name.
        rules: Vec<String>,
        /// Whether the login-lock test runs.
        locks: bool,
        /// The longest wait for the agent.
        longest: std::time::Duration,
    },
    /// The tests through the curfew gateway start: canaries logging in at `address`.
    ThroughGateway {
        /// The target behind the gateway.
        target: String,
        /// Where the canaries connect.
        address: String,
    },
}

/// Why a target's live test stopped short.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The leader lock could not be read.
    #[error("target \"{target}\"")]
    Leader {
        /// The target.
        target: String,
        /// Why.
        source: PgError,
    },
    /// The MariaDB/MySQL target could not be read (whether it is read-only, the leader lock's
    /// holders).
    #[error("target \"{target}\"")]
    MariaDb {
        /// The target.
        target: String,
        /// Why.
        source: curfew_mysql::MysqlError,
    },
    /// The target's URL is not one this adapter can use (bad input: the policy was loaded
    /// without the adapter's URL check).
    #[error(transparent)]
    Url(#[from] curfew_postgres::TargetUrlError),
    /// The MariaDB/MySQL target's URL is not one its adapter can use (as [`LiveError::Url`]).
    #[error(transparent)]
    MysqlUrl(#[from] curfew_mysql::TargetUrlError),
    /// Stopped by the caller (Ctrl-C, SIGTERM); what was created was removed.
    #[error("interrupted; the canary roles created were dropped")]
    Interrupted,
}

/// Verify one target: `token` makes this run's canary names unique, `audit_log` is where the
/// agent's records are looked up, and `stop` (Ctrl-C, SIGTERM) interrupts the live tests, after
/// which the locks verify took are released and its roles dropped. PostgreSQL or MariaDB/MySQL
/// by the target URL's scheme. `through` says which enforcement points are tested: the agent
/// on direct connections, and the gateway in front of a PostgreSQL target.
#[allow(clippy::too_many_arguments)] // each is one thing the caller decides
pub async fn verify_target(
    loaded: &LoadedPolicy,
    target: &Target,
    options: Options,
    through: crate::Through,
    audit_log: Option<&Path>,
    token: &str,
    notice: &dyn Fn(Notice),
    stop: impl Future<Output = ()>,
) -> Result<Verified, LiveError> {
    let run = Run {
        loaded,
        target,
        options,
        audit_log,
        token,
        notice,
        now: Timestamp::now(),
    };
    let mut verified = Verified {
        target: target.name.clone(),
        server: None,
        agent: None,
        results: Vec::new(),
        mechanisms: Vec::new(),
        cleanup: Vec::new(),
        enforcement_point: "agent",
        gateway: None,
    };
    if curfew_mysql::is_mysql_url(&target.url.text) {
        let spec = curfew_mysql::MysqlTarget::from_policy(target)?;
        let (admin, blocked) = mariadb_connect::connect(&spec, notice, &mut verified).await?;
        let canaries = admin.map(|admin| MariaDbCanaries::new(admin, &spec));
        return run.finish(canaries.as_ref(), blocked, verified, stop).await;
    }
    let spec = TargetSpec::from_policy(target)?;
    let connected = curfew_postgres::connect(&spec).await;
    // Why live tests cannot run on this target, if they cannot.
    let mut blocked: Option<Fallback> = None;
    let admin = match connected {
        Ok(c) => {
            for warning in &c.warnings {
                notice(Notice::ConnectWarning(warning.to_string()));
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
            // An agent that has just taken the lock announces itself a moment later.
            let waited = std::time::Instant::now();
            let leader = loop {
                let leader = admin.leader().await.map_err(|source| LiveError::Leader {
                    target: target.name.clone(),
                    source,
                })?;
                let unannounced = leader.as_ref().is_some_and(|l| {
                    l.application
                        .as_deref()
                        .and_then(Announcement::parse)
                        .is_none()
                });
                if !unannounced || waited.elapsed() >= ANNOUNCE_WAIT {
                    break leader;
                }
                tokio::time::sleep(ANNOUNCE_POLL).await;
            };
            verified.agent = leader.as_ref().and_then(|l| l.application.clone());
            blocked = no_agent(&target.name, verified.agent.as_deref());
        }
    }
    let canaries = admin
        .as_ref()
        .map(|admin| PostgresCanaries { admin, spec: &spec });
    // Both enforcement points are tested at once; Ctrl-C stops both, each cleaning up.
    let stop = futures_util::FutureExt::shared(Box::pin(stop));
    let direct = async {
        if through.direct() {
            run.finish(canaries.as_ref(), blocked, verified, stop.clone())
                .await
        } else {
            Ok(verified)
        }
    };
    let gateway_in_front = loaded
        .policy
        .gateway
        .as_ref()
        .filter(|g| through.gateway() && g.target == target.name);
    let through_gateway = async {
        let gateway = gateway_in_front?;
        if let Some(address) = crate::gateway_address(gateway) {
            notice(Notice::ThroughGateway {
                target: target.name.clone(),
                address: address.to_string(),
            });
        }
        let Some(admin) = &admin else {
            return Some(Ok(gateway::unreachable(
                &loaded.policy,
                gateway,
                options,
                run.now,
                token,
            )));
        };
        Some(
            gateway::test(
                admin,
                &target.name,
                &loaded.policy,
                gateway,
                &spec.url.dbname,
                options,
                run.now,
                token,
                stop.clone(),
            )
            .await,
        )
    };
    let (direct, through_gateway) = futures_util::future::join(direct, through_gateway).await;
    let mut verified = direct?;
    verified.gateway = through_gateway.transpose()?;
    Ok(verified)
}

/// How long a leader lock held without a curfew announcement is re-read before it is judged:
/// an agent announces its policy a moment after it takes the lock.
const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often it is re-read meanwhile.
const ANNOUNCE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Why the live tests cannot run given the leading agent's announcement (`None`: nobody leads,
/// or the leader announces nothing curfew's): no agent, or one running a dry run, fails them.
fn no_agent(target: &str, announced: Option<&str>) -> Option<Fallback> {
    match announced.and_then(Announcement::parse) {
        None => Some(Fallback::Fail(format!(
            "No curfew agent enforces the policy on target \"{target}\": no session holds curfew's leader lock, so nothing would end the canary. Start `curfew agent` and verify again."
        ))),
        Some(a) if a.dry_run => Some(Fallback::Fail(
            "The curfew agent leading this server runs as a dry run: it records what it would do and ends nothing.".to_owned(),
        )),
        Some(_) => None,
    }
}

/// One target's run, whatever its database.
struct Run<'a> {
    loaded: &'a LoadedPolicy,
    target: &'a Target,
    options: Options,
    audit_log: Option<&'a Path>,
    token: &'a str,
    notice: &'a dyn Fn(Notice),
    /// When the plan is made (evaluations are around it).
    now: Timestamp,
}

impl Run<'_> {
    /// Plan every rule, then run the live tests on `canaries` (connected, unless `None`)
    /// unless `blocked` says why they cannot run.
    async fn finish<T: CanaryTarget>(
        &self,
        canaries: Option<&T>,
        blocked: Option<Fallback>,
        mut verified: Verified,
        stop: impl Future<Output = ()>,
    ) -> Result<Verified, LiveError> {
        let Run {
            loaded,
            target,
            options,
            audit_log,
            token,
            notice,
            now,
        } = *self;
        let policy = &loaded.policy;
        let mut plans = crate::plan(policy, options, now, token);
        // A canary this enforcement point cannot make is not tested, saying why.
        if let Some(canaries) = canaries {
            for planned in &mut plans {
                if let Planned::Live { canary, .. } | Planned::Cap { canary, .. } = planned
                    && let Some(why) = canaries.cannot_make(canary)
                {
                    *planned = Planned::NotTested {
                        why: why.to_owned(),
                    };
                }
            }
        }
        let evaluated =
            |index: usize, why: &str| crate::by_evaluation(policy, index, why, now, token);
        let not_tested =
            |index: usize, why: &str| RuleResult::not_tested(&policy.rules[index], why);
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
            None => canaries.is_some(),
            Some(fallback) => {
                verified.mechanisms.push(fallback.mechanism(lock::SUBJECT));
                false
            }
        };
        if let (Some(canaries), true) = (canaries, !live.is_empty() || test_locks) {
            let context = Live {
                policy,
                target: &target.name,
                audit_log,
                token,
                max_wait: options.max_wait,
                now,
                notice,
            };
            let interrupted = context
                .run(
                    canaries,
                    &live,
                    test_locks,
                    &mut results,
                    &mut verified,
                    stop,
                )
                .await;
            if interrupted {
                return Err(LiveError::Interrupted);
            }
        }
        verified.results = results.into_iter().flatten().collect();
        Ok(verified)
    }
}

/// What the live tests of one target share, whatever the enforcement point.
struct Live<'a> {
    policy: &'a curfew_policy::Policy,
    /// The target's name.
    target: &'a str,
    audit_log: Option<&'a Path>,
    token: &'a str,
    max_wait: curfew_policy::Limit,
    /// When the plan was made (evaluations are around it).
    now: Timestamp,
    notice: &'a dyn Fn(Notice),
}

impl Live<'_> {
    /// Run the `live` tests (and the login-lock test if `test_locks`) on `canaries` until done
    /// or `stop`; then release the locks verify took and drop its roles, whatever happened.
    /// Whether it was stopped.
    async fn run<T: CanaryTarget>(
        &self,
        canaries: &T,
        live: &[(usize, &Planned)],
        test_locks: bool,
        results: &mut [Option<RuleResult>],
        verified: &mut Verified,
        stop: impl Future<Output = ()>,
    ) -> bool {
        let Live {
            policy,
            target,
            audit_log,
            token,
            max_wait,
            now,
            notice,
        } = *self;
        let evaluated =
            |index: usize, why: &str| crate::by_evaluation(policy, index, why, now, token);
        let not_tested =
            |index: usize, why: &str| RuleResult::not_tested(&policy.rules[index], why);
        let created = Mutex::new(Vec::new());
        let locked = Mutex::new(Vec::new());
        let bench = canary::Bench {
            target: canaries,
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
                Planned::Live { limit, .. } => Some(canary::wait_for(policy, *limit)),
                _ => None,
            })
            .max()
            .unwrap_or_default()
            .max(canary::wait_for_edge(
                policy,
                crate::EDGE_LEAD.unsigned_abs(),
            ));
        notice(Notice::Waiting {
            target: target.to_owned(),
            rules: live
                .iter()
                .map(|(i, _)| policy.rules[*i].name.clone())
                .collect(),
            locks: test_locks,
            longest,
        });
        let tests = futures_util::future::join_all(live.iter().map(|(index, planned)| {
            let bench = &bench;
            let index = *index;
            async move {
                match planned {
                    Planned::Live { canary, limit, .. } => {
                        canary::test(bench, index, canary, *limit).await
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
                Some(lock::test(&bench, target).await)
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
            () = stop => true,
        };
        // Whatever happened: the locks verify took are released, then its roles dropped.
        let locked = canary::lock(&locked).clone();
        for oid in locked {
            if let Err(e) = canaries.unlock_role(oid, "curfew verify (cleanup)").await {
                verified.cleanup.push(format!(
                    "the incident lock on canary role (id {oid}) was not released: {e}"
                ));
            }
        }
        let created = canary::lock(&created).clone();
        for role in &created {
            if let Err(e) = canaries.drop_canary(role).await {
                verified
                    .cleanup
                    .push(format!("canary role \"{role}\" was not dropped: {e}"));
            }
        }
        interrupted
    }
}
