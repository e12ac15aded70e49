//! Oracle: profiles (`IDLE_TIME`, `CONNECT_TIME`, `SESSIONS_PER_USER`), `ALTER USER ...
//! PROFILE` for the users the policy names, `RESOURCE_LIMIT`, and the `sqlnet.ora` lines.
//!
//! Oracle counts `IDLE_TIME` and `CONNECT_TIME` in whole minutes: limits are rounded up, so
//! Oracle never ends a session before the policy's limit, and each rounding is noted. A user has
//! exactly one profile, so one profile is made for each combination of scopes, with the
//! strictest limit of each resource.

use curfew_policy::{Condition, Limit, Policy, Rule};

use crate::Margin;
use crate::oracle_profile::{Group, Profile};
use crate::oracle_users::{find_users_query, name_users};
use crate::scope::{Exempt, Selector, common_obstacle};
use crate::text::{comment, comment_line, shown, shown_list};

/// Above this many distinct scopes, combined profiles (2^n - 1 of them) are not generated.
pub(crate) const MAX_COMBINED_SCOPES: usize = 4;

/// `SQLNET.EXPIRE_TIME`, minutes between probes for dead clients.
pub(crate) const EXPIRE_TIME_MINUTES: u32 = 10;

/// `SQLNET.INBOUND_CONNECT_TIMEOUT`, seconds a client has to connect and authenticate.
pub(crate) const INBOUND_CONNECT_TIMEOUT_SECONDS: u32 = 60;

/// The first line of the commented `sqlnet.ora` section.
pub(crate) const SQLNET_MARKER: &str = "-- ==== sqlnet.ora ";

/// A profile resource a rule can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `IDLE_TIME`, minutes.
    IdleTime,
    /// `CONNECT_TIME`, minutes.
    ConnectTime,
    /// `SESSIONS_PER_USER`.
    SessionsPerUser,
}

impl Resource {
    const ALL: [Resource; 3] = [
        Resource::IdleTime,
        Resource::ConnectTime,
        Resource::SessionsPerUser,
    ];

    fn index(self) -> usize {
        match self {
            Resource::IdleTime => 0,
            Resource::ConnectTime => 1,
            Resource::SessionsPerUser => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Resource::IdleTime => "IDLE_TIME",
            Resource::ConnectTime => "CONNECT_TIME",
            Resource::SessionsPerUser => "SESSIONS_PER_USER",
        }
    }
}

/// What one rule becomes in Oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// A profile limit.
    Native {
        /// Which resource.
        resource: Resource,
        /// Minutes (rounded up) or sessions.
        amount: u64,
        /// What was rounded, if anything: `"1m30s rounded up to 2 minutes"`.
        rounding: Option<String>,
    },
    /// No native equivalent; why.
    Unmapped(String),
}

/// A limit in whole minutes, rounded up, and whether that was exact.
pub(crate) fn minutes_up(limit: std::time::Duration) -> (u64, bool) {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    (ms.div_ceil(60_000), ms % 60_000 == 0)
}

