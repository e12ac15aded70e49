//! The text form of windows: `Mon-Fri 07:00-19:00`, `daily 22:00-06:00`,
//! `2026-12-31 22:00 - 2027-01-01 02:00`.

use jiff::civil::{Date, DateTime, Time};

use super::{DaySet, Window, WindowKind};
use crate::diagnostic::did_you_mean;

/// Why a window string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not in any recognised form.
    #[error(
        "\"{0}\" is not a window; expected days and times like \"Mon-Fri 07:00-19:00\" or \"daily 22:00-06:00\", or a date range like \"2026-12-31 22:00 - 2027-01-01 02:00\""
    )]
    Malformed(String),
    /// A day name that is not one.
    #[error(
        "\"{day}\" in window \"{text}\" is not a day{hint}; expected Mon, Tue, Wed, Thu, Fri, Sat, Sun, a range like Mon-Fri, \"daily\", \"weekdays\" or \"weekends\""
    )]
    BadDay {
        /// The window as written.
        text: String,
        /// The offending word.
        day: String,
        /// A "did you mean" suggestion, or empty.
        hint: String,
    },
    /// A time of day that is not `HH:MM` in 00:00..=24:00.
    #[error(
        "\"{time}\" in window \"{text}\" is not a time of day; expected HH:MM between 00:00 and 24:00"
    )]
    BadTime {
        /// The window as written.
        text: String,
        /// The offending time.
        time: String,
    },
    /// A weekly window whose start and end are the same time.
    #[error(
        "window \"{0}\" starts and ends at the same time, which could mean nothing or the whole day; write 00:00-24:00 for a whole day"
    )]
    SameStartAndEnd(String),
    /// An absolute range whose end is before its start.
    #[error("window \"{0}\" ends before it starts")]
    EndsBeforeStart(String),
    /// An absolute range of zero length.
    #[error("window \"{0}\" starts and ends at the same moment, so it is empty")]
    Empty(String),
    /// A date or date-time that does not exist (`2026-02-30`).
    #[error(
        "\"{value}\" in window \"{text}\" is not a valid date and time; expected YYYY-MM-DD HH:MM (or HH:MM:SS)"
    )]
    BadDateTime {
        /// The window as written.
        text: String,
        /// The offending value.
        value: String,
    },
}

const DAY_WORDS: [&str; 10] = [
    "mon", "tue", "wed", "thu", "fri", "sat", "sun", "daily", "weekdays", "weekends",
];

/// Parse one window.
pub(crate) fn parse_window(text: &str) -> Result<Window, WindowError> {
    let trimmed = text.trim();
    let kind = if looks_like_date(trimmed) {
        parse_range(text, trimmed)?
    } else {
        parse_weekly(text, trimmed)?
    };
    Ok(Window {
        text: trimmed.to_owned(),
        kind,
    })
}

fn looks_like_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

fn parse_range(text: &str, trimmed: &str) -> Result<WindowKind, WindowError> {
    let Some((start, end)) = trimmed.split_once(" - ") else {
        return Err(WindowError::Malformed(text.to_owned()));
    };
    let start = parse_datetime(text, start.trim())?;
    let end = parse_datetime(text, end.trim())?;
    if end < start {
        return Err(WindowError::EndsBeforeStart(trimmed.to_owned()));
    }
    if end == start {
        return Err(WindowError::Empty(trimmed.to_owned()));
    }
    Ok(WindowKind::Range { start, end })
}

