//! curfew's PostgreSQL adapter: connect from a libpq-style URL (TLS, password file), check that
//! the server and role are fit, read the live sessions on the server's clock, and end a session
//! with a guard that re-checks it in the same statement; elect one leader among replicas.

mod anchor;
mod anchor_read;
mod backend;
mod canary;
mod canary_gateway;
mod connect;
mod error;
mod facts;
mod fence;
mod groups;
mod leader;
mod ledger;
mod lock_wait;
mod names;
mod policy_target;
mod queries;
mod secret;
mod snapshot;
mod sql;
mod target;
mod terminate;
mod tls;
mod url;

pub use anchor::{ANCHOR_FUNCTION, AnchorOrigin, AnchorRow};
pub use anchor_read::{AnchorReadError, TargetAnchorRows, read_target_anchors};
pub use canary::{CanarySession, random_hex};
pub use canary_gateway::{Ended, GatewaySession, Received, RunError};
pub use connect::{
    Connected, Connection, MINIMUM_VERSION_NUM, ServerInfo, connect, connect_to_inspect, open_as,
};
pub use curfew_backend::Announcement;
pub use curfew_backend::{IdleState, Outcome, Signal, Snapshot};
pub use error::PgError;
pub use facts::{CHECKED_SETTINGS, ClockReading, HbaRule, RoleFacts, ServerFacts, Setting};
pub use fence::{LEADER_KEY, Leadership};
pub use leader::LeaderInfo;
pub use ledger::{
    AGENT_FUNCTIONS, CLAIM_LIFETIME_SECONDS, DedicatedFacts, DefinerFacts, FaultHook,
    FunctionFacts, GATEWAY_AUTH_OWNER, GATEWAY_CLAIM_QUERY, GATEWAY_REGISTER_FUNCTION,
    GATEWAY_REGISTER_QUERY, GATEWAY_REGISTRY_OWNER, GATEWAY_RELEASE_QUERY, GATEWAY_SECRET_FUNCTION,
    GATEWAY_SECRET_QUERY, GATEWAY_SESSIONS_TABLE, GATEWAY_VIOLATION_QUERY, GatewayAuth,
    GatewayAuthInstalled, GatewayInstallFacts, GatewayRegistryInstalled, Installed, InstalledRole,
    LEDGER_VERSION, LedgerFacts, LedgerProblem, LedgerStatus, LockProgress, LockRow, LockedRole,
    LoginChange, MAX_GATEWAY_ID_CHARS, MAX_VIOLATION_RULE_CHARS, MAX_VIOLATION_WINDOW_SECONDS,
    NOT_A_GATEWAY_BACKEND, OWNER_ROLE, RoleInfo,
};
pub use names::quote_identifier;
pub use policy_target::PolicyTarget;
pub use secret::{Password, PasswordFileError, read_password_file};
pub use target::{TargetSpec, TargetUrlError};
pub use terminate::Guard;
pub use tls::{TlsError, client_config};
pub use url::{ConnectionUrl, Host, POSTGRES_URLS, PostgresUrls, SslMode, UrlError};