/// Decide what a rule becomes; time limits go `margin` above the rule's (none by default).
pub(crate) fn map_rule(rule: &Rule, margin: Margin) -> Mapping {
    if let Some(why) = common_obstacle(rule, "user") {
        return Mapping::Unmapped(why);
    }
    if !rule.scope.databases.is_empty() {
        return Mapping::Unmapped(
            "it is scoped by database; a profile limits a user in the whole database (PDB) it is \
             created in, so it would have to be created by hand in those databases only."
                .to_owned(),
        );
    }
    let minutes = |resource: Resource, limit: Limit| {
        let extra = margin.above_for_oracle(limit.to_std());
        let (amount, exact) = minutes_up(limit.to_std() + extra);
        let plus = if extra.is_zero() {
            String::new()
        } else {
            let ms = u32::try_from(extra.as_millis()).unwrap_or(u32::MAX);
            let shown = Limit::from_millis(ms).map_or_else(|| format!("{ms}ms"), |l| l.to_string());
            format!(" plus a margin of {shown}")
        };
        Mapping::Native {
            resource,
            amount,
            rounding: (!exact || !plus.is_empty()).then(|| {
                format!(
                    "{limit}{plus}{} {amount} minute{}",
                    if exact { " is" } else { " rounded up to" },
                    if amount == 1 { "" } else { "s" }
                )
            }),
        }
    };
    match &rule.condition {
        Condition::Idle(limit) => minutes(Resource::IdleTime, *limit),
        Condition::Lifetime(limit) => minutes(Resource::ConnectTime, *limit),
        Condition::MaxSessions(n) => Mapping::Native {
            resource: Resource::SessionsPerUser,
            amount: u64::from(*n),
            rounding: None,
        },
        Condition::IdleInTransaction(_) => Mapping::Unmapped(
            "Oracle has no limit on time spent idle inside a transaction: IDLE_TIME counts all \
             idle time, in a transaction or not (it is what idle rules map to), and Resource \
             Manager's MAX_IDLE_BLOCKER_TIME only covers idle sessions that block others."
                .to_owned(),
        ),
        Condition::Allow(_) | Condition::Deny(_) => Mapping::Unmapped(
            "profiles have no time-of-day or date limits (a logon trigger or a scheduler job \
             could approximate the windows; none is generated)."
                .to_owned(),
        ),
        // Refused earlier by `common_obstacle`; kept for the match.
        Condition::Violations(_) => Mapping::Unmapped(
            "no setting counts errors by SQLSTATE (the curfew gateway counts them for its own \
             sessions)."
                .to_owned(),
        ),
    }
}

/// Groups in order of first appearance, from the native mappings.
fn groups(mappings: &[(&Rule, Mapping)]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (rule, mapping) in mappings {
        let Mapping::Native {
            resource,
            amount,
            rounding,
        } = mapping
        else {
            continue;
        };
        let selector = Selector::of(&rule.scope);
        let index = match groups.iter().position(|g| g.selector == selector) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    selector,
                    limits: [None, None, None],
                });
                groups.len() - 1
            }
        };
        if let Some(group) = groups.get_mut(index) {
            let slot = &mut group.limits[resource.index()];
            if slot.as_ref().is_none_or(|(current, _, _)| amount < current) {
                *slot = Some((*amount, rule.name.clone(), rounding.clone()));
            }
        }
    }
    groups
}

/// One profile per group and, up to [`MAX_COMBINED_SCOPES`] groups, one per combination.
pub(crate) fn profiles(groups: &[Group]) -> Vec<Profile> {
    let n = groups.len();
    let mut sets: Vec<Vec<usize>> = if n <= MAX_COMBINED_SCOPES {
        (1u32..(1 << n))
            .map(|bits| (0..n).filter(|i| bits & (1 << i) != 0).collect())
            .collect()
    } else {
        (0..n).map(|i| vec![i]).collect()
    };
    sets.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    sets.into_iter()
        .map(|set| {
            let mut limits = [None, None, None];
            for r in Resource::ALL {
                limits[r.index()] = set
                    .iter()
                    .filter_map(|g| Some(groups.get(*g)?.limits[r.index()].as_ref()?.0))
                    .min();
            }
            Profile {
                groups: set,
                limits,
            }
        })
        .collect()
}

