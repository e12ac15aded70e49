//! `curfew verify` as a Markdown document.

use std::fmt::Write as _;

use curfew_policy::{Limit, LoadedPolicy};
use jiff::Timestamp;

use crate::table::{md_cell as cell, md_header};
use curfew_verify::live::Verified;

pub(super) fn markdown(
    verified: &[Verified],
    loaded: &LoadedPolicy,
    at: Timestamp,
    max_wait: Limit,
) -> String {
    let mut md = String::new();
    let at = at.round(jiff::Unit::Second).unwrap_or(at);
    for v in verified {
        let _ = writeln!(
            md,
            "# curfew verify: target \"{}\"\n\n{} · policy `{}` (sha256 `{}`) · leader: {} · started {at} · --max-wait {max_wait}\n\n**{}.**\n\nLIVE PASS: the running agent did it to a canary session or role, seen here. EVALUATED: the engine's verdicts at the rule's boundaries agree with the policy — not a live proof. NOT TESTED: nothing was tested, for the reason given. FAIL: what went wrong, or why the test could not run.\n",
            v.target,
            v.server.as_deref().unwrap_or("not reached"),
            loaded.source,
            loaded.sha256.get(..12).unwrap_or(&loaded.sha256),
            v.agent
                .as_deref()
                .map_or_else(|| "none".to_owned(), |a| format!("`{a}`")),
            curfew_verify::summary(
                &v.results
                    .iter()
                    .chain(&v.mechanisms)
                    .cloned()
                    .collect::<Vec<_>>()
            ),
        );
        if v.gateway.is_some() {
            let _ = writeln!(md, "## Enforced by the agent (direct connections)\n");
        }
        results_table(&mut md, v.results.iter().chain(&v.mechanisms));
        for r in v.results.iter().filter(|r| !r.probes.is_empty()) {
            let _ = writeln!(
                md,
                "\n## Rule \"{}\": the engine's verdicts (as `curfew plan --at` would show them)\n",
                r.rule
            );
            md.push_str(&md_header(&["At", "Expected", "Engine", ""]));
            for p in &r.probes {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    cell(&p.at),
                    p.expected,
                    cell(&p.verdict),
                    if p.ok {
                        "as expected"
                    } else {
                        "**NOT AS EXPECTED**"
                    }
                );
            }
        }
        if let Some(g) = &v.gateway {
            let _ = writeln!(
                md,
                "\n## Enforced by the curfew gateway (canaries through {}, {})\n\n**{}.** A rule passes only when the client received the gateway's FATAL (its SQLSTATE and the rule in its text) at the expected moment; a connection just closed, or ended by the server's own message, fails.\n",
                g.address,
                g.connection,
                curfew_verify::summary(&g.results)
            );
            results_table(&mut md, &g.results);
        }
        let cleanup: Vec<&String> = v
            .cleanup
            .iter()
            .chain(v.gateway.iter().flat_map(|g| &g.cleanup))
            .collect();
        if !cleanup.is_empty() {
            let _ = writeln!(md, "\n## Left behind\n");
            for c in cleanup {
                let _ = writeln!(md, "- {c}");
            }
        }
        let _ = writeln!(md);
    }
    md
}

/// The results as a Markdown table: status, rule, condition, method, evidence.
fn results_table<'a>(
    md: &mut String,
    results: impl IntoIterator<Item = &'a curfew_verify::RuleResult>,
) {
    md.push_str(&md_header(&[
        "Status",
        "Rule",
        "Condition",
        "Method",
        "Evidence",
    ]));
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&r.status_line),
            cell(&r.rule),
            r.condition,
            r.method.label(),
            cell(&r.evidence)
        );
    }
}
