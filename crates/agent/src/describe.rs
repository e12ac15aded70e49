//! How a session is named in log lines.

use curfew_policy::Session;

/// "pid 4242 (analyst_kim on sales, psql)".
pub(crate) fn describe(s: &Session) -> String {
    let app = if s.application.is_empty() {
        String::new()
    } else {
        format!(", {}", s.application)
    };
    // Names come from the server, set by whoever created them: shown, never obeyed.
    curfew_policy::visible(&format!(
        "pid {} ({} on {}{app})",
        s.pid, s.role, s.database
    ))
    .into_owned()
}
