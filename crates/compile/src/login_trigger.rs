//! `curfew compile --dialect postgres --login-trigger`: a PostgreSQL 17+ login event trigger
//! that refuses, with FATAL 28000 and the reason, the logins curfew's policy does not allow now
//! (a `lock_logins` rule's closed `allow` window or open `deny` window, a lock in curfew's
//! ledger). The policy goes into the SQL as data (rules, windows, exemptions, the message
//! templates); the fixed code is in [`crate::login_trigger_sql`].
//!
//! Every value is a literal built by [`literal`] and every body is dollar-quoted with a tag that
//! occurs in none of them ([`dollar_tag`]), so no name in the policy can end a string or a body.

use curfew_policy::{Action, Condition, ExemptKeys, Glob, Policy, Rule, WindowKind};

use crate::login_trigger_sql::{INSTANCES_BODY, LIKE_BODY, MATCHES_BODY, REFUSAL_BODY};
use crate::postgres_sql::{dollar_tag, text_array};
use crate::scope::agent_roles;
use crate::text::{comment, comment_line, comment_safe, literal, shown};
use curfew_policy::login_refusal::{RefusalCause, WindowRule, login_refusal_message};

/// What the login trigger does when it cannot decide (the ledger is missing or unreadable, a
/// zone the server does not know): there is no default, the operator chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Let the login proceed (a WARNING is logged): availability first; the agent's NOLOGIN
    /// lock still holds underneath.
    Open,
    /// Refuse the login (FATAL 28000, saying the check failed): the policy first; superusers
    /// and the break-glass role still pass.
    Closed,
}

/// The options of the login trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginTriggerOptions {
    /// A role that always logs in (besides superusers, who always do).
    pub break_glass: Option<String>,
    /// What happens when the trigger itself fails.
    pub on_error: OnError,
}

/// The event trigger's name.
const TRIGGER: &str = "curfew_login";

/// Where a dynamic part goes in a message template (`format()`'s `%N$s`). The character cannot
/// come from a policy (comment_safe escapes control characters out of names).
const SLOT: char = '\u{1}';

/// The login trigger's script for `policy`. `source` and `sha256` name the policy file.
pub fn login_trigger(
    policy: &Policy,
    source: &str,
    sha256: &str,
    options: &LoginTriggerOptions,
) -> String {
    let rules: Vec<&Rule> = policy.rules.iter().filter(|r| enforced(r)).collect();
    let mut out = String::new();
    header(&mut out, source, sha256, options);
    comment_line(&mut out, "Rules that lock logins (lock_logins = true):");
    let mut compiled = Vec::new();
    for rule in &rules {
        match zone_name(rule) {
            Some(zone) => {
                comment(
                    &mut out,
                    "--   ",
                    "--     ",
                    &format!(
                        "{} ({}), in {zone}.",
                        shown(&rule.name),
                        curfew_policy::explain::summary(rule)
                    ),
                );
                compiled.push((*rule, zone));
            }
            None => comment(
                &mut out,
                "--   ",
                "--     ",
                &format!(
                    "{}: NOT COMPILED: its time zone has no IANA name the server could know; \
                     give the rule a `timezone`.",
                    shown(&rule.name)
                ),
            ),
        }
    }
    if rules.is_empty() {
        comment_line(
            &mut out,
            "  none: only ledger locks (curfew lock, the agent's window locks) refuse logins.",
        );
    }
    comment_line(&mut out, "");

    let bodies = Bodies::of(policy, &compiled, options);
    let all = bodies.all();
    let tag = dollar_tag(&all);
    out.push_str(&script(&bodies, &tag, options.on_error));
    out
}

/// A rule the trigger enforces: `lock_logins`, terminating, a window condition.
fn enforced(rule: &Rule) -> bool {
    rule.lock_logins
        && rule.action == Action::Terminate
        && matches!(rule.condition, Condition::Allow(_) | Condition::Deny(_))
}

