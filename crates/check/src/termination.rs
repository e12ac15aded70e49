//! V-261910: sessions are terminated automatically after the organization-defined conditions.
//! Met by a curfew policy with an enforced rule while a curfew agent leads the server, or (less
//! well: any user can `SET` them away) by native timeouts.

use curfew_policy::{Action, Condition};
use curfew_postgres::ServerFacts;

use crate::settings::{duration_of, words};
use crate::{Finding, PolicyContext, Status};

pub(crate) fn requirement(facts: &ServerFacts, ctx: PolicyContext<'_>) -> Finding {
    // Violations rules are enforced by the gateway only, not by the agent.
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
    let agent = match &facts.leader {
        Some(l) => format!(
            "a curfew agent leads this server (session {} from {}, since {})",
            l.pid,
            l.client_addr.as_deref().unwrap_or("a local socket"),
            l.backend_start.map_or_else(
                || "?".to_owned(),
                |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()
            )
        ),
        None => "no curfew agent leads this server".to_owned(),
    };
    let native_text = if native.is_empty() {
        "no native session timeout is set".to_owned()
    } else {
        format!("native: {}", native.join(", "))
    };
    let observed = format!("{policy}; {agent}; {native_text}");
    let (status, fix) = if !enforced.is_empty() && facts.leader.is_some() {
        (Status::Pass, String::new())
    } else if !native.is_empty() {
        (
            Status::Pass,
            "Met by native settings only, which any user can switch off with SET; run the curfew agent for enforcement users cannot override.".to_owned(),
        )
    } else if enforced.is_empty() {
        (
            Status::Fail,
            "Define the conditions as enforced rules in the policy (action other than \"report\"), then run `curfew agent`.".to_owned(),
        )
    } else {
        (
            Status::Fail,
            "Start the agent for this target (`systemctl enable --now curfew`, or `curfew agent -c POLICY`); `curfew check` passes once it holds the leader lock.".to_owned(),
        )
    };
    Finding {
        id: "V-261910",
        title: "Sessions are terminated after the defined conditions",
        requirement: "DISA STIG V-261910 (PostgreSQL); NIST SP 800-171 3.1.11[b]",
        status,
        observed,
        expected: "an enforced curfew rule with a curfew agent leading this server (or, weaker, native session timeouts)".to_owned(),
        fix,
    }
}
