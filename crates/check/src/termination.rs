//! V-261910: sessions are terminated automatically after the organization-defined conditions.
//! Met by a curfew policy with an enforced rule while a curfew agent enforces *this* policy on
//! the server (seen from the server: the leader lock's session announces the agent's mode and
//! policy), or, less well (any user can `SET` them away), by native timeouts.

use curfew_policy::{Action, Condition};
use curfew_postgres::{Announcement, ServerFacts};

use crate::durations::{duration_of, words};
use crate::{Finding, PolicyContext, Status};

/// Whether a curfew agent enforces this policy on the server: `Ok` with what shows it, or
/// `Err` with why not.
pub(crate) fn enforcing_agent(
    facts: &ServerFacts,
    ctx: PolicyContext<'_>,
) -> Result<String, String> {
    let Some(leader) = &facts.leader else {
        return Err("no curfew agent leads this server".to_owned());
    };
    let who = format!(
        "session {} from {}, since {}",
        leader.pid,
        leader.client_addr.as_deref().unwrap_or("a local socket"),
        leader.backend_start.map_or_else(
            || "?".to_owned(),
            |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()
        )
    );
    if !leader.own_role {
        return Err(format!(
            "the session holding curfew's leader lock ({who}) is of role \"{}\", not curfew's role \"{}\": it is not a curfew agent (any role can take an advisory lock and name its application), and no curfew agent leads this server",
            leader.role.as_deref().unwrap_or("?"),
            facts.connected_as
        ));
    }
    match leader.application.as_deref().and_then(Announcement::parse) {
        Some(a) if a.dry_run => Err(format!(
            "the curfew agent leading this server ({who}) runs a dry run: it ends nothing"
        )),
        Some(a) if !ctx.sha256.starts_with(&a.sha256_prefix) => Err(format!(
            "the curfew agent leading this server ({who}) enforces another policy (sha256 {}), not this one",
            a.sha256_prefix
        )),
        Some(_) => Ok(format!(
            "a curfew agent enforces this policy on this server ({who})"
        )),
        None => Ok(format!(
            "a curfew agent leads this server ({who}; it does not announce its policy: an older curfew)"
        )),
    }
}

pub(crate) fn requirement(facts: &ServerFacts, ctx: PolicyContext<'_>) -> Finding {
    // Violations rules are enforced by nothing that runs (the gateway does not exist yet).
    let enforced: Vec<&str> = ctx
        .policy
        .rules
        .iter()
        .filter(|r| {
            r.action == Action::Terminate && !matches!(r.condition, Condition::Violations(_))
        })
        .map(|r| r.name.as_str())
        .collect();
    let native: Vec<String> = [
        "idle_session_timeout",
        "idle_in_transaction_session_timeout",
    ]
    .iter()
    .filter_map(|name| {
        let limit = duration_of(facts.settings.get(*name)?)?;
        (!limit.is_zero()).then(|| format!("{name} = {}", words(limit)))
    })
    .collect();
    let policy = format!(
        "policy {} (sha256 {}) has {} enforced rule{}{}",
        ctx.source,
        ctx.sha256.get(..12).unwrap_or(ctx.sha256),
        enforced.len(),
        if enforced.len() == 1 { "" } else { "s" },
        if enforced.is_empty() {
            String::new()
        } else {
            format!(" ({})", enforced.join(", "))
        }
    );
    let agent = enforcing_agent(facts, ctx);
    let native_text = if native.is_empty() {
        "no native session timeout is set".to_owned()
    } else {
        format!("native: {}", native.join(", "))
    };
    let observed = format!(
        "{policy}; {}; {native_text}",
        match &agent {
            Ok(text) | Err(text) => text,
        }
    );
    let why = match &agent {
        _ if !native.is_empty() => String::new(),
        _ if enforced.is_empty() => "the policy has no enforced rule (report-only and `violations` rules end nothing), and no native session timeout is set".to_owned(),
        Err(no_agent) => format!(
            "the policy's rules are enforced only by a curfew agent running this policy, but {no_agent}; and no native session timeout is set"
        ),
        Ok(_) => String::new(),
    };
    let (status, fix) = if !enforced.is_empty() && agent.is_ok() {
        (Status::Pass, String::new())
    } else if !native.is_empty() {
        (
            Status::Pass,
            "Met by native settings only, which any user can switch off with SET; run the curfew agent (not a dry run) with this policy for enforcement users cannot override.".to_owned(),
        )
    } else if enforced.is_empty() {
        (
            Status::Fail,
            "Define the conditions as enforced rules in the policy (action other than \"report\"), then run `curfew agent`.".to_owned(),
        )
    } else {
        (
            Status::Fail,
            "Run the agent with this policy, not as a dry run (`systemctl enable --now curfew`, `systemctl reload curfew` after a policy change); `curfew check` passes once it leads the server.".to_owned(),
        )
    };
    Finding {
        why,
        id: "V-261910",
        title: "Sessions are terminated after the defined conditions",
        requirement: "DISA STIG V-261910 (PostgreSQL); NIST SP 800-171 3.1.11[b]",
        status,
        observed,
        expected: "an enforced curfew rule, with a curfew agent enforcing this policy on this server (or, weaker, native session timeouts)".to_owned(),
        fix,
    }
}