fn zone_name(rule: &Rule) -> Option<String> {
    let name = rule.condition.schedule()?.zone().iana_name()?;
    (!name.contains('\0')).then(|| name.to_owned())
}

/// A message template for `format()`: the message with [`SLOT`]`N` turned into `%N$s` and
/// every other `%` doubled.
fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push_str("%%"),
            SLOT => {
                let n = chars.next().unwrap_or('1');
                out.push_str(&format!("%{n}$s"));
            }
            c => out.push(c),
        }
    }
    out
}

fn slot(n: u8) -> String {
    format!("{SLOT}{n}")
}

/// The bodies of the data functions: policy text, as literals.
struct Bodies {
    rules: String,
    windows: String,
    exemptions: String,
    messages: String,
    check: String,
}

impl Bodies {
    fn of(policy: &Policy, rules: &[(&Rule, String)], options: &LoginTriggerOptions) -> Bodies {
        let role = slot(1);
        let opens = slot(2);
        let mut rule_rows = vec![
            "(NULL::text, NULL::text, NULL::text, NULL::text[], NULL::text[], NULL::text, \
             NULL::text)"
                .to_owned(),
        ];
        let mut window_rows = vec![
            "(NULL::text, NULL::int, NULL::int, NULL::int, NULL::timestamp, NULL::timestamp)"
                .to_owned(),
        ];
        for (rule, zone) in rules {
            let Some(schedule) = rule.condition.schedule() else {
                continue;
            };
            let kind = match rule.condition {
                Condition::Deny(_) => WindowRule::Deny,
                _ => WindowRule::Allow,
            };
            // Shown on one line, as in comments.
            let name = comment_safe(&rule.name);
            let texts: Vec<String> = schedule
                .windows()
                .iter()
                .map(|w| comment_safe(&w.text))
                .collect();
            let texts = texts.join(", ");
            let message = |opens: Option<&str>| {
                template(&login_refusal_message(
                    &role,
                    &RefusalCause::Window {
                        rule: &name,
                        kind,
                        windows: &texts,
                        opens,
                        zone,
                    },
                ))
            };
            // A rule's `message` replaces curfew's words, which follow after chr(31) and
            // become the DETAIL (the check splits them), so the refusal still names the rule.
            // The rule's text has no control character (the policy refuses them), so chr(31)
            // cannot come from it.
            let with_banner = |own: String| match &rule.message {
                Some(banner) => format!(
                    "{} || chr(31) || {}",
                    literal(&template(banner)),
                    literal(&own)
                ),
                None => literal(&own),
            };
            let opens_message = with_banner(message(Some(&opens)));
            let closed_message = with_banner(message(None));
            rule_rows.push(format!(
                "({}, {}, {}, {}, {}, {}, {})",
                literal(&rule.name),
                literal(if kind == WindowRule::Deny {
                    "deny"
                } else {
                    "allow"
                }),
                literal(zone),
                patterns(&rule.scope.roles),
                patterns(&rule.scope.member_of),
                opens_message,
                closed_message,
            ));
            for window in schedule.windows() {
                window_rows.push(match &window.kind {
                    WindowKind::Weekly { days, from, to } => {
                        let bits: u32 = (0..7u8)
                            .filter(|d| days.contains(*d))
                            .map(|d| 1u32 << d)
                            .sum();
                        format!(
                            "({}, {bits}, {from}, {to}, NULL, NULL)",
                            literal(&rule.name)
                        )
                    }
                    WindowKind::Range { start, end } => format!(
                        "({}, NULL, NULL, NULL, {}, {})",
                        literal(&rule.name),
                        literal(&start.strftime("%Y-%m-%d %H:%M:%S").to_string()),
                        literal(&end.strftime("%Y-%m-%d %H:%M:%S").to_string()),
                    ),
                });
            }
        }
        let mut exemption_rows = vec!["(NULL::text[], NULL::text[], NULL::boolean)".to_owned()];
        for entry in &policy.exempt.entries {
            if ExemptKeys::of(&entry.scope).role_only() {
                exemption_rows.push(format!(
                    "({}, {}, true)",
                    patterns(&entry.scope.roles),
                    patterns(&entry.scope.member_of)
                ));
            }
        }
        let reason = slot(2);
        let until = slot(3);
        let rule = slot(4);
        let incident = |until: Option<&str>| {
            template(&login_refusal_message(
                &role,
                &RefusalCause::Incident {
                    reason: &reason,
                    until,
                },
            ))
        };
        let window_lock = template(&login_refusal_message(
            &role,
            &RefusalCause::WindowLock {
                rule: &rule,
                reason: &reason,
            },
        ))
        // The ledger row gives reason then rule: %2$s, %3$s.
        .replace("%4$s", "%3$s");
        let messages = format!(
            "\n  SELECT CASE login_message.kind\n    WHEN 'incident' THEN {}\n    WHEN 'incident_until' THEN {}\n    \
             WHEN 'window_lock' THEN {}\n  END\n",
            literal(&incident(None)),
            literal(&incident(Some(&format!("{until} UTC")))),
            literal(&window_lock),
        );
        Bodies {
            rules: values(
                &rule_rows,
                "rule, kind, zone, roles, member_of, opens_message, closed_message",
                "rule",
            ),
            windows: values(
                &window_rows,
                "rule, days, from_min, to_min, range_start, range_end",
                "rule",
            ),
            exemptions: values(&exemption_rows, "roles, member_of, given", "given"),
            messages,
            check: check_body(policy, options),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            LIKE_BODY,
            MATCHES_BODY,
            INSTANCES_BODY,
            REFUSAL_BODY,
            &self.rules,
            &self.windows,
            &self.exemptions,
            &self.messages,
            &self.check,
        ]
    }
}

