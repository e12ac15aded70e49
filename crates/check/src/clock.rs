//! Clock evidence: session ages are measured on the database server's clock, audit timestamps
//! on the host that writes the log. An offset between the two makes the log disagree with the
//! ages it records, so it is measured and judged.

use std::time::Duration;

use curfew_postgres::ClockReading;

use crate::{Finding, Status};

/// Judge the offset between this host's clock and the server's against `max`; `read_with`
/// names the server's clock function (`clock_timestamp()`, `NOW(6)`).
pub(crate) fn finding(c: &ClockReading, read_with: &str, max: Duration) -> Finding {
    let offset = c.offset.unsigned_abs();
    // `offset` is the server's clock minus this host's: positive means this host is behind.
    let relation = if offset.is_zero() {
        "agrees with the server's clock".to_owned()
    } else if c.offset.is_positive() {
        format!("is {} behind the server's clock", millis(offset))
    } else {
        format!("is {} ahead of the server's clock", millis(offset))
    };
    let observed = format!(
        "this host's clock {relation} (server {read_with} against the midpoint of a {} round trip, so within ±{}). Session ages come from the server's clock; audit timestamps from the clock of the host that writes the log",
        millis(c.round_trip),
        millis(c.round_trip / 2)
    );
    let failed = offset > max;
    Finding {
        id: "CURFEW-CLOCK",
        title: "This host's clock agrees with the server's",
        requirement: "curfew evidence: audit timestamps (this host) and session ages (the server) tell one story",
        status: if failed { Status::Fail } else { Status::Pass },
        observed,
        expected: format!("an offset of at most {} (--max-clock-offset)", millis(max)),
        why: if failed {
            format!(
                "the clocks differ by {}, more than {}: a termination's audit timestamp and the session age it records disagree by that much",
                millis(offset),
                millis(max)
            )
        } else {
            String::new()
        },
        fix: if failed {
            "Synchronize this host and the database server with NTP (chrony or systemd-timesyncd) and check again. Run `curfew check` on the agent's host: the offset that matters is the agent's.".to_owned()
        } else {
            String::new()
        },
    }
}

/// A duration in milliseconds or seconds, as people read it.
fn millis(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
