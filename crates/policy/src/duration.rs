//! Durations as written in a policy (`90s`, `15m`, `1h30m`) and as shown to people (`15m02s`).

use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;

/// A strictly positive length of time from the policy: a limit, a warning lead, an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Limit(SignedDuration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("a duration cannot be empty; expected something like \"90s\", \"15m\" or \"1h30m\"")]
    Empty,
    /// A leading minus sign.
    #[error("a duration must be positive, not negative \"{0}\"")]
    Negative(String),
    /// All parts are zero.
    #[error("a duration must be longer than zero, got \"{0}\"")]
    Zero(String),
    /// Anything else that is not `<number><unit>...`.
    #[error(
        "\"{0}\" is not a duration; expected a number and a unit (ms, s, m, h, d), like \"90s\", \"15m\" or \"1h30m\""
    )]
    Malformed(String),
    /// Larger than anything meaningful (over 10 years).
    #[error("\"{0}\" is too long; durations are limited to 10 years")]
    TooLong(String),
}

const MAX_MILLIS: i128 = 10 * 366 * 24 * 3_600_000;

impl Limit {
    /// A limit of this many whole seconds (must be positive).
    pub fn from_secs(secs: u32) -> Option<Self> {
        (secs > 0).then(|| Limit(SignedDuration::from_secs(i64::from(secs))))
    }

    /// A limit of this many milliseconds (must be positive).
    pub fn from_millis(millis: u32) -> Option<Self> {
        (millis > 0).then(|| Limit(SignedDuration::from_millis(i64::from(millis))))
    }

    /// The length as a signed duration, for timestamp arithmetic.
    pub fn get(self) -> SignedDuration {
        self.0
    }

    /// The length as a standard duration (for sleeping and timeouts).
    pub fn to_std(self) -> std::time::Duration {
        // A Limit is positive by construction.
        std::time::Duration::try_from(self.0).unwrap_or_default()
    }
}

impl FromStr for Limit {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(DurationError::Empty);
        }
        if trimmed.starts_with('-') {
            return Err(DurationError::Negative(text.to_owned()));
        }
        let malformed = || DurationError::Malformed(text.to_owned());
        let mut millis: i128 = 0;
        let mut rest = trimmed.trim_start_matches('+');
        if rest.is_empty() {
            return Err(malformed());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(malformed());
            }
            let number: i128 = rest[..digits].parse().map_err(|_| malformed())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let factor = match &rest[..unit_len] {
                "ms" => 1,
                "s" | "sec" | "secs" => 1_000,
                "m" | "min" | "mins" => 60_000,
                "h" | "hr" | "hrs" => 3_600_000,
                "d" | "day" | "days" => 86_400_000,
                _ => return Err(malformed()),
            };
            millis = number
                .checked_mul(factor)
                .and_then(|m| m.checked_add(millis))
                .filter(|m| *m <= MAX_MILLIS)
                .ok_or_else(|| DurationError::TooLong(text.to_owned()))?;
            rest = rest[unit_len..].trim_start();
        }
        if millis == 0 {
            return Err(DurationError::Zero(text.to_owned()));
        }
        let millis = i64::try_from(millis).map_err(|_| DurationError::TooLong(text.to_owned()))?;
        Ok(Limit(SignedDuration::from_millis(millis)))
    }
}

impl fmt::Display for Limit {
    /// The canonical compact form: `90s` is shown as `1m30s`, `3600s` as `1h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        let units: [(i128, &str); 4] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        let mut rest = total_ms;
        for (size, unit) in units {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        if rest > 0 {
            write!(f, "{rest}ms")?;
        }
        Ok(())
    }
}

impl Limit {
    /// The length in words, for documents: `15 minutes`, `1 hour 30 minutes`, `90 seconds`.
    pub fn to_words(self) -> String {
        let ms = self.0.as_millis();
        let units: [(i128, &str); 5] = [
            (86_400_000, "day"),
            (3_600_000, "hour"),
            (60_000, "minute"),
            (1_000, "second"),
            (1, "millisecond"),
        ];
        // Seconds under two minutes read better as seconds ("90 seconds").
        let mut rest = ms;
        let mut words = Vec::new();
        for (size, unit) in units {
            if unit == "minute" && ms < 120_000 && ms % 60_000 != 0 {
                continue;
            }
            if rest >= size {
                let n = rest / size;
                rest %= size;
                words.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
            }
        }
        words.join(" ")
    }
}

impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An elapsed time as people read it in a reason: `4ms`, `45s`, `2.3s`, `15m02s`, `12h00m03s`,
/// `2d03h04m`.
pub fn format_age(age: SignedDuration) -> String {
    let negative = age.is_negative();
    let ms = age.as_millis().unsigned_abs();
    let sign = if negative { "-" } else { "" };
    let secs = ms / 1000;
    let text = if secs == 0 {
        format!("{ms}ms")
    } else if secs < 60 {
        if ms.is_multiple_of(1000) || secs >= 10 {
            format!("{secs}s")
        } else {
            format!("{}.{}s", secs, (ms % 1000) / 100)
        }
    } else if secs < 3_600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m{:02}s", secs / 3_600, (secs / 60) % 60, secs % 60)
    } else {
        format!(
            "{}d{:02}h{:02}m",
            secs / 86_400,
            (secs / 3_600) % 24,
            (secs / 60) % 60
        )
    };
    format!("{sign}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i128 {
        text.parse::<Limit>().unwrap().get().as_millis()
    }

    #[test]
    fn accepts_the_forms_a_policy_uses() {
        assert_eq!(ms("90s"), 90_000);
        assert_eq!(ms("15m"), 900_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1h 30m"), 5_400_000);
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("2d"), 172_800_000);
        assert_eq!(ms(" 12h "), 43_200_000);
    }

    #[test]
    fn refuses_zero_negative_and_garbage() {
        assert_eq!("0s".parse::<Limit>(), Err(DurationError::Zero("0s".into())));
        assert_eq!(
            "0h0m".parse::<Limit>(),
            Err(DurationError::Zero("0h0m".into()))
        );
        assert_eq!(
            "-5m".parse::<Limit>(),
            Err(DurationError::Negative("-5m".into()))
        );
        assert_eq!("".parse::<Limit>(), Err(DurationError::Empty));
        for bad in ["15", "m", "15 minutes", "1.5h", "15x", "h15", "+"] {
            assert!(
                matches!(bad.parse::<Limit>(), Err(DurationError::Malformed(_))),
                "{bad} should be malformed"
            );
        }
        assert!(matches!(
            "99999999999999999999d".parse::<Limit>(),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn displays_canonically() {
        let show = |t: &str| t.parse::<Limit>().unwrap().to_string();
        assert_eq!(show("90s"), "1m30s");
        assert_eq!(show("15m"), "15m");
        assert_eq!(show("3600s"), "1h");
        assert_eq!(show("1500ms"), "1s500ms");
    }

    #[test]
    fn words_for_documents() {
        let words = |t: &str| t.parse::<Limit>().unwrap().to_words();
        assert_eq!(words("15m"), "15 minutes");
        assert_eq!(words("1h30m"), "1 hour 30 minutes");
        assert_eq!(words("90s"), "90 seconds");
        assert_eq!(words("1m"), "1 minute");
        assert_eq!(words("2d1s"), "2 days 1 second");
    }

    #[test]
    fn ages_read_like_the_audit_reason() {
        assert_eq!(format_age(SignedDuration::from_secs(902)), "15m02s");
        assert_eq!(format_age(SignedDuration::from_secs(45)), "45s");
        assert_eq!(format_age(SignedDuration::from_millis(2_340)), "2.3s");
        assert_eq!(format_age(SignedDuration::from_secs(43_203)), "12h00m03s");
        assert_eq!(format_age(SignedDuration::from_secs(183_840)), "2d03h04m");
        assert_eq!(format_age(SignedDuration::from_millis(4)), "4ms");
        assert_eq!(format_age(SignedDuration::from_millis(-700)), "-700ms");
    }
}
