//! How far above curfew's limits the native timeouts go.
//!
//! A native timeout equal to curfew's limit races the agent: PostgreSQL ends the idle session at
//! the same instant, the agent finds it gone (`no_longer_matched`), and the record of *why* it
//! ended is lost. Set a margin above the limit, the native setting is a backstop: it ends the
//! session only when the agent has not (stopped, cut off, failing over).

use std::time::Duration;

/// The margin above each limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Margin {
    /// PostgreSQL: the larger of 1 minute and a tenth of the limit (see [`Margin::above`]).
    /// Oracle: none, since no curfew agent watches Oracle and its profiles are the enforcement.
    #[default]
    Default,
    /// This much above every limit, in both dialects (zero: the limits themselves).
    Fixed(Duration),
}

/// The default margin's floor.
const FLOOR: Duration = Duration::from_secs(60);

impl Margin {
    /// The margin above `limit` for a PostgreSQL timeout. The floor of 1 minute covers the
    /// agent's own delays with room to spare (its interval, a snapshot, the guarded
    /// termination, a restart or a leader change among replicas take seconds); a tenth of the
    /// limit keeps long limits proportionate (a 12-hour limit gets 72 minutes), so that a
    /// native timeout never ends a session the agent was about to end and record.
    pub fn above(self, limit: Duration) -> Duration {
        match self {
            Margin::Default => FLOOR.max(limit / 10),
            Margin::Fixed(margin) => margin,
        }
    }

    /// The margin above `limit` for an Oracle profile limit: none by default (see
    /// [`Margin::Default`]), else as given.
    pub fn above_for_oracle(self, limit: Duration) -> Duration {
        match self {
            Margin::Default => Duration::ZERO,
            Margin::Fixed(_) => self.above(limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_larger_of_a_minute_and_a_tenth() {
        let m = |secs| Margin::Default.above(Duration::from_secs(secs));
        assert_eq!(m(5), Duration::from_secs(60));
        assert_eq!(m(15 * 60), Duration::from_secs(90));
        assert_eq!(m(5 * 60), Duration::from_secs(60));
        assert_eq!(m(12 * 3600), Duration::from_secs(72 * 60));
        assert_eq!(
            Margin::Default.above_for_oracle(Duration::from_secs(900)),
            Duration::ZERO
        );
        let fixed = Margin::Fixed(Duration::from_secs(30));
        assert_eq!(
            fixed.above(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            fixed.above_for_oracle(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
    }
}
