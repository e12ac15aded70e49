//! The benchmark's client sessions: a half that goes idle at staggered moments (and must be
//! ended), a half that keeps running statements (and must survive), and a monitor that reads
//! each idle session's exact `state_change` on the server clock. Every session runs statements
//! from the moment it connects: opening thousands takes seconds, and a session idle meanwhile
//! would be ended before its measured deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::error::BenchError;

/// A session that goes idle once and waits to be ended.
pub(crate) struct Idle {
    /// Held so the session stays open once its statements stop.
    _client: Arc<Client>,
    pid: i32,
    /// When to stop running statements (ms since the epoch; 0 = not yet scheduled).
    stop_at: Arc<AtomicI64>,
    ended: oneshot::Receiver<Timestamp>,
    /// When the connection ended, once seen.
    ended_at: Option<Timestamp>,
    _statements: JoinHandle<()>,
}

impl Idle {
    /// When the connection ended, if it has (the one-shot value is kept once received).
    fn ended_at(&mut self) -> Option<Timestamp> {
        if self.ended_at.is_none() {
            self.ended_at = self.ended.try_recv().ok();
        }
        self.ended_at
    }
}

/// A session that runs one statement after another until told to stop.
pub(crate) struct Busy {
    task: Option<JoinHandle<Result<(), tokio_postgres::Error>>>,
}

/// All sessions of one run.
pub(crate) struct Load {
    pub(crate) idle: Vec<Idle>,
    pub(crate) busy: Vec<Busy>,
    stop: Arc<AtomicBool>,
}

async fn connect(
    host: &str,
    port: u16,
    role: &str,
) -> Result<(Client, i32, oneshot::Receiver<Timestamp>), BenchError> {
    let conninfo =
        format!("host={host} port={port} user={role} dbname=postgres application_name=bench");
    let (client, connection) =
        tokio_postgres::connect(&conninfo, NoTls)
            .await
            .map_err(|source| BenchError::Open {
                role: role.to_owned(),
                source,
            })?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = connection.await;
        let _ = tx.send(Timestamp::now());
    });
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    Ok((client, pid, rx))
}