fn parse_datetime(text: &str, value: &str) -> Result<DateTime, WindowError> {
    let bad = || WindowError::BadDateTime {
        text: text.trim().to_owned(),
        value: value.to_owned(),
    };
    let (date, time) = value
        .split_once(['T', ' '])
        .map(|(d, t)| (d.trim(), t.trim()))
        .ok_or_else(|| WindowError::Malformed(text.to_owned()))?;
    let date: Date = date.parse().map_err(|_| bad())?;
    // Seconds are optional in one-off ranges: HH:MM or HH:MM:SS.
    let (clock, seconds) = match time.len() {
        8 if time.as_bytes()[5] == b':' => (&time[..5], Some(&time[6..])),
        _ => (time, None),
    };
    let minutes = parse_clock(clock).ok_or_else(bad)?;
    let seconds: i8 = match seconds {
        Some(s) => s
            .parse()
            .ok()
            .filter(|s| (0..60).contains(s) && minutes < 24 * 60)
            .ok_or_else(bad)?,
        None => 0,
    };
    if minutes == 24 * 60 {
        let next = date.tomorrow().map_err(|_| bad())?;
        return Ok(next.at(0, 0, 0, 0));
    }
    let time = minutes_to_time(minutes);
    Ok(date.at(time.hour(), time.minute(), seconds, 0))
}

fn parse_weekly(text: &str, trimmed: &str) -> Result<WindowKind, WindowError> {
    // Either "<days> <from>-<to>" or just "<from>-<to>" (every day).
    let starts_with_time = trimmed.chars().next().is_some_and(|c| c.is_ascii_digit());
    let (days_text, times_text) = if starts_with_time {
        ("daily", trimmed)
    } else {
        trimmed
            .split_once(char::is_whitespace)
            .map(|(d, t)| (d, t.trim()))
            .ok_or_else(|| WindowError::Malformed(text.to_owned()))?
    };
    let days = parse_days(trimmed, days_text)?;
    let (from, to) = times_text
        .split_once('-')
        .map(|(a, b)| (a.trim(), b.trim()))
        .ok_or_else(|| WindowError::Malformed(text.to_owned()))?;
    let bad_time = |time: &str| WindowError::BadTime {
        text: trimmed.to_owned(),
        time: time.to_owned(),
    };
    let from_min = parse_clock(from).ok_or_else(|| bad_time(from))?;
    let to_min = parse_clock(to).ok_or_else(|| bad_time(to))?;
    if from_min == 24 * 60 {
        return Err(bad_time(from));
    }
    if from_min == to_min {
        return Err(WindowError::SameStartAndEnd(trimmed.to_owned()));
    }
    Ok(WindowKind::Weekly {
        days,
        from: from_min,
        to: to_min,
    })
}

fn parse_days(text: &str, days_text: &str) -> Result<DaySet, WindowError> {
    let mut set = DaySet::EMPTY;
    for item in days_text.split(',') {
        let item = item.trim();
        match item.to_ascii_lowercase().as_str() {
            "daily" | "everyday" => set = set.union(DaySet::ALL),
            "weekdays" => set = set.union(DaySet::range(0, 4)),
            "weekends" => set = set.union(DaySet::range(5, 6)),
            _ => {
                let (first, last) = match item.split_once('-') {
                    Some((a, b)) => (day_index(text, a)?, day_index(text, b)?),
                    None => {
                        let d = day_index(text, item)?;
                        (d, d)
                    }
                };
                set = set.union(DaySet::range(first, last));
            }
        }
    }
    Ok(set)
}

/// Monday = 0 ... Sunday = 6.
fn day_index(text: &str, word: &str) -> Result<u8, WindowError> {
    let lower = word.trim().to_ascii_lowercase();
    let index = match lower.as_str() {
        "mon" | "monday" => 0,
        "tue" | "tues" | "tuesday" => 1,
        "wed" | "wednesday" => 2,
        "thu" | "thur" | "thurs" | "thursday" => 3,
        "fri" | "friday" => 4,
        "sat" | "saturday" => 5,
        "sun" | "sunday" => 6,
        _ => {
            let hint = did_you_mean(&lower, &DAY_WORDS)
                .map(|d| format!(" (did you mean \"{d}\"?)"))
                .unwrap_or_default();
            return Err(WindowError::BadDay {
                text: text.to_owned(),
                day: word.trim().to_owned(),
                hint,
            });
        }
    };
    Ok(index)
}

