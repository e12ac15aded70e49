//! The gateway's audit records, written through `curfew-audit`'s writer (fsync'd, hash-chained)
//! by one thread of their own, so a slow disk never stalls a session's task.
//!
//! Records queued together are written with one fsync. Failed logins are not written one by
//! one (an unauthenticated client could make the gateway fsync without bound): they are
//! counted by cause and written as one `logins_failed` record per [`FAILED_LOGINS_PERIOD`]
//! in which there were any, and at the stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use curfew_audit::{AuditLog, Event, Record, SessionInfo};
use jiff::Timestamp;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::admission::RefusedLogin;
use crate::enforce::{CountedBy, PolicyEnd, Warned, WarnedOf};
use crate::metrics::Metrics;

/// How often counted failed logins are written as one record.
pub const FAILED_LOGINS_PERIOD: Duration = Duration::from_secs(60);

/// Records waiting for the writer; a session waits (it is authenticated: the queue bounds
/// memory, not who may write).
const QUEUE: usize = 1024;

/// The most records written with one fsync.
const BATCH: usize = 256;

enum Message {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
}

/// Failed logins since the last `logins_failed` record.
#[derive(Debug, Default)]
struct FailedLogins {
    since: Option<Timestamp>,
    by_cause: BTreeMap<&'static str, u64>,
}

/// The gateway's audit log: a queue to its writer thread, and the failed logins being counted.
pub(crate) struct AuditTrail {
    queue: mpsc::Sender<Message>,
    /// Another handle on the writer, for the health check.
    log: AuditLog,
    target: String,
    failed: Mutex<FailedLogins>,
}

/// A session as its audit records describe it.
pub(crate) struct SessionFacts<'a> {
    pub(crate) peer: SocketAddr,
    pub(crate) role: &'a str,
    pub(crate) database: &'a str,
    pub(crate) application: &'a str,
    pub(crate) pid: i32,
    pub(crate) tls: bool,
    pub(crate) started: Timestamp,
}

impl SessionFacts<'_> {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            pid: i64::from(self.pid),
            // The gateway's login time: the backend started a moment before it.
            backend_start: self.started,
            role: self.role.to_owned(),
            database: self.database.to_owned(),
            client_addr: Some(self.peer.ip().to_string()),
            application: self.application.to_owned(),
            state: "relayed".to_owned(),
        }
    }
}

/// How a session ended, for its `session_ended` record.
pub(crate) struct SessionEnd {
    pub(crate) how: &'static str,
    pub(crate) client_to_server: u64,
    pub(crate) server_to_client: u64,
    pub(crate) error: Option<String>,
}

