//! The requirement ids a rule may name in `controls`: the ones curfew implements, so that an id
//! quoted in a security plan is one an assessor can look up, and a typo (`AC-21`) is caught.
//! An organization's own ids are written with the `local:` prefix and are not checked.

/// The prefix of an organization's own requirement id (`local:SEC-POL-7.2`), taken as written.
pub const LOCAL_PREFIX: &str = "local:";

/// One known requirement id and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownControl {
    /// The id as a policy writes it.
    pub id: &'static str,
    /// The document and requirement it names.
    pub title: &'static str,
}

/// Every id `controls` accepts besides `local:` ones. Sources: NIST SP 800-171 Rev. 2 3.1.11
/// (CMMC level 2 practice AC.L2-3.1.11, derived from SP 800-53 AC-12), SP 800-53 Rev. 5 AC-12
/// (not its enhancements: see [`NOT_IMPLEMENTED`]), the DISA STIG findings for session termination of PostgreSQL (Crunchy
/// Data PostgreSQL 16), Oracle 12c, MySQL 8.0, MariaDB Enterprise 10.x and the Database SRG, and
/// their CCI.
pub const KNOWN_CONTROLS: &[KnownControl] = &[
    KnownControl {
        id: "NIST-800-171-3.1.11",
        title: "NIST SP 800-171 Rev. 2 3.1.11: terminate (automatically) a user session after a defined condition",
    },
    KnownControl {
        id: "AC.L2-3.1.11",
        title: "CMMC level 2 AC.L2-3.1.11: session termination",
    },
    KnownControl {
        id: "AC-12",
        title: "NIST SP 800-53 AC-12: session termination",
    },
    KnownControl {
        id: "NIST-800-53-AC-12",
        title: "NIST SP 800-53 AC-12: session termination",
    },
    KnownControl {
        id: "V-261910",
        title: "DISA STIG V-261910 (Crunchy Data PostgreSQL 16): terminate a user session after organization-defined conditions",
    },
    KnownControl {
        id: "V-220295",
        title: "DISA STIG V-220295 (Oracle Database 12c): terminate user sessions on logoff or policy-defined events",
    },
    KnownControl {
        id: "V-235185",
        title: "DISA STIG V-235185 (Oracle MySQL 8.0): terminate a user session after organization-defined conditions",
    },
    KnownControl {
        id: "V-253717",
        title: "DISA STIG V-253717 (MariaDB Enterprise 10.x): terminate a user's session after organization-defined conditions",
    },
    KnownControl {
        id: "V-206580",
        title: "DISA Database SRG V-206580: terminate a user session after organization-defined conditions",
    },
    KnownControl {
        id: "CCI-002361",
        title: "CCI-002361 (AC-12): automatically terminate a user session after organization-defined conditions",
    },
];

/// Requirements curfew does not implement, with why: a rule naming one would put a claim in the
/// security plan that no component makes good.
pub const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    (
        "AC-12(1)",
        "AC-12(1) (user-initiated logouts) is about a logout the user starts and its message; curfew ends sessions, it offers no logout",
    ),
    (
        "AC-12(2)",
        "AC-12(2) (termination message) needs a message to the user when the session ends; the agent cannot reach a database session's user (PostgreSQL shows only \"terminating connection due to administrator command\")",
    ),
    (
        "AC-12(3)",
        "AC-12(3) (timeout warning message) needs a warning the user sees; the agent records a warning for operators and hooks, the user is not told",
    ),
];

/// What a `controls` entry is, or why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlId {
    /// One of [`KNOWN_CONTROLS`].
    Known(KnownControl),
    /// An organization's own id (`local:...`), not checked.
    Local(String),
}

/// Look up a `controls` entry; `Err` holds the message (with a suggestion when one is close).
pub fn classify(id: &str) -> Result<ControlId, String> {
    if let Some(rest) = id.strip_prefix(LOCAL_PREFIX) {
        if rest.trim().is_empty() {
            return Err(format!(
                "\"{id}\" names no local id; write it after the prefix, e.g. \"local:SEC-POL-7.2\""
            ));
        }
        return Ok(ControlId::Local(rest.to_owned()));
    }
    if let Some(known) = KNOWN_CONTROLS.iter().find(|k| k.id == id) {
        return Ok(ControlId::Known(*known));
    }
    let bare = id.strip_prefix("NIST-800-53-").unwrap_or(id);
    if let Some((_, why)) = NOT_IMPLEMENTED.iter().find(|(n, _)| *n == bare) {
        return Err(format!(
            "\"{id}\" is not implemented by curfew: {why}; name \"AC-12\" instead"
        ));
    }
    let ids: Vec<&str> = KNOWN_CONTROLS.iter().map(|k| k.id).collect();
    let hint = match crate::diagnostic::did_you_mean(id, &ids) {
        Some(s) => format!("did you mean \"{s}\"? "),
        None => String::new(),
    };
    Err(format!(
        "unknown control \"{id}\"; {hint}known ids: {}; an organization's own id is written \"{LOCAL_PREFIX}<id>\"",
        ids.join(", ")
    ))
}

/// A title for an id in documents: the known title, or the local id as written.
pub fn title(id: &str) -> String {
    match classify(id) {
        Ok(ControlId::Known(k)) => k.title.to_owned(),
        Ok(ControlId::Local(rest)) => format!("{rest} (the organization's own requirement)"),
        Err(_) => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_local_and_unknown_ids() {
        assert!(matches!(
            classify("NIST-800-171-3.1.11"),
            Ok(ControlId::Known(_))
        ));
        // Enhancements curfew does not implement are refused with the reason.
        for id in ["AC-12(1)", "AC-12(2)", "NIST-800-53-AC-12(3)"] {
            let e = classify(id).unwrap_err();
            assert!(e.contains("is not implemented by curfew"), "{e}");
        }
        assert_eq!(
            classify("local:SEC-7"),
            Ok(ControlId::Local("SEC-7".to_owned()))
        );
        assert!(
            classify("local: ")
                .unwrap_err()
                .contains("names no local id")
        );
        let e = classify("AC-21").unwrap_err();
        assert!(e.contains("did you mean \"AC-12\"?"), "{e}");
        let e = classify("V-261901").unwrap_err();
        assert!(e.contains("did you mean \"V-261910\"?"), "{e}");
        // Case matters: ids are quoted in documents exactly as written.
        assert!(classify("ac-12").is_err());
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<&str> = KNOWN_CONTROLS.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), KNOWN_CONTROLS.len());
    }
}
