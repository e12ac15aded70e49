//! The words of a refused login: one function, so that the login trigger
//! (`curfew compile --dialect postgres --login-trigger`) and curfew's gateway say the same thing
//! for the same refusal. Pure: the caller gives every time already formatted. (Here, in the
//! policy crate, so that both can use it.)

/// What a client is shown when a rule ends its session or refuses its login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientText {
    /// The message field.
    pub message: String,
    /// The DETAIL field: curfew's own words (naming the rule) when the rule's `message`
    /// replaced them.
    pub detail: Option<String>,
}

/// The text for a client: the rule's `message` when it has one, with curfew's own words
/// (which name the rule and the reason) kept as the DETAIL, so what the client saw still
/// names the rule; else curfew's own words.
pub fn client_text(rule_message: Option<&str>, curfew_words: String) -> ClientText {
    match rule_message {
        Some(message) => ClientText {
            message: message.to_owned(),
            detail: Some(curfew_words),
        },
        None => ClientText {
            message: curfew_words,
            detail: None,
        },
    }
}

/// Which kind of window rule refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRule {
    /// `allow`: logins only inside the windows (this one is outside all of them).
    Allow,
    /// `deny`: no logins inside the windows (this one is inside one).
    Deny,
}

/// Why a login is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCause<'a> {
    /// A `lock_logins` window rule: an `allow` window closed or a `deny` window open.
    Window {
        /// The rule's name.
        rule: &'a str,
        /// Allow or deny.
        kind: WindowRule,
        /// The rule's windows as written, joined with `", "`.
        windows: &'a str,
        /// When logins open again by this rule, formatted with [`opening_time`] in the rule's
        /// zone (None: never again by itself, e.g. a one-off window that is over).
        opens: Option<&'a str>,
        /// The rule's IANA time zone.
        zone: &'a str,
    },
    /// An incident lock recorded in curfew's ledger (`curfew lock`).
    Incident {
        /// The reason given to `curfew lock`.
        reason: &'a str,
        /// When it expires, formatted with [`utc_time`] (None: until `curfew unlock`).
        until: Option<&'a str>,
    },
    /// A window lock curfew's agent recorded in its ledger for a `lock_logins` rule.
    WindowLock {
        /// The rule the lock row names.
        rule: &'a str,
        /// The reason the agent recorded.
        reason: &'a str,
    },
}

/// The message of a refused login of `role`, e.g. "logins for role alice are closed by rule
/// after-hours until 07:00 Europe/Berlin (window mon-fri 07:00-19:00)". The role and rule names
/// are shown as they are (this is a message for the person logging in, not SQL).
pub fn login_refusal_message(role: &str, cause: &RefusalCause<'_>) -> String {
    match *cause {
        RefusalCause::Window {
            rule,
            kind,
            windows,
            opens,
            zone,
        } => {
            let when = match opens {
                Some(opens) => format!("until {opens} {zone}"),
                None => "with no opening ahead".to_owned(),
            };
            let what = match (kind, windows.contains(", ")) {
                (WindowRule::Allow, false) => "window",
                (WindowRule::Allow, true) => "windows",
                (WindowRule::Deny, false) => "deny window",
                (WindowRule::Deny, true) => "deny windows",
            };
            format!("logins for role {role} are closed by rule {rule} {when} ({what} {windows})")
        }
        RefusalCause::Incident { reason, until } => {
            let when = match until {
                Some(until) => format!("until {until}"),
                None => "until it is released (curfew unlock)".to_owned(),
            };
            format!(
                "logins for role {role} are closed by an incident lock {when} (reason: {reason})"
            )
        }
        RefusalCause::WindowLock { rule, reason } => format!(
            "logins for role {role} are closed by rule {rule} (a window lock curfew's agent \
             recorded: {reason})"
        ),
    }
}

/// When logins open again, as shown in a message: `07:00` when that is on the same day in the
/// rule's zone as `now`, else `Mon 2026-11-30 07:00`. Both are civil times in the rule's zone.
/// (The login trigger writes the same with `to_char`: `HH24:MI`, `Dy YYYY-MM-DD HH24:MI`.)
pub fn opening_time(now: jiff::civil::DateTime, opens: jiff::civil::DateTime) -> String {
    if now.date() == opens.date() {
        opens.strftime("%H:%M").to_string()
    } else {
        opens.strftime("%a %Y-%m-%d %H:%M").to_string()
    }
}

/// An instant as shown in a message when no rule's zone applies (an incident lock's expiry):
/// `2026-11-28 18:00 UTC`.
pub fn utc_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allow_rule_names_itself_the_opening_and_its_window() {
        let cause = RefusalCause::Window {
            rule: "after-hours",
            kind: WindowRule::Allow,
            windows: "mon-fri 07:00-19:00",
            opens: Some("07:00"),
            zone: "Europe/Berlin",
        };
        assert_eq!(
            login_refusal_message("alice", &cause),
            "logins for role alice are closed by rule after-hours until 07:00 Europe/Berlin \
             (window mon-fri 07:00-19:00)"
        );
    }

    #[test]
    fn deny_rules_locks_and_no_opening_have_their_own_words() {
        let deny = RefusalCause::Window {
            rule: "maint",
            kind: WindowRule::Deny,
            windows: "sat 02:00-06:00, sun 02:00-06:00",
            opens: None,
            zone: "UTC",
        };
        assert_eq!(
            login_refusal_message("bob", &deny),
            "logins for role bob are closed by rule maint with no opening ahead (deny windows \
             sat 02:00-06:00, sun 02:00-06:00)"
        );
        let incident = RefusalCause::Incident {
            reason: "laptop stolen",
            until: None,
        };
        assert_eq!(
            login_refusal_message("bob", &incident),
            "logins for role bob are closed by an incident lock until it is released (curfew \
             unlock) (reason: laptop stolen)"
        );
        let lock = RefusalCause::WindowLock {
            rule: "r",
            reason: "outside the windows",
        };
        assert!(login_refusal_message("bob", &lock).contains("by rule r (a window lock"));
    }

    #[test]
    fn opening_times_show_the_date_only_when_it_is_another_day() {
        let now = jiff::civil::date(2026, 11, 27).at(20, 0, 0, 0);
        let later = jiff::civil::date(2026, 11, 27).at(23, 5, 0, 0);
        let monday = jiff::civil::date(2026, 11, 30).at(7, 0, 0, 0);
        assert_eq!(opening_time(now, later), "23:05");
        assert_eq!(opening_time(now, monday), "Mon 2026-11-30 07:00");
        let at: jiff::Timestamp = "2026-11-28T18:00:30Z"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(utc_time(at), "2026-11-28 18:00 UTC");
    }
}
