//! The connector the agent is given: a policy target made into a [`TargetSpec`], connecting
//! through [`crate::connect`].

use curfew_backend::{BackendError, Connector, ErrorKind};

use crate::connect::Connection;
use crate::target::{TargetSpec, TargetUrlError};

/// The agent's connector for a policy target: its [`TargetSpec`], or why its URL could not be
/// read, which each connection attempt then reports (a policy loaded with
/// [`POSTGRES_URLS`](crate::POSTGRES_URLS) never has such a target).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTarget(Result<TargetSpec, TargetUrlError>);

impl PolicyTarget {
    /// The connector for `target` (the agent takes this function).
    pub fn from_policy(target: &curfew_policy::Target) -> PolicyTarget {
        PolicyTarget(TargetSpec::from_policy(target))
    }
}

impl Connector for PolicyTarget {
    type Backend = Connection;

    async fn connect(&self) -> Result<(Connection, Vec<String>), BackendError> {
        match &self.0 {
            Ok(spec) => spec.connect().await,
            Err(e) => Err(BackendError::new(
                ErrorKind::Refused { code: None },
                e.clone(),
            )),
        }
    }
}
