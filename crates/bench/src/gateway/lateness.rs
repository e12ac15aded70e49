//! How late the gateway ends idle sessions, next to PostgreSQL's own `idle_session_timeout`
//! in the same run (issue 17). Each session keeps running a statement every
//! [`KEEPALIVE`] while the others open (opening a thousand takes seconds), then stops at its own
//! moment, spread over [`SPREAD`]; its deadline is the moment its last reply arrived plus the
//! limit, and its lateness is how long after that the client saw the FATAL. Both routes are
//! measured the same way, from the client's side: what a user would notice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_postgres::Client;
use tokio_postgres::config::SslMode;

use crate::error::BenchError;
use crate::measure::Percentiles;

/// The idle limit of both routes.
pub const LIMIT: Duration = Duration::from_secs(3);
/// How often a session runs a statement until its idle moment.
const KEEPALIVE: Duration = Duration::from_millis(500);
/// Over how long the sessions' idle moments are spread.
const SPREAD: Duration = Duration::from_secs(3);
/// How long after the last deadline a session may still end before it counts as not ended.
const GRACE: Duration = Duration::from_secs(20);
/// How much earlier than the earliest possible deadline a session may end and still count as
/// ended at it. The earliest possible deadline is the moment the last statement was *sent* plus
/// the limit: the server (or the gateway) cannot start its timer before the statement reached it.
/// Measuring from the reply instead called a session early whenever the client read the reply
/// late on a loaded machine (CI saw one of 100 at two parallel runs on two cores).
const EARLY: Duration = Duration::from_millis(20);
/// Logins in flight at once while opening.
const OPENING_AT_ONCE: usize = 32;

/// One route's figures at one number of sessions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatenessRun {
    /// `curfew gateway` or `idle_session_timeout`.
    pub route: &'static str,
    /// Which round (from 1).
    pub round: usize,
    /// Sessions measured.
    pub sessions: usize,
    /// Milliseconds from deadline to the client seeing the end, of the sessions that ended
    /// (slightly negative when the server's timer started before the client read the reply
    /// it measures from).
    pub lateness_ms: Option<Percentiles>,
    /// Sessions ended with SQLSTATE 57P05 (idle session timeout), as both routes should.
    pub ended_57p05: usize,
    /// Sessions ended otherwise (another SQLSTATE, or the connection just closing).
    pub ended_otherwise: usize,
    /// Sessions still open [`GRACE`] after the last deadline.
    pub not_ended: usize,
    /// Sessions ended before their last statement was sent plus the limit (should be none:
    /// no timer can start before the statement arrives).
    pub early: usize,
    /// Sessions left out because this benchmark's own keepalive fell behind: a whole limit
    /// between one statement's send and the next one's reply while it was meant to keep the
    /// session busy (a loaded machine), so the session may rightly have been ended before its
    /// idle moment and its lateness means nothing. Counted, never judged as early.
    pub stalled: usize,
}

/// Where and as whom the sessions log in.
pub(crate) struct Endpoint<'a> {
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub database: &'a str,
    pub route: &'static str,
}

/// How one session ended: when, and with which SQLSTATE.
type Ending = (Instant, Option<String>);

struct Watched {
    client: Arc<Client>,
    ended: oneshot::Receiver<Ending>,
}

async fn open(endpoint: &Endpoint<'_>) -> Result<Watched, BenchError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(endpoint.port)
        .user(endpoint.user)
        .password(endpoint.password)
        .dbname(endpoint.database)
        .application_name("curfew-bench-lateness")
        .ssl_mode(SslMode::Disable)
        .connect_timeout(Duration::from_secs(30));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|source| BenchError::Open {
            role: endpoint.user.to_owned(),
            source,
        })?;
    let (tx, ended) = oneshot::channel();
    tokio::spawn(async move {
        let result = connection.await;
        let at = Instant::now();
        let code = result
            .err()
            .and_then(|e| e.as_db_error().map(|db| db.code().code().to_owned()));
        let _ = tx.send((at, code));
    });
    Ok(Watched {
        client: Arc::new(client),
        ended,
    })
}

