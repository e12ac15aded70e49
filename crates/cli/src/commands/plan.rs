//! `curfew plan`: one snapshot of each target, and for each live session the rule that will end
//! it and when, or why it is exempt. `--at` evaluates the same sessions at another instant.
//! The snapshot and the judging are `curfew_ops::plan`'s; here the arguments and the output.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use curfew_ops::{LoginLock, TargetPlan};
use curfew_policy::{LoadedPolicy, Verdict, format_age};
use jiff::Timestamp;

use crate::exit::{Failure, out, out_text};
use crate::policy_file;
use crate::steps;
use crate::when::parse_instant;

/// Output formats of `curfew plan`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// A table per target.
    Table,
    /// One JSON document.
    Json,
}

/// Options of `curfew plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Evaluate at this instant instead of now: 2026-11-23T19:00:00Z, "2026-11-23 19:00",
    /// "2026-11-23 19:00 Europe/Berlin", or +2h (from the server's clock).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    at: Option<String>,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Show the plan for each target.
pub(crate) fn run(config: &Path, args: &Args) -> Result<(), Failure> {
    let loaded = policy_file::load(config)?;
    let targets = policy_file::targets(&loaded, args.target.as_deref())?;
    if let Some(at) = &args.at {
        // Check the syntax before connecting anywhere.
        parse_instant(at, Timestamp::UNIX_EPOCH).map_err(Failure::Usage)?;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    // `--at` may count from the server's clock: resolved per target.
    let at = |now: Timestamp| match &args.at {
        Some(at) => parse_instant(at, now),
        None => Ok(now),
    };
    // Each target by its own adapter, in the policy's order.
    let mut plans = Vec::new();
    for target in &targets {
        if crate::databases::is_mysql(target) {
            plans.push(runtime.block_on(super::plan_mariadb::plan(&loaded, target, &at))?);
        } else {
            plans.extend(runtime.block_on(curfew_ops::plan(
                &loaded,
                &[*target],
                &at,
                &mut steps::print,
            ))?);
        }
    }
    match args.format {
        Format::Table => {
            let mut text = String::new();
            for plan in &plans {
                table(&mut text, &loaded, plan);
                let locks = lock_lines(&plan.login_locks, plan.at);
                if !locks.is_empty() {
                    let at = plan.at.round(jiff::Unit::Second).unwrap_or(plan.at);
                    let _ = writeln!(text, "  Login locks at {at}:");
                    for line in &locks {
                        let _ = writeln!(text, "    {line}");
                    }
                    let _ = writeln!(text);
                }
            }
            out_text(&text)
        }
        Format::Json => {
            let documents: Vec<_> = plans.iter().map(|plan| json(&loaded, plan)).collect();
            out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&documents).map_err(|e| Failure::Runtime(e.into()))?
            ))
        }
    }
}

/// One target's plan as `--format json` gives it.
fn json(loaded: &LoadedPolicy, plan: &TargetPlan) -> serde_json::Value {
    let at = plan.at;
    serde_json::json!({
        "target": plan.target,
        "server": plan.server,
        "server_now": plan.now.to_string(),
        "at": at.to_string(),
        "sessions": plan.sessions.iter().zip(&plan.verdicts).map(|(s, v)| {
            let by = ended_by(loaded, plan, s, v);
            serde_json::json!({
            "pid": s.pid,
            "backend_start": s.backend_start.to_string(),
            "role": &*s.role,
            "database": &*s.database,
            "application": &*s.application,
            "client_addr": s.client_addr.shown(),
            "state": s.state.as_pg(),
            "verdict": v,
            "rule": rule_of(loaded, v),
            "reason": reason_of(loaded, v, at),
            "gateway_client": plan.gateway.get(&s.key()).map(|c| std::net::SocketAddr::new(c.addr, c.port).to_string()),
            "ended_by": by.map(|(by, _)| by),
            "agent_ends_at": by.and_then(|(_, at)| at).map(|t| t.to_string()),
        })}).collect::<Vec<_>>(),
        "login_locks": lock_lines(&plan.login_locks, at),
    })
}