impl AuditTrail {
    /// Starts the writer thread on `log`; records name `target`.
    pub(crate) fn start(log: AuditLog, target: String, metrics: Arc<Metrics>) -> AuditTrail {
        let (queue, mut received) = mpsc::channel::<Message>(QUEUE);
        let handle = log.clone();
        let spawned = std::thread::Builder::new()
            .name("curfew-gateway-audit".to_owned())
            .spawn(move || {
                while let Some(first) = received.blocking_recv() {
                    let mut records = Vec::new();
                    let mut flushed = Vec::new();
                    let mut next = Some(first);
                    while let Some(message) = next {
                        match message {
                            Message::Record(record) => records.push(*record),
                            Message::Flush(done) => flushed.push(done),
                        }
                        next = if records.len() < BATCH {
                            received.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    if !records.is_empty() {
                        let count = records.len() as u64;
                        if let Err(e) = log.append_all(records) {
                            metrics.audit_failed(count);
                            tracing::error!(
                                error = %e,
                                records = count,
                                "AUDIT RECORDS LOST: the gateway's audit log cannot be written"
                            );
                        }
                    }
                    for done in flushed {
                        let _ = done.send(());
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "AUDIT RECORDS LOST: no thread for the gateway's audit log");
        }
        AuditTrail {
            queue,
            log: handle,
            target,
            failed: Mutex::new(FailedLogins::default()),
        }
    }

    /// Whether the log can be written (for `/healthz`).
    pub(crate) fn check_writable(&self) -> Result<(), String> {
        self.log.check_writable()
    }

    fn record(&self, event: Event) -> Record {
        Record::new(Timestamp::now(), event).with_target(self.target.clone())
    }

    async fn send(&self, record: Record) {
        // The writer thread lives as long as the queue: a send fails only if it could not start.
        let _ = self.queue.send(Message::Record(Box::new(record))).await;
    }

    /// Waits until everything queued so far is written (or failed).
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    pub(crate) async fn gateway_started(&self, detail: serde_json::Value) {
        self.send(self.record(Event::GatewayStarted).with_detail(detail))
            .await;
        self.flush().await;
    }

    pub(crate) async fn gateway_stopped(&self, reason: &str, detail: serde_json::Value) {
        self.write_failed_logins(Timestamp::now()).await;
        self.send(
            self.record(Event::GatewayStopped)
                .with_reason(reason)
                .with_detail(detail),
        )
        .await;
        self.flush().await;
    }

    pub(crate) async fn gateway_reloaded(&self, ok: bool, reason: &str, detail: serde_json::Value) {
        let result = if ok { "ok" } else { "failed" };
        self.send(
            self.record(Event::GatewayReloaded)
                .with_result(result)
                .with_reason(reason)
                .with_detail(detail),
        )
        .await;
    }

    pub(crate) async fn session_started(&self, facts: &SessionFacts<'_>) {
        self.send(
            self.record(Event::SessionStarted)
                .with_session(facts.info())
                .with_detail(json!({
                    "client_port": facts.peer.port(),
                    "tls": facts.tls,
                })),
        )
        .await;
    }

    /// The policy ended the session (`session_terminated`, as the agent records its ends:
    /// the rule, the reason, `ended`; for a `violations` rule the server's SQLSTATEs counted,
    /// never a statement's text).
    pub(crate) async fn session_terminated(
        &self,
        facts: &SessionFacts<'_>,
        ended: &PolicyEnd,
        delivered: bool,
    ) {
        let mut detail = json!({
            "by": "gateway",
            "sqlstate": ended.code,
            "fatal_delivered": delivered,
            "at": ended.at.to_string(),
        });
        if let Some(deadline) = ended.deadline {
            // As the agent's record has it: from the deadline to the end, in milliseconds.
            let late = ended
                .at
                .duration_since(deadline)
                .max(jiff::SignedDuration::ZERO);
            detail["deadline"] = json!(deadline.to_string());
            detail["lateness_ms"] = json!(late.as_secs_f64() * 1000.0);
        }
        if !ended.counted.is_empty() {
            detail["sqlstates_counted"] = json!(ended.counted);
        }
        if !ended.statements.is_empty() {
            // Only with `[audit] include_statement = true`. Attributed by message order as the
            // gateway saw it: a client that breaks the protocol's order can shift it.
            detail["statements_attribution"] = json!("message_order");
            detail["statements"] = ended
                .statements
                .iter()
                .map(|(code, text)| json!({"sqlstate": code, "statement": &**text}))
                .collect();
        }
        match &ended.counted_by {
            Some(CountedBy::Shared) => detail["counted_by"] = json!("every_gateway"),
            Some(CountedBy::ThisGatewayFirst) => detail["counted_by"] = json!("this_gateway_first"),
            Some(CountedBy::ThisGateway(error)) => {
                detail["counted_by"] = json!("this_gateway_fallback");
                detail["shared_count_error"] = json!(error);
            }
            None => {}
        }
        self.send(
            self.record(Event::SessionTerminated)
                .with_session(facts.info())
                .with_rule(ended.rule.clone())
                .with_reason(ended.reason.clone())
                .with_result("ended")
                .with_detail(detail),
        )
        .await;
    }

    /// A warning was given (`session_warned`, as the agent records one): queued without
    /// waiting, from the relay's poll; a full queue loses it (logged and counted).
    pub(crate) fn session_warned(&self, facts: &SessionFacts<'_>, warned: &Warned, hooks: &[&str]) {
        let record = self
            .record(Event::SessionWarned)
            .with_session(facts.info())
            .with_rule(warned.rule.clone())
            .with_reason(warned.reason.clone())
            .with_result("recorded")
            .with_detail(match &warned.about {
                WarnedOf::Deadline {
                    deadline,
                    lead,
                    ends_in_seconds,
                } => json!({
                    "by": "gateway",
                    "deadline": deadline.to_string(),
                    "lead": lead,
                    "ends_in_seconds": ends_in_seconds,
                    "hooks": hooks,
                }),
                // No deadline: the next error of the rule's kinds ends the session.
                WarnedOf::NextViolation { counted, limit } => json!({
                    "by": "gateway",
                    "errors_counted": counted,
                    "limit": limit,
                    "hooks": hooks,
                }),
            });
        if self
            .queue
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            tracing::error!("AUDIT RECORD LOST: session_warned (the audit queue is full)");
        }
    }

    /// The policy refused a login after authentication (`login_refused`: the rule, the
    /// reason, the message the client got).
    pub(crate) async fn login_refused(
        &self,
        role: &str,
        database: &str,
        application: &str,
        peer: SocketAddr,
        refused: &RefusedLogin,
    ) {
        self.send(
            self.record(Event::LoginRefused)
                .with_rule(refused.rule.clone())
                .with_reason(refused.reason.clone())
                .with_result("refused")
                .with_detail(json!({
                    "by": "gateway",
                    "role": role,
                    "database": database,
                    "application": application,
                    "client_addr": peer.ip().to_string(),
                    "sqlstate": refused.fatal.code,
                    "message": refused.fatal.message,
                })),
        )
        .await;
    }

    pub(crate) async fn session_ended(&self, facts: &SessionFacts<'_>, end: &SessionEnd) {
        let now = Timestamp::now();
        let duration_ms = now.duration_since(facts.started).as_millis().max(0);
        let mut detail = json!({
            "client_port": facts.peer.port(),
            "tls": facts.tls,
            "duration_ms": duration_ms,
            "bytes_client_to_server": end.client_to_server,
            "bytes_server_to_client": end.server_to_client,
        });
        if let (Some(error), Some(map)) = (&end.error, detail.as_object_mut()) {
            map.insert("error".to_owned(), json!(error));
        }
        self.send(
            Record::new(now, Event::SessionEnded)
                .with_target(self.target.clone())
                .with_session(facts.info())
                .with_result(end.how)
                .with_detail(detail),
        )
        .await;
    }

    /// Counts a failed login; written later with the others (see the module's comment).
    pub(crate) fn login_failed(&self, cause: &'static str) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        failed.since.get_or_insert_with(Timestamp::now);
        *failed.by_cause.entry(cause).or_default() += 1;
    }

    /// Writes the failed logins counted since the last record, if any.
    pub(crate) async fn write_failed_logins(&self, until: Timestamp) {
        let taken =
            std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner));
        let Some(since) = taken.since else {
            return;
        };
        let total: u64 = taken.by_cause.values().sum();
        self.send(
            Record::new(until, Event::LoginsFailed)
                .with_target(self.target.clone())
                .with_reason(format!("{total} failed logins at the gateway"))
                .with_detail(json!({
                    "since": since.to_string(),
                    "count": total,
                    "by_cause": taken.by_cause,
                })),
        )
        .await;
    }
}