/// Open `sessions` sessions at `endpoint`, keep them busy until each one's idle moment, and
/// measure how late each is ended after its deadline.
pub(crate) async fn measure(
    endpoint: &Endpoint<'_>,
    sessions: usize,
) -> Result<LatenessRun, BenchError> {
    let mut watched = Vec::with_capacity(sessions);
    let mut keepers = Vec::with_capacity(sessions);
    // Each session's last statement (when sent, when its reply arrived), once it stopped.
    let mut last_replies = Vec::with_capacity(sessions);
    let mut stop_senders = Vec::with_capacity(sessions);
    while watched.len() < sessions {
        let batch = OPENING_AT_ONCE.min(sessions - watched.len());
        // Each session is kept busy from its own login on, not from its batch's last: a batch
        // whose logins take longer than the limit (SCRAM on a loaded machine) would otherwise
        // leave its first sessions idle long enough to be ended before the measurement.
        let opened = futures_util::future::try_join_all((0..batch).map(|_| async {
            let session = open(endpoint).await?;
            let last_reply = Arc::new(Mutex::new(None::<LastStatement>));
            let (stop_tx, stop_rx) = oneshot::channel::<Instant>();
            let keeper = tokio::spawn(keep_busy(
                session.client.clone(),
                stop_rx,
                last_reply.clone(),
            ));
            Ok::<_, BenchError>((session, keeper, last_reply, stop_tx))
        }))
        .await?;
        for (session, keeper, last_reply, stop_tx) in opened {
            keepers.push(keeper);
            last_replies.push(last_reply);
            stop_senders.push(stop_tx);
            watched.push(session);
        }
    }
    // Every session is open and busy: give each its idle moment, spread evenly.
    let start = Instant::now() + Duration::from_secs(1);
    for (i, stop) in stop_senders.into_iter().enumerate() {
        let offset = SPREAD.mul_f64(i as f64 / sessions.max(1) as f64);
        let _ = stop.send(start + offset);
    }
    let give_up = start + SPREAD + LIMIT + GRACE;
    let mut lateness = Vec::with_capacity(sessions);
    let mut run = LatenessRun {
        route: endpoint.route,
        round: 1,
        sessions,
        lateness_ms: None,
        ended_57p05: 0,
        ended_otherwise: 0,
        not_ended: 0,
        early: 0,
        stalled: 0,
    };
    for ((session, keeper), last_reply) in watched.iter_mut().zip(keepers).zip(&last_replies) {
        let remaining = give_up.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, &mut session.ended).await {
            Ok(Ok((at, code))) => {
                let _ = keeper.await;
                match code.as_deref() {
                    Some("57P05") => run.ended_57p05 += 1,
                    _ => run.ended_otherwise += 1,
                }
                let last = *last_reply.lock().unwrap_or_else(|e| e.into_inner());
                match last {
                    Some(last) if last.stalled => run.stalled += 1,
                    Some(last) if at + EARLY >= last.sent + LIMIT => {
                        let deadline = last.replied + LIMIT;
                        lateness.push(if at >= deadline {
                            (at - deadline).as_secs_f64() * 1000.0
                        } else {
                            -(deadline - at).as_secs_f64() * 1000.0
                        });
                    }
                    _ => run.early += 1,
                }
            }
            _ => {
                keeper.abort();
                run.not_ended += 1;
            }
        }
    }
    run.lateness_ms = Percentiles::of(&lateness);
    drop(watched);
    Ok(run)
}

/// When a session's last statement was sent and when its reply was read.
#[derive(Debug, Clone, Copy)]
struct LastStatement {
    sent: Instant,
    replied: Instant,
    /// Whether a statement's reply ever came the limit less [`EARLY`] or more after the
    /// previous statement was sent: the session may have been idle long enough to be ended
    /// while meant busy.
    stalled: bool,
}

/// Run a statement every [`KEEPALIVE`] until the moment `stop` gives, then none; record when
/// the last one was sent and its reply arrived.
async fn keep_busy(
    client: Arc<Client>,
    stop: oneshot::Receiver<Instant>,
    last_reply: Arc<Mutex<Option<LastStatement>>>,
) {
    let mut stop = stop;
    let mut stop_at: Option<Instant> = None;
    loop {
        if stop_at.is_none()
            && let Ok(at) = stop.try_recv()
        {
            stop_at = Some(at);
        }
        if let Some(at) = stop_at
            && Instant::now() >= at
        {
            return;
        }
        let sent = Instant::now();
        if client.simple_query("SELECT 1").await.is_err() {
            return;
        }
        {
            let mut last = last_reply.lock().unwrap_or_else(|e| e.into_inner());
            let replied = Instant::now();
            // Measured from the previous statement's send to this one's reply: this one's
            // timestamp is taken when it is issued, and on a loaded machine the client's own
            // write can lag far behind it, leaving the session idle at the proxy meanwhile.
            let stalled = last.is_some_and(|l| l.stalled || replied >= l.sent + LIMIT - EARLY);
            *last = Some(LastStatement {
                sent,
                replied,
                stalled,
            });
        }
        let mut wait = KEEPALIVE;
        if let Some(at) = stop_at {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(wait).await;
    }
}