/// `HH:MM` (or `H:MM`) as minutes since midnight, 0..=1440.
fn parse_clock(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

pub(super) fn minutes_to_time(minutes: u16) -> Time {
    // Callers pass 0..1440; both parts fit an i8.
    let hour = i8::try_from(minutes / 60).unwrap_or(0);
    let minute = i8::try_from(minutes % 60).unwrap_or(0);
    Time::constant(hour, minute, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(text: &str) -> (DaySet, u16, u16) {
        match parse_window(text).unwrap().kind {
            WindowKind::Weekly { days, from, to } => (days, from, to),
            other => panic!("not weekly: {other:?}"),
        }
    }

    #[test]
    fn weekly_forms() {
        assert_eq!(
            weekly("Mon-Fri 07:00-19:00"),
            (DaySet::range(0, 4), 420, 1140)
        );
        assert_eq!(weekly("Sat 08:00-12:00"), (DaySet::range(5, 5), 480, 720));
        assert_eq!(weekly("daily 22:00-06:00"), (DaySet::ALL, 1320, 360));
        assert_eq!(weekly("22:00-06:00"), (DaySet::ALL, 1320, 360));
        assert_eq!(
            weekly("weekends 00:00-24:00"),
            (DaySet::range(5, 6), 0, 1440)
        );
        assert_eq!(weekly("mon,wed,FRI 9:00 - 17:30").1, 540);
        assert_eq!(weekly("Fri-Mon 10:00-11:00").0, DaySet::range(4, 0));
        assert_eq!(weekly("Friday-Monday 10:00-11:00").0.count(), 4);
    }

    #[test]
    fn weekly_errors() {
        assert!(matches!(
            parse_window("Mno-Fri 07:00-19:00"),
            Err(WindowError::BadDay { hint, .. }) if hint.contains("mon")
        ));
        assert!(matches!(
            parse_window("Mon 25:00-26:00"),
            Err(WindowError::BadTime { time, .. }) if time == "25:00"
        ));
        assert!(matches!(
            parse_window("Mon 07:60-08:00"),
            Err(WindowError::BadTime { .. })
        ));
        assert!(matches!(
            parse_window("Mon 24:00-08:00"),
            Err(WindowError::BadTime { .. })
        ));
        assert_eq!(
            parse_window("Mon 07:00-07:00"),
            Err(WindowError::SameStartAndEnd("Mon 07:00-07:00".into()))
        );
        for bad in ["", "Mon", "Mon 0700-1900", "Mon 07:00"] {
            assert!(parse_window(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges() {
        let w = parse_window("2026-12-31 22:00 - 2027-01-01 02:00").unwrap();
        assert!(matches!(w.kind, WindowKind::Range { .. }));
        assert!(parse_window("2026-12-31T22:00 - 2027-01-01T02:00").is_ok());
        match parse_window("2026-12-31 22:00:30 - 2026-12-31 22:00:45")
            .unwrap()
            .kind
        {
            WindowKind::Range { start, end } => {
                assert_eq!(start.second(), 30);
                assert_eq!(end.second(), 45);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_window("2026-12-31 22:00:60 - 2027-01-01 02:00").is_err());
        assert_eq!(
            parse_window("2027-01-01 02:00 - 2026-12-31 22:00"),
            Err(WindowError::EndsBeforeStart(
                "2027-01-01 02:00 - 2026-12-31 22:00".into()
            ))
        );
        assert!(matches!(
            parse_window("2026-12-31 22:00 - 2026-12-31 22:00"),
            Err(WindowError::Empty(_))
        ));
        assert!(matches!(
            parse_window("2026-02-30 22:00 - 2026-03-01 02:00"),
            Err(WindowError::BadDateTime { value, .. }) if value == "2026-02-30 22:00"
        ));
        assert!(matches!(
            parse_window("2026-12-31 22:00-2027-01-01 02:00"),
            Err(WindowError::Malformed(_))
        ));
    }
}
