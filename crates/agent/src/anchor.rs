//! Anchoring the audit chain outside the log, so that a forger with write access to this host
//! cannot cut the log short or recompute its chain unnoticed (`curfew audit verify` compares
//! the log with the anchors).
//!
//! - Every connected worker (leader or not, dry run too; not on a standby, which is read-only
//!   and receives its primary's anchors by replication) stores the log's newest durable head
//!   (chain, seq, hash) in its target's anchor store (`curfew.anchor`, where curfew's role can
//!   only add heads with a higher seq), at most once per loop tick and only when the head moved.
//!   The round trip is bounded by [`ANCHOR_LIMIT`] and made where the loop would sleep; a
//!   failure is logged (once per kind of failure), told to observers (`AnchorFailed`) and
//!   retried after [`RETRY_AFTER`], never stopping enforcement.
//! - With `[audit] syslog = true`, each anchored head also goes to the local syslog
//!   (`/dev/log`), a one-line message `curfew-anchor chain=… seq=… hash=… target=…`.
//! - With `[audit] signing_key`, a signed `checkpoint` record of the head is written at most
//!   once a minute when records were written since the last one, and when the agent stops.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use curfew_audit::{CheckpointKey, Head};
use curfew_backend::{AnchorStore as _, Connector};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::anchored::Anchors;
use crate::events::AgentEvent;
use crate::shared::Shared;
use crate::worker::Worker;
use curfew_policy::LoadedPolicy;

/// Longest an anchor's round trip may take before it is given up for this tick.
pub(crate) const ANCHOR_LIMIT: Duration = Duration::from_millis(500);
/// How long after a failed anchor the next one is tried.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How often at most a checkpoint is signed while records are written.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// The local syslog socket.
const SYSLOG: &str = "/dev/log";

impl<C: Connector> Worker<C> {
    /// Anchor the log's newest head on `backend`'s target if it moved since the last anchor
    /// (see the module documentation). Never fails: a failure is logged and told.
    pub(crate) async fn anchor_head(&self, backend: &mut C::Backend) {
        let Some(head) = self.shared.audit.head() else {
            if self.shared.audit.chain_unknown() {
                let mut warned = self
                    .shared
                    .anchors
                    .unknown_chain_warned
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !*warned {
                    *warned = true;
                    tracing::warn!(target: "curfew::agent", "the audit chain cannot be anchored: the first line of {} is damaged, so the chain's identity is unknown (run curfew audit verify on it)", self.shared.audit.path().display());
                }
            }
            return;
        };
        // A standby is read-only; its primary's anchors reach it by replication.
        let standby = {
            let loaded = self.policy.borrow();
            loaded
                .policy
                .targets
                .iter()
                .any(|t| t.name == self.target && t.standby)
        };
        if standby {
            return;
        }
        let anchors = &self.shared.anchors;
        let mut state = anchors.get(&self.target);
        if state.anchored.as_ref() == Some(&(head.chain.clone(), head.seq))
            || state.retry_at.is_some_and(|at| Instant::now() < at)
        {
            return;
        }
        let result = tokio::time::timeout(
            ANCHOR_LIMIT,
            backend.anchor(&head.chain, head.seq, &head.hash),
        )
        .await;
        let error = match result {
            Ok(Ok(())) => {
                if state.failure.take().is_some() {
                    tracing::info!(target: "curfew::agent", "target \"{}\": the audit chain is anchored again (seq {})", self.target, head.seq);
                }
                state.anchored = Some((head.chain.clone(), head.seq));
                state.retry_at = None;
                anchors.set(&self.target, state);
                let policy = self.policy.borrow().clone();
                if policy.policy.audit.syslog {
                    to_syslog(anchors, &head, &self.target);
                }
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "target \"{}\": anchoring the audit chain got no reply within {} ms",
                self.target,
                ANCHOR_LIMIT.as_millis()
            ),
        };
        if state.failure.as_ref() != Some(&error) {
            tracing::warn!(target: "curfew::agent", "the audit chain is not anchored on target \"{}\" (run curfew init there if the anchor store is missing); enforcement goes on: {error}", self.target);
        }
        self.shared.emit(AgentEvent::AnchorFailed {
            target: self.target.clone(),
            error: error.clone(),
        });
        state.failure = Some(error);
        state.retry_at = Some(Instant::now() + RETRY_AFTER);
        anchors.set(&self.target, state);
    }
}

