//! Which rules verify tests through the curfew gateway (issue 17), and how; pure. The gateway
//! ends its own sessions with a FATAL the client receives, so its test is a client's: a canary
//! logs in through the gateway's listen address with a SCRAM password, and the rule passes when
//! the session was ended at the expected moment by the gateway's FATAL (SQLSTATE and the rule
//! in its text), not by the server or the agent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use curfew_policy::{Action, Condition, Gateway, Limit, Policy};
use jiff::Timestamp;

use crate::{Activity, Canary, Options, canary, expect_ended_by, sample_session};

/// Which enforcement points `curfew verify` tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Through {
    /// The agent on direct connections and, when the policy has a `[gateway]`, the gateway.
    #[default]
    Both,
    /// The agent on direct connections only (as before the gateway was tested).
    Direct,
    /// The gateway only.
    Gateway,
}

impl Through {
    /// Whether the agent's (direct) tests run.
    pub fn direct(self) -> bool {
        self != Through::Gateway
    }

    /// Whether the gateway's tests run (when there is a gateway).
    pub fn gateway(self) -> bool {
        self != Through::Direct
    }
}

/// How one rule is tested through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayPlanned {
    /// An idle-type rule (`idle`, `idle_in_transaction`, `lifetime`): a canary left idle (or
    /// idle in a transaction) until the gateway ends it with `sqlstate`.
    Ended {
        /// The canary.
        canary: Canary,
        /// The limit waited (the rule's, or `[verify] test_limit`).
        limit: Limit,
        /// The rule's configured limit.
        configured: Limit,
        /// The SQLSTATE the gateway's FATAL must carry.
        sqlstate: &'static str,
    },
    /// A violations rule: `count` errors with `sqlstate` provoked, a WARNING expected at
    /// `count - 1` and the FATAL 57P01 at `count`.
    Violations {
        /// The canary.
        canary: Canary,
        /// The rule's count.
        count: u32,
        /// The SQLSTATE the canary raises (the rule's first).
        sqlstate: String,
        /// Whether the rule counts a role's sessions together (`per = "role"`).
        per_role: bool,
    },
    /// Not tested through the gateway, with why.
    NotTested {
        /// Why.
        why: String,
    },
}

/// The SQLSTATE the gateway ends a session with for a violations or a lifetime rule.
pub const GATEWAY_ENDED: &str = "57P01";

/// Where a canary connects to reach a gateway listening on `listen` (an unspecified address
/// is reached on loopback).
pub fn gateway_address(gateway: &Gateway) -> Option<SocketAddr> {
    let listen = *gateway.listen.first()?;
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, listen.port()))
}

/// Why the canaries may not log in to `gateway` at all: its address is not on loopback, and a
/// canary (a member of `serve_members_of`, with its privileges) would cross the network in
/// plaintext, its session open to whoever sits on the path.
pub(crate) fn off_loopback(gateway: &Gateway) -> Option<String> {
    let address = gateway_address(gateway)?;
    (!address.ip().is_loopback()).then(|| {
        format!(
            "the gateway's first listen address {address} is not on loopback, and verify's canary would cross the network to it without TLS (not built yet); list a loopback address first in [gateway] listen to test through the gateway"
        )
    })
}

/// For each rule that ends sessions, in policy order, how it is tested through `gateway`
/// (report-only rules end nothing and are left out). `token` makes canary names unique.
pub fn plan_gateway(
    policy: &Policy,
    gateway: &Gateway,
    options: Options,
    now: Timestamp,
    token: &str,
) -> Vec<(usize, GatewayPlanned)> {
    let from = gateway_address(gateway).map(|a| a.ip());
    policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.action != Action::Report)
        .map(|(index, _)| {
            let planned = if gateway.require_tls {
                GatewayPlanned::NotTested {
                    why: "the gateway requires TLS ([gateway] require_tls) and verify's canary connects to it without TLS (not built yet)".to_owned(),
                }
            } else if let Some(why) = off_loopback(gateway) {
                GatewayPlanned::NotTested { why }
            } else {
                plan_rule(policy, gateway, index, options, now, token, from)
            };
            (index, planned)
        })
        .collect()
}

