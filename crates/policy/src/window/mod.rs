//! Time windows in an IANA time zone, and where an instant stands relative to them.
//!
//! A window's civil times are turned into real instants with jiff's "compatible" rule, the one
//! RFC 5545 and most calendars use: a time skipped by a spring-forward change is moved later by
//! the gap (02:30 becomes 03:30), and a time repeated by a fall-back change is the earlier of
//! the two. All answers (`inside`, `since`, `until`) come from the same set of instants, so they
//! never contradict each other around a change.

mod parse;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

pub use parse::WindowError;
pub(crate) use parse::parse_window;

/// A set of weekdays (bit 0 = Monday ... bit 6 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySet(u8);

impl DaySet {
    /// No day.
    pub const EMPTY: DaySet = DaySet(0);
    /// Every day.
    pub const ALL: DaySet = DaySet(0b111_1111);

    /// Days `first..=last` (0 = Monday), wrapping past Sunday (`Fri-Mon`).
    pub fn range(first: u8, last: u8) -> DaySet {
        let mut bits = 0u8;
        let mut day = first % 7;
        loop {
            bits |= 1 << day;
            if day == last % 7 {
                break;
            }
            day = (day + 1) % 7;
        }
        DaySet(bits)
    }

    /// Both sets together.
    pub fn union(self, other: DaySet) -> DaySet {
        DaySet(self.0 | other.0)
    }

    /// Whether the day (0 = Monday) is in the set.
    pub fn contains(self, day: u8) -> bool {
        self.0 & (1 << (day % 7)) != 0
    }

    /// How many days are in the set.
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }
}

/// One window as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The text as written (trimmed), for messages and documents.
    pub text: String,
    /// What it means.
    pub kind: WindowKind,
}

/// The two shapes of window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// Recurs every week: on each day in `days`, from `from` to `to` (minutes since midnight);
    /// `to <= from` means the window runs past midnight into the next day.
    Weekly {
        /// The days on which the window opens.
        days: DaySet,
        /// Opening time, minutes since midnight (0..1440).
        from: u16,
        /// Closing time, minutes since midnight (1..=1440).
        to: u16,
    },
    /// Happens once: `[start, end)` in civil time.
    Range {
        /// Opening date and time.
        start: DateTime,
        /// Closing date and time (exclusive).
        end: DateTime,
    },
}

/// Where an instant stands relative to a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Whether the instant is inside one of the windows.
    pub inside: bool,
    /// When the current state began, if it began at all (None: it has always been so).
    pub since: Option<Timestamp>,
    /// When the current state ends, if it ever does (None: it stays so).
    pub until: Option<Timestamp>,
}

/// Monday = 0 ... Sunday = 6.
fn weekday(date: Date) -> u8 {
    date.weekday().to_monday_zero_offset().unsigned_abs()
}

/// Several windows in one time zone, taken together (a union).
#[derive(Debug, Clone)]
pub struct Schedule {
    windows: Vec<Window>,
    zone: TimeZone,
}

/// How many days on either side of an instant are searched for weekly window instances. A week
/// plus a day covers every weekly pattern, whatever DST does in between.
const HORIZON_DAYS: i32 = 9;

impl Schedule {
    /// A schedule of these windows, interpreted in `zone`.
    pub fn new(windows: Vec<Window>, zone: TimeZone) -> Self {
        Self { windows, zone }
    }

    /// The windows as written.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The time zone the windows are read in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// Whether `at` is inside a window, since when, and until when.
    pub fn state_at(&self, at: Timestamp) -> WindowState {
        let inside = self.inside(at);
        // Every instant where the state could flip, in order. Each is checked exactly with
        // `inside`, so an edge that is not a real change (adjacent or overlapping windows) is
        // skipped.
        let mut edges = self.edges_around(at);
        edges.sort_unstable();
        edges.dedup();
        let until = edges
            .iter()
            .copied()
            .filter(|e| *e > at)
            .find(|e| self.inside(*e) != inside);
        let since = edges.iter().rev().copied().filter(|e| *e <= at).find(|e| {
            let before = e.checked_sub(1.nanosecond()).unwrap_or(*e);
            self.inside(before) != inside
        });
        WindowState {
            inside,
            since,
            until,
        }
    }

    /// Whether `at` is inside any window. Only instances that open on the same local day or the
    /// two before can contain it (an instance lasts at most a day, plus a DST shift).
    pub fn inside(&self, at: Timestamp) -> bool {
        let today = at.to_zoned(self.zone.clone()).date();
        self.windows.iter().any(|window| match &window.kind {
            WindowKind::Weekly { days, from, to } => (-2..=0).any(|offset| {
                today
                    .checked_add(offset.days())
                    .ok()
                    .filter(|date| days.contains(weekday(*date)))
                    .and_then(|date| self.weekly_instance(date, *from, *to))
                    .is_some_and(|(s, e)| s <= at && at < e)
            }),
            WindowKind::Range { start, end } => match (self.instant(*start), self.instant(*end)) {
                (Some(s), Some(e)) => s <= at && at < e,
                _ => false,
            },
        })
    }

    /// Window edges near `at`: weekly ones within the horizon, and every absolute one. A weekly
    /// pattern that changes at all changes within a week, so a further weekly edge is never the
    /// first change.
    fn edges_around(&self, at: Timestamp) -> Vec<Timestamp> {
        let today = at.to_zoned(self.zone.clone()).date();
        let mut out = Vec::new();
        for window in &self.windows {
            match &window.kind {
                WindowKind::Weekly { days, from, to } => {
                    for offset in -HORIZON_DAYS..=HORIZON_DAYS {
                        let Ok(date) = today.checked_add(offset.days()) else {
                            continue;
                        };
                        if !days.contains(weekday(date)) {
                            continue;
                        }
                        if let Some((s, e)) = self.weekly_instance(date, *from, *to) {
                            out.extend([s, e]);
                        }
                    }
                }
                WindowKind::Range { start, end } => {
                    out.extend(self.instant(*start));
                    out.extend(self.instant(*end));
                }
            }
        }
        out
    }

    /// The instance of a weekly window that opens on `date`, unless DST swallowed it.
    fn weekly_instance(&self, date: Date, from: u16, to: u16) -> Option<(Timestamp, Timestamp)> {
        let start = self.instant(date.to_datetime(parse::minutes_to_time(from)))?;
        let end_date = if to <= from {
            date.tomorrow().ok()?
        } else {
            date
        };
        let end = if to == 24 * 60 {
            self.instant(
                end_date
                    .tomorrow()
                    .ok()?
                    .to_datetime(parse::minutes_to_time(0)),
            )?
        } else {
            self.instant(end_date.to_datetime(parse::minutes_to_time(to)))?
        };
        (start < end).then_some((start, end))
    }

    fn instant(&self, civil: DateTime) -> Option<Timestamp> {
        self.zone.to_ambiguous_timestamp(civil).compatible().ok()
    }
}

#[cfg(test)]
mod tests;
