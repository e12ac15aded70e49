//! Instants on the command line: `2026-11-23T19:00:00Z`, `2026-11-23 19:00` (this host's time
//! zone, or a named one after it), `+2h` / `-30m` (relative to a reference, e.g. the server's
//! clock). The one parser of every time argument (`plan --at`, `lock --until`, `report --since`,
//! `audit show --since/--until`); arguments that take it set clap's `allow_hyphen_values` so
//! that `-30m` is a value, not an option.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Parse an instant; relative forms count from `reference`.
pub(crate) fn parse_instant(text: &str, reference: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('+').or_else(|| text.strip_prefix("in ")) {
        let limit: curfew_policy::Limit = rest.parse().map_err(|e| format!("{e}"))?;
        return reference
            .checked_add(limit.get())
            .map_err(|e| format!("{text}: {e}"));
    }
    if let Some(rest) = text.strip_prefix('-') {
        let limit: curfew_policy::Limit = rest.parse().map_err(|e| format!("{e}"))?;
        return reference
            .checked_sub(limit.get())
            .map_err(|e| format!("{text}: {e}"));
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    // "2026-11-23 19:00 [Zone/Name]"
    let (civil, zone) = match text.rsplit_once(' ') {
        Some((c, z)) if z.contains('/') || z == "UTC" => (c, Some(z)),
        _ => (text, None),
    };
    let civil: DateTime = civil.replacen(' ', "T", 1).parse().map_err(|_| {
        format!(
            "\"{text}\" is not a time; expected 2026-11-23T19:00:00Z, \"2026-11-23 19:00\" (this host's zone), \"2026-11-23 19:00 Europe/Berlin\", or +2h / -30m"
        )
    })?;
    let zone = match zone {
        Some(name) => jiff::tz::db()
            .get(name)
            .map_err(|_| format!("unknown time zone \"{name}\""))?,
        None => TimeZone::system(),
    };
    zone.to_ambiguous_timestamp(civil)
        .compatible()
        .map_err(|e| format!("{text}: {e}"))
}

/// A bound of a period looking back (`report --since`, `audit show --since/--until`): a bare
/// duration (`30d`) is that long before `now`; otherwise any form of [`parse_instant`].
pub(crate) fn parse_past(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    match text.trim().parse::<curfew_policy::Limit>() {
        Ok(limit) => now
            .checked_sub(limit.get())
            .map_err(|e| format!("{text}: {e}")),
        Err(_) => parse_instant(text, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_bounds_take_the_same_forms_as_instants_and_bare_durations() {
        let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        let ago: Timestamp = "2026-11-23T11:30:00Z".parse().unwrap();
        assert_eq!(parse_past("30m", now).unwrap(), ago);
        assert_eq!(parse_past("-30m", now).unwrap(), ago);
        assert_eq!(
            parse_past("2026-11-01T00:00:00Z", now).unwrap(),
            "2026-11-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_past("last tuesday", now).is_err());
    }

    #[test]
    fn forms() {
        let r: Timestamp = "2026-11-23T15:00:00Z".parse().unwrap();
        assert_eq!(
            parse_instant("+2h", r).unwrap(),
            "2026-11-23T17:00:00Z".parse().unwrap()
        );
        assert_eq!(
            parse_instant("-30m", r).unwrap(),
            "2026-11-23T14:30:00Z".parse().unwrap()
        );
        assert_eq!(
            parse_instant("2026-11-23T19:00:00Z", r).unwrap(),
            "2026-11-23T19:00:00Z".parse().unwrap()
        );
        assert_eq!(
            parse_instant("2026-11-23 19:00 America/New_York", r).unwrap(),
            "2026-11-24T00:00:00Z".parse().unwrap()
        );
        assert!(
            parse_instant("tomorrow", r)
                .unwrap_err()
                .contains("is not a time")
        );
    }
}