fn plan_rule(
    policy: &Policy,
    gateway: &Gateway,
    index: usize,
    options: Options,
    now: Timestamp,
    token: &str,
    from: Option<IpAddr>,
) -> GatewayPlanned {
    let rule = &policy.rules[index];
    // The rule's index leads the name, so `[verify] test_limit` reaches this canary; the `g`
    // keeps it apart from the direct test's canary of the same rule.
    let name = format!("{index}_{token}g");
    let scoped = |canary: Result<Canary, String>| {
        let mut canary = canary?;
        canary.client_addr = from;
        // The gateway serves only members of `serve_members_of` (and never a canary as a
        // superuser): the canary is made one.
        if let Some(group) = &gateway.serve_members_of
            && !canary.groups.contains(group)
        {
            canary.groups.push(group.clone());
        }
        Ok::<Canary, String>(canary)
    };
    match &rule.condition {
        Condition::Idle(configured)
        | Condition::IdleInTransaction(configured)
        | Condition::Lifetime(configured) => {
            let configured = *configured;
            let limit = if options.full {
                configured
            } else {
                policy.verify.canary_limit(configured)
            };
            if limit > options.max_wait {
                return GatewayPlanned::NotTested {
                    why: format!("its limit ({limit}) is longer than --max-wait ({})", options.max_wait),
                };
            }
            let mut canary = match scoped(canary::in_scope(policy, index, &name)) {
                Ok(c) => c,
                Err(why) => return GatewayPlanned::NotTested { why },
            };
            // A lifetime rule ends a session whatever it does: through the gateway its canary
            // waits idle, since a FATAL while a statement runs would answer that statement.
            if canary.activity == Activity::Busy {
                canary.activity = Activity::Idle;
            }
            let session = sample_session(&canary, now);
            let at = now + limit.get() + jiff::SignedDuration::from_millis(1);
            if let Err(why) = expect_ended_by(policy, index, &session, at) {
                return GatewayPlanned::NotTested {
                    why: format!("a canary through the gateway would not be ended by this rule: {why}"),
                };
            }
            GatewayPlanned::Ended {
                canary,
                limit,
                configured,
                sqlstate: match rule.condition {
                    Condition::Idle(_) => "57P05",
                    Condition::IdleInTransaction(_) => "25P03",
                    _ => GATEWAY_ENDED,
                },
            }
        }
        Condition::Violations(v) => {
            let canary = match scoped(canary::in_scope(policy, index, &name)) {
                Ok(c) => c,
                Err(why) => return GatewayPlanned::NotTested { why },
            };
            let member_of: Vec<String> = canary.groups.clone();
            if let Some(by) = policy.exempt.by_role(&canary.role, &member_of) {
                return GatewayPlanned::NotTested {
                    why: format!("a canary in its scope is exempt by {by}"),
                };
            }
            let Some(sqlstate) = v.sqlstates.first() else {
                return GatewayPlanned::NotTested {
                    why: "the rule names no SQLSTATE".to_owned(),
                };
            };
            GatewayPlanned::Violations {
                canary,
                count: v.count,
                sqlstate: sqlstate.clone(),
                per_role: v.per == curfew_policy::ViolationsPer::Role,
            }
        }
        Condition::Allow(_) | Condition::Deny(_) | Condition::MaxSessions(_) => {
            GatewayPlanned::NotTested {
                why: "verify does not test windows or session caps through the gateway yet (neither its window ends nor its refusals of a closed window or a full cap); this rule is tested on direct connections only".to_owned(),
            }
        }
    }
}

/// Whether a session's end is the gateway's FATAL for rule `rule` with `sqlstate`: the
/// evidence sentence if so, why not otherwise. `ended` is how the client's connection ended
/// (`None`: not within the wait), `elapsed` how long after the canary began to wait, `limit`
/// the earliest it may end.
pub fn judge_fatal(
    rule: &curfew_policy::Rule,
    sqlstate: &str,
    ended: Option<&curfew_postgres::Ended>,
    elapsed: std::time::Duration,
    limit: std::time::Duration,
) -> Result<String, String> {
    use curfew_postgres::Ended;
    let received = match ended {
        None => {
            return Err(format!(
                "The session was not ended within {:.1}s: the gateway did not end it.",
                elapsed.as_secs_f64()
            ));
        }
        Some(Ended::Closed(why)) => {
            return Err(format!(
                "The connection ended after {:.1}s without the gateway's FATAL ({why}).",
                elapsed.as_secs_f64()
            ));
        }
        Some(Ended::Error(received)) => received,
    };
    let seen = format!("The client received {}", received_text(received));
    if received.message == "terminating connection due to administrator command" {
        return Err(format!(
            "{seen}: the server's own message (the agent or an administrator ended the backend), not the gateway's FATAL."
        ));
    }
    if received.code != sqlstate {
        return Err(format!("{seen}, not the gateway's FATAL {sqlstate}."));
    }
    let names_rule = received.message.ends_with(&format!("(rule {})", rule.name))
        || rule.message.as_deref() == Some(received.message.as_str());
    if !names_rule {
        return Err(format!(
            "{seen}, whose text does not name rule \"{}\": not the gateway's (the server's own timeouts use the same SQLSTATEs).",
            rule.name
        ));
    }
    // A little slack for the two clocks' reading of the same instant.
    if elapsed + std::time::Duration::from_millis(250) < limit {
        return Err(format!(
            "{seen} after {:.1}s, before the limit ({:.1}s): ended early.",
            elapsed.as_secs_f64(),
            limit.as_secs_f64()
        ));
    }
    Ok(format!("{seen} after {:.1}s.", elapsed.as_secs_f64()))
}

/// A server message as received, for evidence: `FATAL 57P05 "…" (DETAIL: "…"; HINT: "…")`.
pub fn received_text(r: &curfew_postgres::Received) -> String {
    let mut text = format!("{} {} \"{}\"", r.severity, r.code, r.message);
    let extras: Vec<String> = [("DETAIL", &r.detail), ("HINT", &r.hint)]
        .into_iter()
        .filter_map(|(label, v)| v.as_ref().map(|v| format!("{label}: \"{v}\"")))
        .collect();
    if !extras.is_empty() {
        text.push_str(&format!(" ({})", extras.join("; ")));
    }
    text
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
