//! How the binary prints the steps of `curfew_ops`' long commands: each as the line it has
//! always been, on the stream it has always used.

use curfew_ops::{AfterLift, Step, Warning};
use curfew_policy::{visible, visible_lines};

use crate::exit::write_stdout;

/// Print one step (a `curfew_ops::Progress`).
pub(crate) fn print(step: Step) -> std::io::Result<()> {
    match step {
        Step::Warning(Warning::Connection(warning)) => eprintln!("curfew: warning: {warning}"),
        Step::Warning(Warning::ExemptRoleLocked { role }) => eprintln!(
            "curfew: warning: role \"{}\" is exempt in the policy; an incident lock overrides the exemption",
            visible(&role)
        ),
        Step::Installed {
            target,
            agent_role,
            schema_existed,
            owner_attributes,
        } => text(&format!(
            "target {target}: the curfew ledger (schema curfew) {}; its functions belong to {} ({owner_attributes}), and role \"{agent_role}\" may read the ledger and execute them\n",
            if schema_existed {
                "was there and is up to date"
            } else {
                "was created"
            },
            curfew_postgres::OWNER_ROLE,
        ))?,
        Step::GatewayAuthInstalled {
            target,
            gateway_role,
            serve_members_of,
            serve_superusers,
        } => text(&format!(
            "target {target}: the gateway's auth function curfew.gateway_secret is installed; only role \"{}\" may execute it; it serves {}{}\n",
            visible(&gateway_role),
            serve_members_of.map_or_else(
                || "every login role".to_owned(),
                |r| format!("the members of role \"{}\"", visible(&r))
            ),
            if serve_superusers {
                ", superusers included"
            } else {
                ", superusers excepted"
            },
        ))?,
        Step::GatewayRegistryInstalled {
            target,
            gateway_role,
            agent_role,
        } => text(&format!(
            "target {target}: the gateway session registry curfew.gateway_sessions is installed; only role \"{}\" may register sessions, role \"{}\" and pg_read_all_stats may read it and the view curfew.sessions\n",
            visible(&gateway_role),
            visible(&agent_role),
        ))?,
        Step::Note { target, note } => eprintln!("curfew: note: target {target}: {note}"),
        Step::Recorded {
            target,
            role,
            lock_id,
            by,
            until,
            sessions,
        } => text(&format!(
            "target {target}: lock on role \"{}\" recorded (lock {lock_id}, by {by}{}); {sessions} session{} open; waiting for the agent...\n",
            visible(&role),
            until.map(|u| format!(", until {u}")).unwrap_or_default(),
            plural(sessions)
        ))?,
        Step::StandInStarted { targets, audit_log } => write_stdout(&format!(
            "no curfew agent leads {}: this command applies the change itself, recorded in {}\n",
            targets
                .iter()
                .map(|t| format!("target {t}"))
                .collect::<Vec<_>>()
                .join(", "),
            audit_log.display()
        ))?,
        Step::Applied {
            target,
            role,
            disabled_by_curfew,
            sessions_ended,
        } => text(&format!(
            "target {target}: role \"{}\" is locked out: {}, {sessions_ended} session{} ended\n",
            visible(&role),
            if disabled_by_curfew {
                "login disabled"
            } else {
                "login was already disabled before (it will stay so)"
            },
            plural(sessions_ended)
        ))?,
        Step::NotApplied { target, wait } => eprintln!(
            "curfew: target {target}: the lock is recorded, but no agent applied it within {wait}: is `curfew agent` running against this target?"
        ),
        Step::NoIncidentLock { target, role } => text(&format!(
            "target {target}: role \"{}\" has no incident lock\n",
            visible(&role)
        ))?,
        Step::Lifted {
            target,
            role,
            login,
        } => text(&match login {
            AfterLift::StillLockedBy(remaining) => format!(
                "target {target}: incident lock lifted, but role \"{}\" stays locked by: {}\n",
                visible(&role),
                remaining.join("; ")
            ),
            AfterLift::CanLogIn => format!(
                "target {target}: incident lock lifted; role \"{}\" can log in again\n",
                visible(&role)
            ),
            AfterLift::StaysNologin => format!(
                "target {target}: incident lock lifted; role \"{}\" was NOLOGIN before curfew locked it and stays so\n",
                visible(&role)
            ),
        })?,
        Step::NotRestored { target, wait } => eprintln!(
            "curfew: target {target}: the lock is released in the ledger, but no agent restored the login within {wait}"
        ),
    }
    Ok(())
}

/// Human-readable text, as `exit::out_text` writes it.
fn text(text: &str) -> std::io::Result<()> {
    write_stdout(&visible_lines(text))
}

fn plural(count: i64) -> &'static str {
    if count == 1 { "" } else { "s" }
}