/// `ARRAY['a', 'b']::text[]`, or NULL for no pattern (the key is absent: no restriction).
fn patterns(globs: &[Glob]) -> String {
    if globs.is_empty() {
        return "NULL".to_owned();
    }
    text_array(
        &globs
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
}

/// A VALUES list whose first row (all NULL, typed) only gives the column types.
fn values(rows: &[String], columns: &str, key: &str) -> String {
    format!(
        "\n  SELECT * FROM (VALUES\n    {}\n  ) v({columns})\n  WHERE v.{key} IS NOT NULL\n",
        rows.join(",\n    ")
    )
}

/// The event trigger function's body: who always passes, then the decision, and the
/// operator's choice when the decision fails.
fn check_body(policy: &Policy, options: &LoginTriggerOptions) -> String {
    let break_glass = match &options.break_glass {
        Some(role) => format!(
            "  -- The break-glass role (--break-glass).\n  IF who = {} THEN\n    RETURN;\n  END IF;\n",
            literal(role)
        ),
        None => String::new(),
    };
    let on_error = match options.on_error {
        OnError::Open => {
            "    RAISE WARNING 'curfew: the login check failed (% %); the login proceeds (--on-error open)',\n      \
             SQLSTATE, SQLERRM;\n    RETURN;\n"
        }
        OnError::Closed => {
            "    RAISE EXCEPTION USING ERRCODE = '28000',\n      \
             MESSAGE = format('logins for role %s are closed: curfew''s login check failed (%s %s) and \
             fails closed (--on-error closed)', who, SQLSTATE, SQLERRM);\n"
        }
    };
    format!(
        "
DECLARE
  who name := session_user;
  refusal text;
BEGIN
  -- Superusers always pass: a superuser can switch event triggers off anyway
  -- (-c event_triggers=false), and is who recovers from a trigger that refuses everyone.
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = who AND rolsuper) THEN
    RETURN;
  END IF;
{break_glass}  -- curfew's own roles (the targets' users): curfew never locks them out.
  IF who = ANY ({agents}) THEN
    RETURN;
  END IF;
  BEGIN
    refusal := curfew.login_refusal(who);
  EXCEPTION WHEN OTHERS THEN
{on_error}  END;
  -- A rule's own message, then curfew's words naming the rule (the DETAIL), after chr(31).
  IF strpos(refusal, chr(31)) > 0 THEN
    RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = split_part(refusal, chr(31), 1),
      DETAIL = split_part(refusal, chr(31), 2);
  END IF;
  IF refusal IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = refusal;
  END IF;
END
",
        agents = text_array(&agent_roles(policy)),
    )
}

