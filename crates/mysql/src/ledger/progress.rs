//! Where an incident lock stands, for `curfew lock` and `unlock` waiting on an agent: recorded
//! in the audit log, the user's logins, its sessions, and the other locks that keep it out.

use curfew_backend::BackendError;
use mysql_async::Value;
use mysql_async::prelude::Queryable;

use super::store;
use crate::connect::Connection;

pub use curfew_backend::LockProgress;

impl Connection {
    /// Where lock `lock_id` on the user `name` stands.
    pub async fn lock_progress(
        &self,
        name: &str,
        lock_id: i64,
    ) -> Result<LockProgress, BackendError> {
        self.on_ledger(async |conn, target| {
            const WHAT: &str = "reading a lock's progress";
            let rows = store::locks(conn, target, "user = ?", vec![Value::from(name)]).await?;
            let announced: Option<mysql_async::Row> = conn
                .exec_first(
                    "SELECT announced_created, announced_released, released_at IS NOT NULL \
                     FROM `curfew`.`login_lock` WHERE id = ?",
                    (lock_id,),
                )
                .await
                .map_err(store::failed(target, WHAT))?;
            let announced = match announced {
                Some(row) => {
                    let created = store::flag(&row, 0, target, WHAT)?;
                    let released = store::flag(&row, 1, target, WHAT)?;
                    let is_released = store::flag(&row, 2, target, WHAT)?;
                    created && (released || !is_released)
                }
                None => false,
            };
            let can_login = store::accounts(conn, target)
                .await?
                .iter()
                .any(|a| a.user == name && !a.locked);
            let disabled_by_curfew = store::changes(conn, target)
                .await?
                .iter()
                .any(|c| c.user == name && !c.was_locked);
            let sessions: Option<i64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                     WHERE CONVERT(USER USING utf8mb4) = CONVERT(? USING utf8mb4) COLLATE utf8mb4_bin",
                    (name,),
                )
                .await
                .map_err(store::failed(target, WHAT))?;
            let remaining = rows
                .iter()
                .filter(|l| l.released_at.is_none() && l.id != lock_id)
                .map(|l| match &l.rule {
                    Some(rule) => format!("rule \"{rule}\""),
                    None => format!("incident lock {}", l.id),
                })
                .collect();
            Ok(LockProgress {
                announced,
                can_login,
                disabled_by_curfew,
                sessions: sessions.unwrap_or(0),
                remaining,
            })
        })
        .await
    }
}