/// Send one anchor to the local syslog; an unreachable syslog is warned about once.
fn to_syslog(anchors: &Anchors, head: &Head, target: &str) {
    let message = syslog_line(head, target, &jiff::Timestamp::now());
    let sent = UnixDatagram::unbound().and_then(|socket| {
        socket.connect(Path::new(SYSLOG))?;
        socket.send(message.as_bytes())
    });
    if let Err(e) = sent {
        let mut warned = anchors
            .syslog_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*warned {
            *warned = true;
            tracing::warn!(target: "curfew::agent", "[audit] syslog: cannot send anchors to {SYSLOG} ({e}); they are still kept on the targets");
        }
    }
}

/// An RFC 3164 line, facility auth (4), severity info (6): `<38>`.
fn syslog_line(head: &Head, target: &str, now: &jiff::Timestamp) -> String {
    let stamp = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%b %e %H:%M:%S");
    format!(
        "<38>{stamp} curfew[{}]: curfew-anchor chain={} seq={} hash={} target={}",
        std::process::id(),
        head.chain,
        head.seq,
        head.hash,
        curfew_policy::visible(target)
    )
}

/// While the agent runs: a signed checkpoint of the head at most once a minute when records
/// were written since the last one (`[audit] signing_key`; the key is read again when the
/// policy changes). Returns the key in force at `stop`, for the last checkpoint.
pub(crate) async fn checkpoints(
    shared: std::sync::Arc<Shared>,
    mut policy: watch::Receiver<std::sync::Arc<LoadedPolicy>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut key: Option<(String, Option<CheckpointKey>)> = None;
    loop {
        let path = policy.borrow_and_update().policy.audit.signing_key.clone();
        if key.as_ref().map(|k| &k.0) != path.as_ref() {
            key = path.map(|p| {
                let loaded = load_key(&p);
                (p, loaded)
            });
        }
        if let Some((_, Some(signing))) = &key {
            checkpoint(&shared, signing).await;
        }
        tokio::select! {
            () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = policy.changed() => {}
            _ = stop.changed() => return,
        }
    }
}

/// The signing key at `path`, or `None` (logged).
pub(crate) fn load_key(path: &str) -> Option<CheckpointKey> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(target: "curfew::agent", "[audit] signing_key {path} is readable by others (mode {:o}): whoever reads it can sign a forged chain; chmod 600 it", meta.permissions().mode() & 0o777);
    }
    match CheckpointKey::load(Path::new(path)) {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::error!(target: "curfew::agent", "[audit] signing_key: {e}; no checkpoint is signed");
            None
        }
    }
}

/// Write a signed checkpoint of the head, unless the head is a checkpoint already.
pub(crate) async fn checkpoint(shared: &Shared, key: &CheckpointKey) {
    let Some(head) = shared.audit.head() else {
        return;
    };
    let last = shared
        .checkpointed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if last.as_ref() == Some(&head) {
        return;
    }
    let record = key.checkpoint(&head, jiff::Timestamp::now());
    if let Ok(appended) = crate::records::write(shared, record).await {
        *shared
            .checkpointed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Head {
            chain: head.chain,
            seq: appended.seq,
            hash: appended.hash,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syslog_line_names_the_head() {
        let head = Head {
            chain: "a".repeat(64),
            seq: 42,
            hash: "b".repeat(64),
        };
        let now: jiff::Timestamp = "2026-11-03T09:05:07Z".parse().unwrap();
        let line = syslog_line(&head, "pri\nmary", &now);
        assert!(line.starts_with("<38>Nov  3 09:05:07 curfew["), "{line}");
        assert!(
            line.ends_with(&format!(
                "]: curfew-anchor chain={} seq=42 hash={} target=pri\\nmary",
                "a".repeat(64),
                "b".repeat(64)
            )),
            "{line}"
        );
    }
}