fn header(out: &mut String, source: &str, sha256: &str, options: &LoginTriggerOptions) {
    comment_line(out, "curfew compile --dialect postgres --login-trigger");
    comment_line(out, &format!("Policy: {source}"));
    comment_line(out, &format!("SHA-256: {sha256}"));
    comment_line(out, "");
    let break_glass = match &options.break_glass {
        Some(role) => format!(
            "Always pass: superusers (they can switch event triggers off anyway, and one is \
             needed to recover), the break-glass role {} (--break-glass), curfew's own roles \
             and the roles [exempt] exempts by roles/member_of alone (an incident lock refuses \
             even those, as curfew's agent does).",
            shown(role)
        ),
        None => "Always pass: superusers (they can switch event triggers off anyway, and one is \
                 needed to recover; --break-glass names one more role that always passes), \
                 curfew's own roles and the roles [exempt] exempts by roles/member_of alone (an \
                 incident lock refuses even those, as curfew's agent does)."
            .to_owned(),
    };
    let on_error = match options.on_error {
        OnError::Open => {
            "When the check itself fails (no ledger, an unreadable ledger, a zone \
                          the server does not know): the login PROCEEDS with a WARNING in the \
                          server log (--on-error open)."
        }
        OnError::Closed => {
            "When the check itself fails (no ledger, an unreadable ledger, a zone \
                            the server does not know): the login is REFUSED with FATAL 28000 \
                            saying the check failed (--on-error closed); superusers and the \
                            break-glass role still pass."
        }
    };
    for paragraph in [
        "A login event trigger (PostgreSQL 17 and later) that refuses, with FATAL 28000 and the \
         reason, the logins this policy does not allow now: a lock_logins rule's allow window \
         closed or deny window open for the role (roles, member_of), or a lock recorded in \
         curfew's ledger (curfew lock; the agent's window locks). Windows are evaluated with the \
         server's clock in each rule's time zone, never the session's TimeZone.",
        "What it does not do: warn before a window closes, or end sessions already connected: \
         that stays curfew's agent's (or gateway's) work. The NOLOGIN the agent sets on locked \
         roles stays the hard lock underneath: PostgreSQL refuses a NOLOGIN role before this \
         trigger runs (\"role ... is not permitted to log in\"), so the trigger gives the reason \
         in the time before the agent acts and while no agent runs.",
        &break_glass,
        on_error,
        "Apply as a superuser in EVERY database users connect to (an event trigger belongs to \
         one database; its rules and windows are readable in pg_proc by any role): psql -v \
         ON_ERROR_STOP=1 -d DATABASE -f FILE. It runs in one transaction, \
         refuses a server below PostgreSQL 17, and replaces an earlier version of itself. The \
         ledger (curfew init) should exist in the same database.",
        "RECOVERY when it refuses logins it should not: connect as a superuser with event \
         triggers off, then drop it: PGOPTIONS='-c event_triggers=false' psql -U postgres -d \
         DATABASE -c 'DROP EVENT TRIGGER curfew_login'. (Single-user mode also runs without \
         event triggers.)",
    ] {
        comment(out, "-- ", "-- ", paragraph);
        comment_line(out, "");
    }
}