impl Load {
    /// Open `idle` sessions as `idle_role` and `busy` as `busy_role`, in an interleaved order,
    /// 32 connections at a time; `opened` is called after each.
    pub(crate) async fn open(
        host: &str,
        port: u16,
        (idle, idle_role): (usize, &str),
        (busy, busy_role): (usize, &str),
        seed: u64,
        opened: impl Fn(),
    ) -> Result<Load, BenchError> {
        // A random half of the sessions goes idle: shuffle who is who.
        let mut kinds: Vec<bool> = std::iter::repeat_n(true, idle)
            .chain(std::iter::repeat_n(false, busy))
            .collect();
        let mut rng = curfew_policy::synthetic::Rng::new(seed);
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let gate = Arc::new(Semaphore::new(32));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(kinds.len());
        for goes_idle in kinds {
            let (gate, stop) = (gate.clone(), stop.clone());
            let (host, role) = (
                host.to_owned(),
                if goes_idle { idle_role } else { busy_role }.to_owned(),
            );
            handles.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                let (client, pid, ended) = connect(&host, port, &role).await?;
                let client = Arc::new(client);
                let stop_at = Arc::new(AtomicI64::new(0));
                let (c, s, until) = (client.clone(), stop.clone(), stop_at.clone());
                // A statement a second: never idle for long, a light load on the server.
                let task = tokio::spawn(async move {
                    loop {
                        let scheduled = until.load(Ordering::Relaxed);
                        let now = Timestamp::now().as_millisecond();
                        if s.load(Ordering::Relaxed) || (scheduled > 0 && now >= scheduled) {
                            return Ok(());
                        }
                        c.batch_execute("SELECT pg_sleep(1)").await?;
                    }
                });
                Ok::<_, BenchError>((goes_idle, client, pid, ended, stop_at, task))
            }));
        }
        let mut load = Load {
            idle: Vec::with_capacity(idle),
            busy: Vec::with_capacity(busy),
            stop,
        };
        for handle in handles {
            let (goes_idle, client, pid, ended, stop_at, task) = handle.await??;
            if goes_idle {
                load.idle.push(Idle {
                    _client: client,
                    pid,
                    stop_at,
                    ended,
                    ended_at: None,
                    _statements: tokio::spawn(async move {
                        let _ = task.await;
                    }),
                });
            } else {
                load.busy.push(Busy { task: Some(task) });
            }
            opened();
        }
        Ok(load)
    }

    /// Each idle session stops running statements at its own moment: the first after `first`,
    /// the others spread evenly over `spread`. From its last statement on it is idle.
    pub(crate) fn schedule_idle(&mut self, first: Duration, spread: Duration) {
        let count = self.idle.len().max(1);
        let now = Timestamp::now().as_millisecond();
        for (i, idle) in self.idle.iter_mut().enumerate() {
            let wait = first + spread.mul_f64(i as f64 / count as f64);
            let at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            idle.stop_at.store(at, Ordering::Relaxed);
        }
    }

    /// Tell busy sessions to stop after their current statement.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Busy sessions whose statements failed because the session was ended: wrong terminations.
    pub(crate) async fn wrongly_ended(&mut self) -> usize {
        let mut wrong = 0;
        for busy in &mut self.busy {
            if let Some(task) = busy.task.take()
                && !matches!(task.await, Ok(Ok(())))
            {
                wrong += 1;
            }
        }
        wrong
    }

    /// When each idle session's connection ended, by pid (None if it is still open).
    pub(crate) fn endings(&mut self) -> Vec<(i32, Option<Timestamp>)> {
        self.idle
            .iter_mut()
            .map(|i| (i.pid, i.ended_at()))
            .collect()
    }

    /// Whether every idle session has ended.
    pub(crate) fn all_idle_ended(&mut self) -> bool {
        self.idle.iter_mut().all(|i| i.ended_at().is_some())
    }
}

/// Polls the server for when each idle session of a role became idle (its deadline is that
/// plus the limit).
pub(crate) struct Monitor {
    client: Client,
    pub(crate) idle_since: HashMap<i32, Timestamp>,
}

impl Monitor {
    pub(crate) async fn open(host: &str, port: u16) -> Result<Monitor, BenchError> {
        let (client, _, _) = connect(host, port, "postgres").await?;
        Ok(Monitor {
            client,
            idle_since: HashMap::new(),
        })
    }

    /// Record the `state_change` of every idle session of `role`.
    pub(crate) async fn poll(&mut self, role: &str) -> Result<(), BenchError> {
        let rows = self
            .client
            .query(
                "SELECT pid, state_change FROM pg_stat_activity WHERE usename = $1 AND state = 'idle'",
                &[&role],
            )
            .await?;
        for row in rows {
            self.idle_since.insert(row.get(0), row.get(1));
        }
        Ok(())
    }

    /// The server process of curfew's working connection (not the one that only holds its
    /// leader lock).
    pub(crate) async fn agent_backend(&self) -> Result<Option<u32>, BenchError> {
        let row = self
            .client
            .query_opt(
                "SELECT pid FROM pg_stat_activity
                 WHERE usename = 'curfew_agent' AND application_name = 'curfew'
                   AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')
                 LIMIT 1",
                &[],
            )
            .await?;
        Ok(row.map(|r| r.get::<_, i32>(0).unsigned_abs()))
    }

    /// How many benchmark sessions the server still has.
    pub(crate) async fn bench_sessions(&self) -> Result<i64, BenchError> {
        Ok(self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename IN ('bench_idle', 'bench_busy', 'bench_native')",
                &[],
            )
            .await?
            .get(0))
    }

    /// The server's version, for the report.
    pub(crate) async fn server_version(&self) -> Result<String, BenchError> {
        Ok(self
            .client
            .query_one("SHOW server_version", &[])
            .await?
            .get(0))
    }
}
