//! `violations = { sqlstates = [...], count = N, within = "10m", per = "session" }`: the table
//! of a `violations` rule, read and checked.

use super::duration;
use super::reader::TableReader;
use crate::diagnostic::Collector;
use crate::model::{Violations, ViolationsPer};

/// The longest `within` of a `per = "role"` rule: what the shared count keeps.
pub(super) const MAX_SHARED_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

pub(super) const VIOLATION_KEYS: &[&str] = &["sqlstates", "count", "within", "per"];

pub(super) fn violations(c: &mut Collector<'_>, r: &TableReader<'_, '_>) -> Option<Violations> {
    let (table, span) = r.table(
        c,
        "violations",
        "a table like { sqlstates = [\"42501\"], count = 3, within = \"10m\" }",
    )?;
    let v = TableReader::new(
        table,
        format!("`violations` of {}", r.context),
        VIOLATION_KEYS,
    );
    let sqlstates = v.string_list(
        c,
        "sqlstates",
        "five-character SQLSTATE codes like \"42501\"",
    );
    let count = v.integer(c, "count", "a whole number, at least 1");
    let within = duration(c, &v, "within");
    for (key, missing) in [
        ("sqlstates", v.get("sqlstates").is_none()),
        ("count", v.get("count").is_none()),
        ("within", v.get("within").is_none()),
    ] {
        if missing {
            c.error(
                span.clone(),
                format!(
                    "{} has no `{key}`; expected {{ sqlstates = [\"42501\"], count = 3, within = \"10m\" }}",
                    v.context
                ),
            );
        }
    }
    let mut codes = Vec::new();
    if let Some(list) = &sqlstates {
        if list.value.is_empty() {
            c.error(
                list.span.clone(),
                format!("`sqlstates` in {} is empty", v.context),
            );
        }
        for code in &list.value {
            let valid = code.value.len() == 5
                && code
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
            if valid {
                codes.push(code.value.clone());
            } else {
                c.error(
                    code.span.clone(),
                    format!(
                        "\"{}\" in {} is not a SQLSTATE; expected five digits or capital letters like \"42501\"",
                        code.value, v.context
                    ),
                );
            }
        }
    }
    let count = count.and_then(|n| match u32::try_from(n.value) {
        Ok(v) if v >= 1 => Some(v),
        _ => {
            c.error(
                n.span,
                format!(
                    "`count` in {} must be at least 1, not {}",
                    v.context, n.value
                ),
            );
            None
        }
    });
    let per = match v.string(c, "per", "\"session\" or \"role\"") {
        None => ViolationsPer::Session,
        Some(p) if p.value == "session" => ViolationsPer::Session,
        Some(p) if p.value == "role" => ViolationsPer::Role,
        Some(p) => {
            c.error(
                p.span,
                format!(
                    "`per` in {} must be \"session\" or \"role\", not \"{}\"",
                    v.context, p.value
                ),
            );
            ViolationsPer::Session
        }
    };
    // The shared count (curfew.count_gateway_violation) keeps a week of errors at most: a
    // longer window would be refused by the database on every error.
    if per == ViolationsPer::Role
        && let Some(w) = &within
        && w.value.get() > MAX_SHARED_WINDOW
    {
        c.error(
            w.span.clone(),
            format!(
                "`within` in {} is at most 7d with per = \"role\" (the shared count across gateways keeps a week of errors)",
                v.context
            ),
        );
    }
    v.finish(c);
    Some(Violations {
        sqlstates: codes,
        count: count?,
        within: within?.value,
        per,
    })
}