fn script(bodies: &Bodies, tag: &str, on_error: OnError) -> String {
    let choice = match on_error {
        OnError::Open => "open",
        OnError::Closed => "closed",
    };
    let path = "SET search_path = pg_catalog, pg_temp";
    let mut out = String::new();
    out.push_str("BEGIN;\n");
    out.push_str(
        "-- Quotes in the literals below are doubled; backslashes are plain characters.\n",
    );
    out.push_str("SET LOCAL standard_conforming_strings = on;\n\n");
    out.push_str("-- Login event triggers exist from PostgreSQL 17 on.\n");
    out.push_str(&format!(
        "DO {tag}\nBEGIN\n  IF current_setting('server_version_num')::int < 170000 THEN\n    \
         RAISE EXCEPTION 'curfew: the login trigger needs PostgreSQL 17 or later (login event \
         triggers); this server runs %', current_setting('server_version');\n  END IF;\n  \
         IF to_regclass('curfew.lock') IS NULL THEN\n    RAISE WARNING 'curfew: no ledger \
         (curfew.lock) in database %: run curfew init; until then every check fails and \
         --on-error {choice} applies', current_database();\n  END IF;\nEND\n{tag};\n\n"
    ));
    out.push_str("CREATE SCHEMA IF NOT EXISTS curfew;\n");
    out.push_str(&format!("DROP EVENT TRIGGER IF EXISTS {TRIGGER};\n\n"));
    let functions: [(&str, &str, &str, &str); 8] = [
        (
            "login_like(pattern text)",
            "text",
            "sql IMMUTABLE",
            LIKE_BODY,
        ),
        (
            "login_matches(subject text, patterns text[])",
            "boolean",
            "sql STABLE",
            MATCHES_BODY,
        ),
        (
            "login_rules()",
            "TABLE(rule text, kind text, zone text, roles text[], member_of text[], \
             opens_message text, closed_message text)",
            "sql IMMUTABLE",
            &bodies.rules,
        ),
        (
            "login_windows()",
            "TABLE(rule text, days int, from_min int, to_min int, range_start timestamp, \
             range_end timestamp)",
            "sql IMMUTABLE",
            &bodies.windows,
        ),
        (
            "login_exemptions()",
            "TABLE(roles text[], member_of text[], given boolean)",
            "sql IMMUTABLE",
            &bodies.exemptions,
        ),
        (
            "login_message(kind text)",
            "text",
            "sql IMMUTABLE",
            &bodies.messages,
        ),
        (
            "login_instances(rule_name text, zone_name text, at_instant timestamptz)",
            "TABLE(opens timestamptz, closes timestamptz)",
            "sql STABLE",
            INSTANCES_BODY,
        ),
        (
            "login_refusal(who name)",
            "text",
            "plpgsql STABLE",
            REFUSAL_BODY,
        ),
    ];
    for (signature, returns, language, body) in functions {
        out.push_str(&format!(
            "CREATE OR REPLACE FUNCTION curfew.{signature} RETURNS {returns}\n\
             LANGUAGE {language} {path} AS {tag}{body}{tag};\n\
             REVOKE ALL ON FUNCTION curfew.{signature} FROM PUBLIC;\n\n"
        ));
    }
    out.push_str(
        "-- The trigger's function runs as its owner (the role running this script), so that\n\
         -- it can read the ledger whoever logs in.\n",
    );
    out.push_str(&format!(
        "CREATE OR REPLACE FUNCTION curfew.login_check() RETURNS event_trigger\n\
         LANGUAGE plpgsql SECURITY DEFINER {path} AS {tag}{}{tag};\n\
         REVOKE ALL ON FUNCTION curfew.login_check() FROM PUBLIC;\n\n",
        bodies.check
    ));
    out.push_str(&format!(
        "CREATE EVENT TRIGGER {TRIGGER} ON login EXECUTE FUNCTION curfew.login_check();\n\n"
    ));
    out.push_str("COMMIT;\n");
    out
}

#[cfg(test)]
#[path = "login_trigger_tests.rs"]
mod tests;
