//! The login-lock ledger's own connection. `curfew-backend`'s ledger calls take `&self`, and a
//! MariaDB connection answers one statement at a time through `&mut`: the ledger gets a second
//! connection of the same account (the options that connected the first), opened at its first
//! use, behind a lock, dropped when it is lost (the next use opens a new one, which first
//! reconciles any step a lost connection or a crash left half done).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::MysqlError;

/// The ledger's connection, opened on demand.
pub(crate) struct LedgerConn {
    target: String,
    /// Holds the password: never printed (see the `Debug` impl).
    opts: Opts,
    limit: Duration,
    conn: Mutex<Option<Conn>>,
    /// The open connection's id on the server (0: none yet), so snapshots leave it out even
    /// where program names are unknown (MariaDB without `performance_schema`).
    id: AtomicU64,
    /// The ledger problem last found (the `GRANT`s missing, in words), for
    /// `login_change_problem`, which cannot ask the server.
    pub(crate) problem: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for LedgerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerConn")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The ledger's open connection, and whether it was opened just now (and so must reconcile
/// interrupted steps before anything else).
pub(crate) struct LedgerSession<'a> {
    guard: MutexGuard<'a, Option<Conn>>,
    /// Opened by this call.
    pub(crate) fresh: bool,
}

impl LedgerSession<'_> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        // Set by `LedgerConn::session` before the session is handed out.
        self.guard
            .as_mut()
            .expect("the ledger's connection is open")
    }

    /// Forget the connection (after it was lost, or a step failed half way): the next use
    /// opens a new one and reconciles.
    pub(crate) fn discard(&mut self) {
        *self.guard = None;
    }
}

impl LedgerConn {
    pub(crate) fn new(target: &str, opts: OptsBuilder, limit: Duration) -> LedgerConn {
        LedgerConn {
            target: target.to_owned(),
            opts: Opts::from(opts),
            limit,
            conn: Mutex::new(None),
            id: AtomicU64::new(0),
            problem: std::sync::Mutex::new(None),
        }
    }

    /// The server's id of the ledger's connection, if one was opened (it may have been lost
    /// since: an id a later session reuses on the same boot is curfew's account's anyway).
    pub(crate) fn connection_id(&self) -> Option<u64> {
        Some(self.id.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// The ledger's connection, opened now if needed.
    pub(crate) async fn session(&self) -> Result<LedgerSession<'_>, MysqlError> {
        let mut guard = self.conn.lock().await;
        let fresh = guard.is_none();
        if fresh {
            let conn = match tokio::time::timeout(self.limit, Conn::new(self.opts.clone())).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(source)) => {
                    return Err(MysqlError::query(
                        &self.target,
                        "opening the login-lock ledger's connection",
                        source,
                    ));
                }
                Err(_) => {
                    return Err(MysqlError::ConnectTimeout {
                        target: self.target.clone(),
                        url: "(the ledger's connection)".to_owned(),
                        seconds: self.limit.as_secs(),
                    });
                }
            };
            self.id.store(u64::from(conn.id()), Ordering::Relaxed);
            *guard = Some(conn);
        }
        Ok(LedgerSession { guard, fresh })
    }
}