/// Each login lock as a line: when each `lock_logins` rule locks and restores which roles,
/// and the incident locks, as of `at`.
fn lock_lines(locks: &[LoginLock], at: Timestamp) -> Vec<String> {
    let short = |t: Timestamp| t.round(jiff::Unit::Minute).unwrap_or(t).to_string();
    locks
        .iter()
        .map(|lock| match lock {
            LoginLock::Window(w) => {
                let who = if w.roles.is_empty() {
                    "no role".to_owned()
                } else {
                    w.roles.join(", ")
                };
                let until = w
                    .until
                    .map_or("for good".to_owned(), |u| format!("until {}", short(u)));
                if w.locked {
                    format!(
                        "rule {}: logins of {who} are LOCKED {until} (login restored then)",
                        w.rule
                    )
                } else {
                    format!(
                        "rule {}: logins of {who} are allowed {until} (locked then)",
                        w.rule
                    )
                }
            }
            LoginLock::Incident {
                role,
                by,
                reason,
                expires_at,
            } => {
                let state = match expires_at {
                    Some(e) if *e <= at => format!("expired at {}", short(*e)),
                    Some(e) => format!("in force until {}", short(*e)),
                    None => "in force until lifted".to_owned(),
                };
                format!("role {role}: incident lock by {by} ({reason}), {state}")
            }
        })
        .collect()
}

/// Who ends a session the verdict ends (`gateway` or `agent`), and for a gateway session,
/// when the agent does if the gateway has not (`[agent] gateway_grace` past the deadline).
fn ended_by(
    loaded: &LoadedPolicy,
    plan: &TargetPlan,
    session: &curfew_policy::Session,
    v: &Verdict,
) -> Option<(&'static str, Option<Timestamp>)> {
    let (Verdict::Ends(d) | Verdict::Scheduled(d)) = v else {
        return None;
    };
    if plan.gateway.contains_key(&session.key())
        && curfew_agent::gateway_enforces(&loaded.policy, d)
    {
        let grace = loaded.policy.agent.gateway_grace.get();
        Some(("gateway", d.deadline.saturating_add(grace).ok()))
    } else {
        Some(("agent", None))
    }
}

fn rule_of(loaded: &LoadedPolicy, v: &Verdict) -> Option<String> {
    match v {
        Verdict::Ends(d) | Verdict::Reported(d) | Verdict::Scheduled(d) => {
            Some(loaded.policy.rules[d.rule].name.clone())
        }
        _ => None,
    }
}

fn reason_of(loaded: &LoadedPolicy, v: &Verdict, at: Timestamp) -> Option<String> {
    match v {
        Verdict::Ends(d) | Verdict::Reported(d) => Some(d.reason(&loaded.policy, at)),
        Verdict::Scheduled(d) => Some(d.reason(&loaded.policy, d.deadline)),
        _ => None,
    }
}

