//! curfew's policy: the file in which an organization defines the conditions that end a database
//! session (NIST SP 800-171 3.1.11[a]), and the pure engine that decides, for a set of live
//! sessions and an instant, which sessions end, when, and why.
//!
//! This crate does no I/O (except [`LoadedPolicy::from_file`], which reads the policy file),
//! starts no runtime and never reads a clock: `now` is always a parameter, and time zones come
//! from a database the caller passes in.
//!
//! ```
//! use curfew_policy::{parse_policy, evaluate};
//!
//! let text = r#"
//! [[rule]]
//! name = "inactivity"
//! idle = "15m"
//! "#;
//! let parsed = parse_policy("curfew.toml", text, jiff::tz::db()).unwrap();
//! let plan = evaluate(&parsed.policy, &[], "2026-11-23T12:00:00Z".parse().unwrap());
//! assert!(plan.terminations.is_empty());
//! ```

pub mod controls;
mod diagnostic;
mod duration;
mod engine;
mod exempt;
pub mod explain;
mod gateway;
mod loaded;
pub mod login_refusal;
mod model;
mod overrides;
mod parse;
mod pattern;
mod scope;
mod session;
pub mod synthetic;
mod target_url;
mod visible;
mod window;

pub use diagnostic::{Diagnostic, PolicyErrors, Severity};
pub use duration::{DurationError, Limit, format_age};
pub use engine::{
    Admission, Cause, Decision, Engine, ErrorVerdict, IncidentLock, LOGIN_LOCK_RULE, Login,
    NextEvent, Plan, Refusal, RoleSession, Verdict, ViolationCounter, admit, assess, assess_with,
    evaluate, next_event, next_report,
};
pub use exempt::{ExemptKeys, Exemption};
pub use loaded::{LoadError, LoadedPolicy, Need, require};
pub use model::{
    Action, AgentSettings, AuditSettings, CANARY_EDGE_MARK, CANARY_MARK, Condition,
    DEFAULT_GATEWAY_LISTEN, ExemptBy, Exemptions, Gateway, GatewayTls, LoginWindow, Missing,
    NotifySettings, Policy, PolicyMeta, Rule, RuleId, Scope, Target, VerifySettings, Violations,
    ViolationsPer, canary_edge, canary_rule,
};
pub use overrides::{EdgeOverride, Overrides};
pub use parse::{Parsed, parse_policy, parse_policy_with};
pub use pattern::{AddressBlock, AddressError, Glob};
pub use session::{BackendType, ClientAddr, Names, Session, SessionKey, SessionState};
pub use target_url::{AdapterLimits, TargetUrl, UrlValidator, ValidUrl};
pub use visible::{visible, visible_lines};
pub use window::{DaySet, Schedule, Window, WindowError, WindowKind, WindowState};
