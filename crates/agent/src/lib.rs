//! curfew's enforcement loop. For every target, concurrently: read the sessions (on the
//! server's clock), let the engine decide, end what must end (guarded, with an intent record
//! before and an outcome record after), then sleep until the next deadline or the discovery
//! interval, whichever comes first — so a session ends within milliseconds of its deadline,
//! not at the next poll.

mod act;
mod anchor;
mod anchored;
mod campaign;
mod describe;
mod ending;
mod events;
mod fault;
mod gateway_grace;
mod heartbeat;
mod keepers;
mod leadership;
mod locked;
mod locks;
mod notify;
mod once;
mod plan;
mod records;
mod reload;
mod shared;
mod stand_in;
mod supervisor;
mod tally;
mod warn;
mod worker;

pub use curfew_backend::{Backend, Connector, GatewayClient};
pub use curfew_notify::{ATTEMPT_TIMEOUT, ATTEMPTS, Hook, WebhookUrl, redact_url, split_command};
pub use events::{AgentEvent, LoginLock, RecordedEvent};
pub use gateway_grace::gateway_enforces;
pub use locked::{Locked, LockedSet};
pub use locks::covered_roles;
pub use plan::{LoginWindowPlan, judge_sessions, login_windows};
pub use records::{recover as recover_audit, write_to as write_audit};
pub use reload::Reload;
pub use shared::AgentOptions;
pub use stand_in::{StandIn, StandInError};
pub use supervisor::{AgentError, run};
pub use tally::{AuditTally, TallyKey};