fn table(out: &mut String, loaded: &LoadedPolicy, plan: &TargetPlan) {
    let TargetPlan {
        target,
        server,
        now,
        at,
        sessions,
        verdicts,
        ..
    } = plan;
    let (now, at) = (*now, *at);
    let when = if at == now {
        format!(
            "server clock {}",
            now.round(jiff::Unit::Second).unwrap_or(now)
        )
    } else {
        format!(
            "evaluated at {} (server clock now {})",
            at.round(jiff::Unit::Second).unwrap_or(at),
            now.round(jiff::Unit::Second).unwrap_or(now)
        )
    };
    let _ = writeln!(
        out,
        "target {target}: {server}, {} sessions, {when}",
        sessions.len()
    );
    if sessions.is_empty() {
        let _ = writeln!(out);
        return;
    }
    let rows: Vec<[String; 6]> = sessions
        .iter()
        .zip(verdicts)
        .map(|(s, v)| {
            let mut verdict = match v {
                Verdict::NotClient => "not a client session".to_owned(),
                Verdict::Exempt { by } => format!("exempt ({by})"),
                Verdict::Untouched => "no rule applies".to_owned(),
                Verdict::Ends(d) => format!(
                    "ENDS NOW: {} ({})",
                    loaded.policy.rules[d.rule].name,
                    d.reason(&loaded.policy, at)
                ),
                Verdict::Reported(d) => format!(
                    "report only: {} ({})",
                    loaded.policy.rules[d.rule].name,
                    d.reason(&loaded.policy, at)
                ),
                Verdict::Scheduled(d) => format!(
                    "in {}: {} ({})",
                    format_age(d.deadline.duration_since(at)),
                    loaded.policy.rules[d.rule].name,
                    d.reason(&loaded.policy, d.deadline)
                ),
            };
            // A gateway session: the gateway ends it (with a FATAL naming the rule); the
            // agent only after the grace, if the gateway has not.
            if let Some(client) = plan.gateway.get(&s.key()) {
                match ended_by(loaded, plan, s, v) {
                    Some(("gateway", Some(agent_at))) if agent_at > at => {
                        let _ = write!(
                            verdict,
                            " [{client}: by the gateway; by the agent in {} if not]",
                            format_age(agent_at.duration_since(at))
                        );
                    }
                    Some(("gateway", _)) => {
                        let _ = write!(
                            verdict,
                            " [{client}: the gateway missed it; by the agent now]"
                        );
                    }
                    _ => {
                        let _ = write!(verdict, " [{client}]");
                    }
                }
            }
            [
                s.pid.to_string(),
                s.role.to_string(),
                s.database.to_string(),
                s.application.to_string(),
                s.state.as_pg().to_owned(),
                verdict,
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    out.push_str(&crate::table::render(
        "  ",
        &["PID", "ROLE", "DATABASE", "APPLICATION", "STATE", "VERDICT"],
        &rows,
        &[],
    ));
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use curfew_agent::GatewayClient;
    use curfew_policy::{BackendType, ClientAddr, Session, SessionState};

    use super::*;

    const POLICY: &str = r#"
[agent]
gateway_grace = "10s"

[[target]]
name = "db"
url = "postgresql://curfew@db1/postgres"

[gateway]
listen = "127.0.0.1:6432"
target = "db"

[[rule]]
name = "inactivity"
idle = "15m"
"#;

    fn idle_since(pid: i64, since: Timestamp) -> Session {
        Session {
            pid,
            backend_start: since,
            xact_start: None,
            state: SessionState::Idle,
            state_change: Some(since),
            role: Arc::from("alice"),
            member_of: Arc::from(vec!["alice".to_owned()]),
            database: Arc::from("app"),
            client_addr: ClientAddr::Ip("10.0.0.9".parse().unwrap()),
            application: Arc::from("psql"),
            backend_type: BackendType::ClientBackend,
        }
    }

    #[test]
    fn a_gateway_session_is_the_gateways_to_end_and_the_agents_only_after_the_grace() {
        let loaded = LoadedPolicy::from_bytes("curfew.toml", POLICY.as_bytes().to_vec()).unwrap();
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let since = now - jiff::SignedDuration::from_mins(10);
        let sessions = vec![idle_since(1, since), idle_since(2, since)];
        let mut gateway = BTreeMap::new();
        gateway.insert(
            sessions[0].key(),
            GatewayClient {
                addr: "192.0.2.7".parse().unwrap(),
                port: 50123,
                gateway: "gw1:42".to_owned(),
            },
        );
        let plan = TargetPlan {
            target: "db".to_owned(),
            server: "PostgreSQL 17.2".to_owned(),
            now,
            at: now,
            verdicts: curfew_agent::judge_sessions(&loaded.policy, &sessions, now),
            sessions,
            login_locks: Vec::new(),
            gateway,
        };
        let mut text = String::new();
        table(&mut text, &loaded, &plan);
        assert!(
            text.contains(
                "[via gateway from 192.0.2.7:50123: by the gateway; by the agent in 5m10s if not]"
            ),
            "{text}"
        );
        let json = json(&loaded, &plan);
        let (via, direct) = (&json["sessions"][0], &json["sessions"][1]);
        assert_eq!(via["gateway_client"], "192.0.2.7:50123", "{via}");
        assert_eq!(via["ended_by"], "gateway", "{via}");
        assert_eq!(via["agent_ends_at"], "2026-11-28T12:05:10Z", "{via}");
        assert_eq!(
            direct["gateway_client"],
            serde_json::Value::Null,
            "{direct}"
        );
        assert_eq!(direct["ended_by"], "agent", "{direct}");
        assert_eq!(direct["agent_ends_at"], serde_json::Value::Null, "{direct}");
    }
}
