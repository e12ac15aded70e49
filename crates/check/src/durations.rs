//! Server settings read as durations, and durations as people read them: shared by the
//! settings findings and the termination requirement.

use std::time::Duration;

use curfew_postgres::Setting;

/// A setting's value as a duration, from its value and unit (`ms`, `s`, `min`, `h`, `d`).
pub(crate) fn duration_of(setting: &Setting) -> Option<Duration> {
    let value: u64 = setting.value.trim().parse().ok()?;
    let unit_ms: u64 = match setting.unit.as_deref().unwrap_or("ms") {
        "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(value.checked_mul(unit_ms)?))
}

/// A duration as people read it; `0 (off)` for zero.
pub(crate) fn words(d: Duration) -> String {
    if d.is_zero() {
        return "0 (off)".to_owned();
    }
    curfew_policy::format_age(d.try_into().unwrap_or_default())
}
