//! `curfew plan`: one snapshot of each target, and for each live session the rule that will end
//! it and when, or why it is exempt. `--at` evaluates the same sessions at another instant.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use curfew_policy::{LoadedPolicy, Session, Verdict, format_age};
use jiff::Timestamp;

use crate::exit::{Failure, out, out_text};
use crate::policy_file;
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
    let mut documents = Vec::new();
    let mut text = String::new();
    for target in targets {
        let (snapshot, server, connection) = runtime.block_on(snapshot(&loaded, target))?;
        let at = match &args.at {
            Some(at) => parse_instant(at, snapshot.now).map_err(Failure::Usage)?,
            None => snapshot.now,
        };
        let verdicts = curfew_agent::judge_sessions(&loaded.policy, &snapshot.sessions, at);
        let locks = if target.standby {
            Vec::new()
        } else {
            runtime.block_on(lock_lines(&connection, &loaded, at))?
        };
        match args.format {
            Format::Table => {
                table(
                    &mut text,
                    &loaded,
                    &target.name,
                    &server,
                    snapshot.now,
                    at,
                    &snapshot.sessions,
                    &verdicts,
                );
                if !locks.is_empty() {
                    let at = at.round(jiff::Unit::Second).unwrap_or(at);
                    let _ = writeln!(text, "  Login locks at {at}:");
                    for line in &locks {
                        let _ = writeln!(text, "    {line}");
                    }
                    let _ = writeln!(text);
                }
            }
            Format::Json => documents.push(serde_json::json!({
                "target": target.name,
                "server": server,
                "server_now": snapshot.now.to_string(),
                "at": at.to_string(),
                "sessions": snapshot.sessions.iter().zip(&verdicts).map(|(s, v)| serde_json::json!({
                    "pid": s.pid,
                    "backend_start": s.backend_start.to_string(),
                    "role": &*s.role,
                    "database": &*s.database,
                    "application": &*s.application,
                    "client_addr": s.client_addr.map(|a| a.to_string()),
                    "state": s.state.as_pg(),
                    "verdict": v,
                    "rule": rule_of(&loaded, v),
                    "reason": reason_of(&loaded, v, at),
                })).collect::<Vec<_>>(),
                "login_locks": locks,
            })),
        }
    }
    match args.format {
        Format::Table => out_text(&text),
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&documents).map_err(|e| Failure::Runtime(e.into()))?
        )),
    }
}

async fn snapshot(
    loaded: &LoadedPolicy,
    target: &curfew_policy::Target,
) -> Result<
    (
        curfew_postgres::Snapshot,
        String,
        curfew_postgres::Connection,
    ),
    Failure,
> {
    let spec = crate::policy_file::target_spec(target)?;
    let mut connected = curfew_postgres::connect(&spec)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    for warning in &connected.warnings {
        eprintln!("curfew: warning: {warning}");
    }
    let server = format!("PostgreSQL {}", connected.connection.info.version);
    let snapshot = connected
        .connection
        .snapshot(&[], loaded.needs_memberships())
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    Ok((snapshot, server, connected.connection))
}

/// When each `lock_logins` rule locks and restores which roles, and the incident locks, as of
/// `at`.
async fn lock_lines(
    connection: &curfew_postgres::Connection,
    loaded: &LoadedPolicy,
    at: Timestamp,
) -> Result<Vec<String>, Failure> {
    let has_rules = loaded.policy.rules.iter().any(|r| r.lock_logins);
    let ledger = connection
        .ledger_exists()
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    if !has_rules && !ledger {
        return Ok(Vec::new());
    }
    let roles = connection
        .roles()
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    let short = |t: Timestamp| t.round(jiff::Unit::Minute).unwrap_or(t).to_string();
    let mut lines = Vec::new();
    for w in curfew_agent::login_windows(&loaded.policy, &roles, &connection.info.role, at) {
        let who = if w.roles.is_empty() {
            "no role".to_owned()
        } else {
            w.roles.join(", ")
        };
        let until = w
            .until
            .map_or("for good".to_owned(), |u| format!("until {}", short(u)));
        lines.push(if w.locked {
            format!(
                "rule {}: logins of {who} are LOCKED {until} (login restored then)",
                w.rule
            )
        } else {
            format!(
                "rule {}: logins of {who} are allowed {until} (locked then)",
                w.rule
            )
        });
    }
    if ledger {
        for lock in connection
            .locks(false)
            .await
            .map_err(|e| Failure::Runtime(e.into()))?
        {
            if lock.kind != "incident" {
                continue;
            }
            let state = match lock.expires_at {
                Some(e) if e <= at => format!("expired at {}", short(e)),
                Some(e) => format!("in force until {}", short(e)),
                None => "in force until lifted".to_owned(),
            };
            lines.push(format!(
                "role {}: incident lock by {} ({}), {state}",
                lock.role_name,
                curfew_audit::actor::ledger_label(&lock.created_by),
                lock.reason
            ));
        }
    }
    Ok(lines)
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

#[allow(clippy::too_many_arguments)]
fn table(
    out: &mut String,
    loaded: &LoadedPolicy,
    target: &str,
    server: &str,
    now: Timestamp,
    at: Timestamp,
    sessions: &[Session],
    verdicts: &[Verdict],
) {
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
            let verdict = match v {
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
