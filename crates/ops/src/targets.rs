//! Choosing and reaching a policy's targets.

use curfew_policy::{LoadedPolicy, Target};
use curfew_postgres::{Connection, TargetSpec};

use crate::error::OpsError;
use crate::step::{Step, Warning};

/// A caller's sink for [`Step`]s: it prints each one; a failure to print stops the command.
pub trait Progress {
    /// Report one step.
    fn step(&mut self, step: Step) -> std::io::Result<()>;
}

impl<F: FnMut(Step) -> std::io::Result<()>> Progress for F {
    fn step(&mut self, step: Step) -> std::io::Result<()> {
        self(step)
    }
}

/// Report `step` to `progress`, a failure to print as an [`OpsError::Output`].
pub(crate) fn report(progress: &mut impl Progress, step: Step) -> Result<(), OpsError> {
    progress.step(step).map_err(OpsError::Output)
}

/// The primary targets selected (locks live on primaries; standbys follow them): all, or only
/// the one named `only`.
pub fn primaries<'p>(
    loaded: &'p LoadedPolicy,
    only: Option<&str>,
) -> Result<Vec<&'p Target>, OpsError> {
    let chosen: Vec<_> = loaded
        .policy
        .targets
        .iter()
        .filter(|t| !t.standby && only.is_none_or(|n| t.name == n))
        .collect();
    if chosen.is_empty() {
        return Err(OpsError::NoPrimaryTarget {
            policy: loaded.source.clone(),
            only: only.map(str::to_owned),
        });
    }
    Ok(chosen)
}

/// Connect to `target`, reporting the connection's warnings.
pub(crate) async fn open(
    target: &Target,
    progress: &mut impl Progress,
) -> Result<Connection, OpsError> {
    let connected = curfew_postgres::connect(&TargetSpec::from_policy(target)?).await?;
    for warning in connected.warnings {
        report(progress, Step::Warning(Warning::Connection(warning)))?;
    }
    Ok(connected.connection)
}