/// The Oracle script for a policy.
pub(crate) fn compile(policy: &Policy, source: &str, sha256: &str, margin: Margin) -> String {
    let exempt = Exempt::of(policy);
    let mappings: Vec<(&Rule, Mapping)> = policy
        .rules
        .iter()
        .map(|r| (r, map_rule(r, margin)))
        .collect();
    let groups = groups(&mappings);
    let profiles = profiles(&groups);

    let mut out = String::new();
    header(&mut out, source, sha256, margin);
    exemptions(&mut out, &exempt);
    comment_line(&mut out, "Rules:");
    for (rule, mapping) in &mappings {
        summarize(&mut out, rule, mapping);
    }
    comment_line(&mut out, "");
    out.push_str("SET DEFINE OFF\n");
    if groups.is_empty() {
        comment_line(
            &mut out,
            "No profile: no rule of this policy can be expressed as a profile limit.",
        );
    } else {
        scopes(&mut out, &groups, &exempt);
        write_profiles(&mut out, &groups, &profiles);
        out.push('\n');
        comment(
            &mut out,
            "-- ",
            "-- ",
            "Profile resource limits are enforced only while RESOURCE_LIMIT is TRUE (the default \
             in current releases; set here explicitly). SCOPE = BOTH needs a server parameter \
             file.",
        );
        out.push_str("ALTER SYSTEM SET RESOURCE_LIMIT = TRUE SCOPE = BOTH;\n");
        name_users(&mut out, &groups, &profiles, &exempt);
    }
    sqlnet(&mut out);
    without_bare_hyphens(&out)
}

