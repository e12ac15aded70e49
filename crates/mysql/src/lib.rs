//! curfew's MariaDB/MySQL adapter: its URLs (`mariadb://`, `mysql://`; TLS modes as
//! PostgreSQL's `sslmode`, `password_file`, no password in the URL), connect with the privilege
//! check naming the exact `GRANT` missing, sessions from the process list joined with InnoDB's
//! transactions on the server's clock, and `KILL CONNECTION` re-checked on the server
//! immediately before. `curfew-backend`'s [`Backend`](curfew_backend::Backend) and
//! [`Connector`](curfew_backend::Connector) are implemented: sessions are read and ended, one
//! agent leads with a `GET_LOCK` leader lock and every kill is fenced on it; the audit chain's
//! head is anchored in `curfew`.`anchor` ([`anchor`]); login locks are
//! `ALTER USER ... ACCOUNT LOCK` kept through a ledger ([`ledger`]).

pub mod anchor;
mod anchor_read;
mod backend;
mod canary;
mod connect;
mod error;
mod grants;
mod install;
mod kill;
mod leader;
mod leader_lock;
pub mod ledger;
mod ledger_conn;
mod names;
mod row;
mod secret;
mod seen;
mod snapshot;
mod standalone;
mod target;
mod url;

pub use anchor::{AnchorOrigin, AnchorRow, anchor_install_sql};
pub use anchor_read::{AnchorReadError, TargetAnchorRows, read_target_anchors};
pub use canary::{
    CanarySeen, SWITCH_OFF_WAIT_TIMEOUT, canary_seen, connect_canary, create_canary_account,
    drop_canary_account, native_password_hash, read_only, session_exists, switch_off_statement,
};
pub use connect::{Connected, Connection, PROGRAM_NAME, ProgramNames, ServerInfo, connect};
pub use error::MysqlError;
pub use grants::{Flavor, account_name, global_privileges, missing_grants, split_account};
pub use install::{Installed, install_sql, keeps_login_locks};
pub use kill::{
    KillAnswer, KillRequest, Verdict, fenced_kill_block_sql, kill_block_sql, parse_verdicts, signal,
};
pub use leader_lock::{LEADER_LOCK, Leadership, announcement_locks, lock_names, read_announcement};
pub use ledger::LockProgress;
pub use names::{quote_identifier, string_literal};
pub use secret::{Password, PasswordFileError, read_password_file};
pub use seen::{SAME_BOOT_TOLERANCE, SeenSession, same_boot};
pub use snapshot::{ProcessRow, client_address, client_origin, curfew_connection, snapshot_sql};
pub use target::{MysqlTarget, TargetUrlError};
pub use url::{
    DEFAULT_PORT, Endpoint, MYSQL_URLS, MysqlUrl, MysqlUrls, TlsMode, UrlError, is_mysql_url,
};
