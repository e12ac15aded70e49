//! Window evaluation across the 2026 DST changes, midnight, and adjacent windows.

use super::*;

fn schedule(zone: &str, windows: &[&str]) -> Schedule {
    let windows = windows.iter().map(|w| parse_window(w).unwrap()).collect();
    Schedule::new(windows, TimeZone::get(zone).unwrap())
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn state(inside: bool, since: Option<&str>, until: Option<&str>) -> WindowState {
    WindowState {
        inside,
        since: since.map(ts),
        until: until.map(ts),
    }
}

#[test]
fn new_york_spring_forward_night_window_is_seven_hours() {
    // Sat 2026-03-07 22:00 EST (03:00Z) to Sun 2026-03-08 06:00 EDT (10:00Z): 7 real hours.
    let s = schedule("America/New_York", &["daily 22:00-06:00"]);
    assert_eq!(
        s.state_at(ts("2026-03-08T09:59:00Z")),
        state(
            true,
            Some("2026-03-08T03:00:00Z"),
            Some("2026-03-08T10:00:00Z")
        )
    );
    assert!(!s.state_at(ts("2026-03-08T10:00:00Z")).inside);
}

#[test]
fn new_york_working_hours_across_spring_forward_weekend() {
    let s = schedule("America/New_York", &["Mon-Fri 07:00-19:00"]);
    // Friday 19:00 EST is 00:00Z Saturday; Monday 07:00 EDT is 11:00Z.
    assert_eq!(
        s.state_at(ts("2026-03-07T12:00:00Z")),
        state(
            false,
            Some("2026-03-07T00:00:00Z"),
            Some("2026-03-09T11:00:00Z")
        )
    );
    // Monday after the change: 07:00 EDT opens at 11:00Z and closes 19:00 EDT = 23:00Z.
    assert_eq!(
        s.state_at(ts("2026-03-09T11:00:00Z")),
        state(
            true,
            Some("2026-03-09T11:00:00Z"),
            Some("2026-03-09T23:00:00Z")
        )
    );
}

#[test]
fn new_york_time_skipped_by_spring_forward_leaves_no_window_that_day() {
    // 02:30-03:30 on 2026-03-08: 02:30 does not exist and moves to 03:30 EDT, so the instance is
    // empty. The windows on either side are untouched.
    let s = schedule("America/New_York", &["daily 02:30-03:30"]);
    assert_eq!(
        s.state_at(ts("2026-03-08T12:00:00Z")),
        state(
            false,
            Some("2026-03-07T08:30:00Z"),
            Some("2026-03-09T06:30:00Z")
        )
    );
}

#[test]
fn new_york_fall_back_repeated_hour_uses_the_first_occurrence() {
    // 2026-11-01 01:00-01:30 happens twice; the window is the first (EDT) occurrence.
    let s = schedule("America/New_York", &["daily 01:00-01:30"]);
    assert!(s.state_at(ts("2026-11-01T05:15:00Z")).inside); // 01:15 EDT
    assert_eq!(
        s.state_at(ts("2026-11-01T06:15:00Z")), // 01:15 EST, the second occurrence
        state(
            false,
            Some("2026-11-01T05:30:00Z"),
            Some("2026-11-02T06:00:00Z")
        )
    );
}

#[test]
fn new_york_fall_back_night_window_is_nine_hours() {
    // Sat 2026-10-31 22:00 EDT (02:00Z) to Sun 06:00 EST (11:00Z).
    let s = schedule("America/New_York", &["daily 22:00-06:00"]);
    assert_eq!(
        s.state_at(ts("2026-11-01T06:30:00Z")),
        state(
            true,
            Some("2026-11-01T02:00:00Z"),
            Some("2026-11-01T11:00:00Z")
        )
    );
}

#[test]
fn berlin_working_hours_across_autumn_change() {
    // Fri 2026-10-23 17:00 CEST = 15:00Z; Mon 2026-10-26 08:00 CET = 07:00Z.
    let s = schedule("Europe/Berlin", &["Mon-Fri 08:00-17:00"]);
    assert_eq!(
        s.state_at(ts("2026-10-25T12:00:00Z")),
        state(
            false,
            Some("2026-10-23T15:00:00Z"),
            Some("2026-10-26T07:00:00Z")
        )
    );
}

#[test]
fn berlin_spring_gap_moves_opening_later() {
    // 2026-03-29 02:00 does not exist in Berlin; the window opens at 03:00 CEST (01:00Z) and
    // closes at 04:00 CEST (02:00Z).
    let s = schedule("Europe/Berlin", &["daily 02:00-04:00"]);
    assert_eq!(
        s.state_at(ts("2026-03-29T01:30:00Z")),
        state(
            true,
            Some("2026-03-29T01:00:00Z"),
            Some("2026-03-29T02:00:00Z")
        )
    );
    assert!(!s.state_at(ts("2026-03-29T00:59:59Z")).inside);
}

#[test]
fn window_crossing_midnight_belongs_to_its_opening_day() {
    let s = schedule("UTC", &["Fri 22:00-06:00"]);
    // 2026-11-27 is a Friday.
    assert!(s.state_at(ts("2026-11-28T05:59:59Z")).inside);
    assert!(!s.state_at(ts("2026-11-28T06:00:00Z")).inside);
    assert!(!s.state_at(ts("2026-11-26T23:00:00Z")).inside); // Thursday night
    assert_eq!(
        s.state_at(ts("2026-11-27T23:00:00Z")),
        state(
            true,
            Some("2026-11-27T22:00:00Z"),
            Some("2026-11-28T06:00:00Z")
        )
    );
}

#[test]
fn adjacent_windows_are_one_stretch() {
    let s = schedule("UTC", &["Mon 08:00-12:00", "Mon 12:00-17:00"]);
    // 2026-11-23 is a Monday.
    assert_eq!(
        s.state_at(ts("2026-11-23T11:00:00Z")),
        state(
            true,
            Some("2026-11-23T08:00:00Z"),
            Some("2026-11-23T17:00:00Z")
        )
    );
}

#[test]
fn full_coverage_never_changes() {
    let s = schedule(
        "America/New_York",
        &[
            "Mon-Fri 07:00-19:00",
            "daily 19:00-07:00",
            "weekends 00:00-24:00",
        ],
    );
    for at in [
        "2026-03-08T07:00:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-23T12:00:00Z",
    ] {
        assert_eq!(s.state_at(ts(at)), state(true, None, None), "{at}");
    }
}

#[test]
fn absolute_range_in_its_zone() {
    let s = schedule("America/New_York", &["2026-12-31 22:00 - 2027-01-01 02:00"]);
    // 22:00 EST = 03:00Z, 02:00 EST = 07:00Z.
    assert_eq!(
        s.state_at(ts("2026-12-01T00:00:00Z")),
        state(false, None, Some("2027-01-01T03:00:00Z"))
    );
    assert_eq!(
        s.state_at(ts("2027-01-01T05:00:00Z")),
        state(
            true,
            Some("2027-01-01T03:00:00Z"),
            Some("2027-01-01T07:00:00Z")
        )
    );
    assert_eq!(
        s.state_at(ts("2027-02-01T00:00:00Z")),
        state(false, Some("2027-01-01T07:00:00Z"), None)
    );
}

#[test]
fn whole_day_window_ends_at_next_midnight() {
    let s = schedule("Europe/Berlin", &["Sat 00:00-24:00"]);
    // Sat 2026-10-24 00:00 CEST = Fri 22:00Z; Sun 00:00 CEST = Sat 22:00Z.
    assert_eq!(
        s.state_at(ts("2026-10-24T12:00:00Z")),
        state(
            true,
            Some("2026-10-23T22:00:00Z"),
            Some("2026-10-24T22:00:00Z")
        )
    );
}