/// Empty `--` lines become empty lines: SQL*Plus may read a line that ends with a hyphen as
/// continued on the next.
fn without_bare_hyphens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line != "--" {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Whether the limits are above the policy's, and why not by default.
fn margin_paragraph(margin: Margin) -> String {
    match margin {
        Margin::Fixed(m) if !m.is_zero() => format!(
            "Margin: each time limit is set {}s above the policy's (curfew compile --margin), then \
             rounded up to whole minutes, so that whatever ends sessions first keeps its evidence.",
            m.as_secs()
        ),
        _ => "Margin: none. No curfew agent ends Oracle sessions, so the profiles are the \
              enforcement and keep the policy's limits (curfew compile --margin sets one, for \
              when something else ends sessions first and should keep the evidence)."
            .to_owned(),
    }
}

fn header(out: &mut String, source: &str, sha256: &str, margin: Margin) {
    comment_line(out, "curfew compile --dialect oracle");
    comment_line(out, &format!("Policy: {source}"));
    comment_line(out, &format!("SHA-256: {sha256}"));
    comment_line(out, "");
    for paragraph in [
        "Oracle Database profiles and sqlnet.ora settings for the rules of this policy that \
         Oracle can express itself. curfew's agent watches PostgreSQL only: on Oracle these \
         settings are the enforcement, and the rules they cannot express (listed below) need \
         another control.",
        "This script was checked for syntax by curfew's own recognizer only; no Oracle server \
         was available to run it.",
        "Run it in SQL*Plus or SQLcl, connected to the pluggable database whose users it \
         limits, as a user with CREATE PROFILE, ALTER PROFILE, ALTER USER and ALTER SYSTEM. The \
         profiles are local ones (in CDB$ROOT, a common profile's name must start with C##).",
        "Names: the policy's role names are used as Oracle user and role names exactly as \
         written, in double quotes. \"appuser\" is not APPUSER, the name Oracle gives a user \
         created as CREATE USER appuser: write the names in the policy as Oracle stores them.",
        &margin_paragraph(margin),
        "Minutes: IDLE_TIME and CONNECT_TIME count whole minutes. Every limit is rounded UP to \
         the next whole minute, so Oracle never ends a session before the policy's limit (90s \
         becomes 2 minutes); each rounding is noted below.",
        "A user has exactly one profile. So that a user covered by several scopes gets all \
         their limits, there is a profile for each combination of scopes, and when several \
         rules limit the same resource the strictest (smallest) wins. Limits no rule sets are \
         DEFAULT (taken from the DEFAULT profile). Giving a user one of these profiles replaces \
         its current profile, password limits included (they become the DEFAULT profile's).",
        "Applying it again: CREATE PROFILE fails with ORA-02379 when the profile exists; the \
         ALTER PROFILE after it sets the same limits either way (so do not run it under \
         WHENEVER SQLERROR EXIT).",
    ] {
        comment(out, "-- ", "-- ", paragraph);
        comment_line(out, "");
    }
}

fn exemptions(out: &mut String, exempt: &Exempt) {
    comment_line(out, "Exemptions:");
    let mut lines = Vec::new();
    if !exempt.roles.is_empty() {
        lines.push(format!(
            "[exempt] roles {}: never given these profiles (left out of the queries and \
             statements below).",
            shown_list(exempt.roles.iter().map(String::as_str))
        ));
    }
    if !exempt.member_of.is_empty() {
        lines.push(format!(
            "[exempt] member_of {}: users granted these roles are never given these profiles \
             (left out of the queries below).",
            shown_list(exempt.member_of.iter().map(String::as_str))
        ));
    }
    if !exempt.databases.is_empty() {
        lines.push(format!(
            "[exempt] databases {}: do not run this script in these databases.",
            shown_list(exempt.databases.iter().map(String::as_str))
        ));
    }
    if !exempt.applications.is_empty() {
        lines.push(format!(
            "[exempt] applications {}: cannot be expressed (a profile cannot depend on the \
             client program); the users' sessions are limited from every program.",
            shown_list(exempt.applications.iter().map(String::as_str))
        ));
    }
    if !exempt.addresses.is_empty() {
        lines.push(format!(
            "[exempt] addresses {}: cannot be expressed (a profile cannot depend on the client \
             address); the users' sessions are limited from every address.",
            shown_list(exempt.addresses.iter().map(String::as_str))
        ));
    }
    for entry in &exempt.combined {
        lines.push(format!(
            "{entry}: cannot be expressed (a profile cannot depend on a session's other keys); \
             these sessions are limited by their user's profile."
        ));
    }
    if lines.is_empty() {
        lines.push("none.".to_owned());
    }
    for line in lines {
        comment(out, "--   ", "--     ", &line);
    }
    comment_line(out, "");
}

fn summarize(out: &mut String, rule: &Rule, mapping: &Mapping) {
    let head = format!(
        "{} ({}):",
        shown(&rule.name),
        curfew_policy::explain::summary(rule)
    );
    let text = match mapping {
        Mapping::Unmapped(why) => format!("{head} not expressible natively: {why}"),
        Mapping::Native {
            resource,
            amount,
            rounding,
        } => {
            let mut text = format!("{head} {} {amount}", resource.name());
            match rounding {
                Some(r) => text.push_str(&format!(" ({r})")),
                None if *resource != Resource::SessionsPerUser => text.push_str(" (exact)"),
                None => {}
            }
            text.push_str(&format!(
                " for {}.",
                Selector::of(&rule.scope).describe_users()
            ));
            text.push_str(match resource {
                Resource::IdleTime => {
                    " Oracle also counts time idle inside an open transaction, which the rule \
                     does not; a sniped session's client learns of it at its next call."
                }
                Resource::ConnectTime => {
                    " Oracle rolls back the current transaction and ends the session at its next \
                     call after the limit."
                }
                Resource::SessionsPerUser => {
                    " Unlike the rule, Oracle refuses a session beyond the limit at login \
                     (ORA-02391) instead of ending the newest."
                }
            });
            if let Some(warn) = rule.warn {
                text.push_str(&format!(
                    " The rule's warn lead ({warn}) has no native equivalent; curfew's agent records \
                     a session_warned audit record then (the session's user is not told)."
                ));
            }
            text
        }
    };
    comment(out, "--   ", "--     ", &text);
}

fn scopes(out: &mut String, groups: &[Group], exempt: &Exempt) {
    out.push('\n');
    comment_line(out, "Scopes, and the query that lists the users of each:");
    for (i, group) in groups.iter().enumerate() {
        comment(
            out,
            "--   ",
            "--     ",
            &format!("Scope {}: {}.", i + 1, group.selector.describe_users()),
        );
        comment(
            out,
            "--     ",
            "--       ",
            &find_users_query(&group.selector, exempt),
        );
    }
}

fn write_profiles(out: &mut String, groups: &[Group], profiles: &[Profile]) {
    if groups.len() > MAX_COMBINED_SCOPES {
        out.push('\n');
        comment(
            out,
            "-- ",
            "-- ",
            &format!(
                "There are {} scopes, more than the {MAX_COMBINED_SCOPES} for which a profile is \
                 made for each combination: a user in several scopes needs a profile combining \
                 their strictest limits, made by hand.",
                groups.len()
            ),
        );
    }
    for profile in profiles {
        out.push('\n');
        let scopes: Vec<String> = profile.groups.iter().map(|g| (g + 1).to_string()).collect();
        comment(
            out,
            "-- ",
            "--   ",
            &format!(
                "Profile {} for users in scope{} {}{}.",
                shown(&profile.name()),
                if scopes.len() == 1 { "" } else { "s" },
                scopes.join(" and "),
                if scopes.len() < groups.len() && groups.len() <= MAX_COMBINED_SCOPES {
                    " only"
                } else {
                    ""
                }
            ),
        );
        for r in Resource::ALL {
            let source = profile
                .groups
                .iter()
                .filter_map(|g| groups.get(*g)?.limits[r.index()].as_ref())
                .find(|(amount, _, _)| Some(*amount) == profile.limits[r.index()]);
            if let Some((amount, rule, rounding)) = source {
                let rounding = rounding
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                comment(
                    out,
                    "--   ",
                    "--     ",
                    &format!("{} {amount}: rule {}{rounding}.", r.name(), shown(rule)),
                );
            }
        }
        let limits: Vec<String> = Resource::ALL
            .iter()
            .map(|r| match profile.limits[r.index()] {
                Some(amount) => format!("  {} {amount}", r.name()),
                None => format!("  {} DEFAULT", r.name()),
            })
            .collect();
        for verb in ["CREATE", "ALTER"] {
            out.push_str(&format!("{verb} PROFILE \"{}\" LIMIT\n", profile.name()));
            out.push_str(&limits.join("\n"));
            out.push_str(";\n");
        }
    }
}

fn sqlnet(out: &mut String) {
    out.push('\n');
    out.push_str(SQLNET_MARKER);
    out.push_str(&"=".repeat(80));
    out.push('\n');
    for paragraph in [
        "Not SQL: these lines go in the database server's sqlnet.ora ($TNS_ADMIN, or \
         $ORACLE_HOME/network/admin), without the leading \"-- \". New connections use them.",
        &format!(
            "SQLNET.EXPIRE_TIME is in minutes: every {EXPIRE_TIME_MINUTES} minutes the server \
             probes each connection and ends the session of a client that has gone (crashed, \
             unplugged) instead of keeping it until the operating system gives up on the \
             connection. No rule sets it: {EXPIRE_TIME_MINUTES} minutes is a common choice; it \
             does not end idle sessions of clients that are still there."
        ),
        &format!(
            "SQLNET.INBOUND_CONNECT_TIMEOUT is in seconds, not minutes: a client that has not \
             connected and authenticated within {INBOUND_CONNECT_TIMEOUT_SECONDS} seconds is \
             refused (ORA-03136). No rule sets it: {INBOUND_CONNECT_TIMEOUT_SECONDS} seconds \
             matches PostgreSQL's authentication_timeout default."
        ),
    ] {
        comment(out, "-- ", "-- ", paragraph);
    }
    comment_line(out, "");
    comment_line(out, &format!("SQLNET.EXPIRE_TIME = {EXPIRE_TIME_MINUTES}"));
    comment_line(
        out,
        &format!("SQLNET.INBOUND_CONNECT_TIMEOUT = {INBOUND_CONNECT_TIMEOUT_SECONDS}"),
    );
}

#[cfg(test)]
#[path = "oracle_tests.rs"]
mod tests;
