//! `curfew demo`: a throwaway cluster, realistic sessions, the agent on a short-fused policy,
//! each termination shown as it happens, then a summary and the audit log's verification.
//! Leaves nothing running (dropping the demo's future stops and removes its cluster).

mod cast;
mod error;

pub use error::DemoError;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_agent::{AgentEvent, AgentOptions};
use curfew_audit::AuditLog;
use curfew_policy::LoadedPolicy;
use curfew_policy::explain::summary;
use curfew_sandbox::{Cluster, Options};
use tokio::sync::{broadcast, oneshot, watch};

use cast::{Actor, open, run_in_background};

/// What the demo has to say, as it happens (the binary prints it).
pub struct Narrator<'a> {
    /// One line (or several, with their newlines) of the story.
    pub say: &'a dyn Fn(&str),
    /// The summary table: headers, rows, and a suffix per row (a mark on an unexpected
    /// outcome).
    pub table: &'a TableSink,
}

/// How the summary table is shown: headers, rows, and a suffix per row.
pub type TableSink = dyn Fn(&[&str], &[Vec<String>], &[&str]);

impl Narrator<'_> {
    fn say(&self, text: impl AsRef<str>) {
        (self.say)(text.as_ref());
    }
}

/// How the demo runs.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Keep the demo's policy and audit log in this directory (for `curfew audit show`).
    pub keep: Option<PathBuf>,
    /// Serve the status page, /status, /metrics and /healthz on this address while it runs.
    pub listen: Option<std::net::SocketAddr>,
}

fn since(t0: Instant, at: Instant) -> String {
    format!("+{:.1}s", at.saturating_duration_since(t0).as_secs_f64())
}

/// Run the demo, telling `n` each line of its story.
pub async fn demo(args: &DemoOptions, n: &Narrator<'_>) -> Result<(), DemoError> {
    let begun = Instant::now();
    n.say(
        "curfew demo: a throwaway PostgreSQL cluster, realistic sessions, and the agent enforcing a short-fused policy.\n",
    );
    n.say("Starting a local PostgreSQL cluster (initdb, loopback only; removed at the end)...");
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(Options::default()))
        .await
        .map_err(|source| DemoError::Task {
            what: "starting the cluster",
            source,
        })??;
    cluster.psql(cast::SETUP_SQL)?;
    n.say(format!(
        "  PostgreSQL {} on {}:{}, ready in {:.1}s\n",
        cluster.major_version(),
        cluster.host(),
        cluster.port(),
        begun.elapsed().as_secs_f64()
    ));
    n.say("Roles (the three-role pattern of the security guide, plus humans):");
    n.say("  appowner     NOLOGIN; owns schema app");
    n.say("  appuser      the application (orders-api)");
    n.say("  backupuser   read-only; runs backups (pg_dump)");
    n.say("  analyst_kim, analyst_lee, ops_ann   humans (members of role `humans`)");
    n.say("  curfew_agent curfew itself: only pg_read_all_stats and pg_signal_backend\n");

    let dir = work_dir()?;
    let policy_text = cast::policy(&cluster.url("curfew_agent", "postgres"));
    let policy_path = dir.join("curfew.toml");
    std::fs::write(&policy_path, &policy_text).map_err(|source| DemoError::Io {
        what: "writing the demo policy".to_owned(),
        source,
    })?;
    let loaded = LoadedPolicy::from_bytes_with(
        "curfew-demo.toml",
        policy_text.into_bytes(),
        Some(&[&curfew_postgres::POSTGRES_URLS]),
    )
    .map_err(DemoError::Policy)?;
    n.say("Policy (built in; `curfew explain` turns a policy like it into a document):");
    let width = loaded
        .policy
        .rules
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0);
    for rule in &loaded.policy.rules {
        n.say(format!("  {:<width$}  {}", rule.name, summary(rule)));
    }
    n.say("  exempt: role postgres; backupuser while it runs pg_dump\n");

    let audit_path = dir.join("audit.jsonl");
    let audit = AuditLog::open(&audit_path).map_err(|source| DemoError::Audit {
        what: "opening the demo audit log",
        source,
    })?;
    let (events_tx, mut events) = broadcast::channel(4096);
    let (_policy_tx, policy_rx) = watch::channel(Arc::new(loaded.clone()));
    let (http_stop, http_stopped) = oneshot::channel::<()>();
    let tally = Arc::new(curfew_agent::AuditTally::new());
    if let Some(address) = args.listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| DemoError::Io {
                what: format!("listening on {address}"),
                source,
            })?;
        let address = listener.local_addr().unwrap_or(address);
        let observer =
            curfew_observe::Observer::new(policy_rx.clone(), audit.clone(), tally.clone(), false);
        tokio::spawn(observer.clone().follow(events_tx.subscribe()));
        tokio::spawn(curfew_observe::serve(listener, observer, async move {
            let _ = http_stopped.await;
        }));
        n.say(format!(
            "Status page: http://{address}/ (and /status, /metrics, /healthz) while the demo runs.\n"
        ));
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let options = AgentOptions {
        events: Some(events_tx),
        tally: Some(tally),
        ..AgentOptions::default()
    };
    let agent = tokio::spawn(curfew_agent::run(
        audit,
        options,
        curfew_postgres::PolicyTarget::from_policy,
        policy_rx,
        async move {
            let _ = stop_rx.await;
        },
    ));
    wait_for_first_evaluation(&mut events).await?;

    n.say("Opening sessions:");
    let (host, port) = (cluster.host().to_owned(), cluster.port());
    let mut actors = Vec::new();
    let t0 = Instant::now();
    actors.push(
        open(
            &host,
            port,
            "idle in psql",
            "analyst_kim",
            "psql",
            Some("inactivity"),
            "SELECT count(*) FROM app.orders",
        )
        .await?,
    );
    actors.push(
        open(
            &host,
            port,
            "forgot an open transaction",
            "analyst_lee",
            "psql",
            Some("abandoned-transaction"),
            "BEGIN; UPDATE app.orders SET status = 'hold' WHERE id = 42",
        )
        .await?,
    );
    let mut ann = open(
        &host,
        port,
        "a long-running report",
        "ops_ann",
        "psql",
        Some("session-lifetime"),
        "",
    )
    .await?;
    run_in_background(&mut ann, "SELECT pg_sleep(60)");
    actors.push(ann);
    for _ in 0..2 {
        actors.push(
            open(
                &host,
                port,
                "the application's pool",
                "appuser",
                "orders-api",
                None,
                "SELECT count(*) FROM app.orders",
            )
            .await?,
        );
    }
    let mut backup = open(
        &host,
        port,
        "a backup, still running",
        "backupuser",
        "pg_dump",
        None,
        "",
    )
    .await?;
    run_in_background(&mut backup, "SELECT pg_sleep(60)");
    actors.push(backup);
    tokio::time::sleep(Duration::from_millis(200)).await;
    actors.push(
        open(
            &host,
            port,
            "a second session",
            "analyst_kim",
            "DBeaver",
            Some("one-session-each"),
            "SELECT 1",
        )
        .await?,
    );
    for a in &actors {
        let expect = a.expected.map_or("must survive".to_owned(), |r| {
            format!("expect: ended by {r}")
        });
        n.say(format!(
            "  pid {:<6} {:<12} {:<28} {expect}",
            a.pid, a.role, a.label
        ));
    }
    n.say("\nEnforcing (each line is printed as it happens):");

    let outcomes = watch_live(n, &mut events, &mut actors, t0).await;
    let _ = stop_tx.send(());
    agent.await.map_err(|source| DemoError::Task {
        what: "the agent task",
        source,
    })??;
    let _ = http_stop.send(());
    let verification = curfew_audit::verify(&audit_path).map_err(|source| DemoError::Audit {
        what: "verifying the audit log",
        source,
    })?;

    let ok = report(n, &mut actors, &outcomes, t0, &verification, &audit_path).await;
    if let Some(keep) = &args.keep {
        keep_files(n, keep, &policy_path, &audit_path)?;
    }
    drop(actors);
    drop(cluster);
    drop(dir);
    n.say(format!(
        "\nThe cluster was stopped and removed. Total time {:.1}s.",
        begun.elapsed().as_secs_f64()
    ));
    if ok {
        Ok(())
    } else {
        Err(DemoError::NotAsThePolicySays)
    }
}

/// The demo's files; removed when dropped, however the demo ends.
struct WorkDir(PathBuf);

impl std::ops::Deref for WorkDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn work_dir() -> Result<WorkDir, DemoError> {
    let dir = std::env::temp_dir().join(format!("curfew-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| DemoError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    Ok(WorkDir(dir))
}

async fn wait_for_first_evaluation(
    events: &mut broadcast::Receiver<AgentEvent>,
) -> Result<(), DemoError> {
    let wait = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(AgentEvent::Evaluated { .. }) => return Ok(()),
                Ok(AgentEvent::Disconnected { error, .. }) => return Err(error),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err("the agent stopped".into()),
            }
        }
    });
    match wait.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DemoError::AgentNotStarted(e)),
        Err(_) => Err(DemoError::AgentSlow),
    }
}

/// What the agent did to one session.
struct Outcome {
    pid: i32,
    rule: String,
    at: Instant,
    lateness: jiff::SignedDuration,
}

/// Print events as they come until every session expected to end has ended (and a moment more,
/// to show the others survive), or 20 s.
async fn watch_live(
    n: &Narrator<'_>,
    events: &mut broadcast::Receiver<AgentEvent>,
    actors: &mut [Actor],
    t0: Instant,
) -> Vec<Outcome> {
    let label = |actors: &[Actor], pid: i32| {
        actors
            .iter()
            .find(|a| a.pid == pid)
            .map_or(format!("pid {pid}"), |a| {
                format!("pid {pid} ({}, {})", a.role, a.label)
            })
    };
    let expected = actors.iter().filter(|a| a.expected.is_some()).count();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let hard_stop = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut settle: Option<tokio::time::Instant> = None;
    loop {
        let until = settle.unwrap_or(hard_stop).min(hard_stop);
        let event = match tokio::time::timeout_at(until, events.recv()).await {
            Err(_) => break,
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => break,
            Ok(Ok(event)) => event,
        };
        let now = Instant::now();
        match event {
            AgentEvent::Terminated {
                session,
                rule,
                reason,
                lateness,
                ..
            } => {
                n.say(format!(
                    "  {:>6}  ended {} by {rule}: {reason} ({} after the deadline)",
                    since(t0, now),
                    label(actors, session.pid),
                    curfew_policy::format_age(lateness)
                ));
                outcomes.push(Outcome {
                    pid: session.pid,
                    rule,
                    at: now,
                    lateness,
                });
            }
            AgentEvent::Warned {
                session,
                rule,
                deadline,
                at,
                ..
            } => n.say(format!(
                "  {:>6}  warning recorded (session_warned; the user is not told): {} will be ended in {} by {rule}",
                since(t0, now),
                label(actors, session.pid),
                curfew_policy::format_age(deadline.duration_since(at))
            )),
            AgentEvent::NoLongerMatched { session, rule, .. } => n.say(format!(
                "  {:>6}  {} changed before {rule} could end it; left alone",
                since(t0, now),
                label(actors, session.pid)
            )),
            AgentEvent::TerminationFailed {
                session,
                rule,
                error,
                ..
            } => n.say(format!(
                "  {:>6}  could not end {} ({rule}): {error}",
                since(t0, now),
                label(actors, session.pid)
            )),
            _ => {}
        }
        if settle.is_none() && outcomes.len() >= expected {
            settle = Some(tokio::time::Instant::now() + Duration::from_millis(1500));
        }
    }
    for a in actors.iter_mut() {
        a.check_ended();
        // A running statement receives the server's message; the connection just closes.
        if let Some(task) = a.running.take_if(|t| t.is_finished())
            && let Ok(Err(e)) = task.await
            && let Some(db) = e.as_db_error()
            && let Some(saw) = &mut a.saw
        {
            saw.1 = format!("{}: {}", db.severity(), db.message());
        }
    }
    outcomes
}

/// The summary table, the audit verification and what each user saw. True if everything went
/// as the policy says.
async fn report(
    n: &Narrator<'_>,
    actors: &mut [Actor],
    outcomes: &[Outcome],
    t0: Instant,
    verification: &curfew_audit::Verification,
    audit_path: &Path,
) -> bool {
    let mut all_ok = true;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut marks = Vec::new();
    for a in actors.iter_mut() {
        let outcome = outcomes.iter().find(|o| o.pid == a.pid);
        // A survivor must still answer.
        let alive = !a.check_ended()
            && match &a.running {
                Some(task) => !task.is_finished(),
                None => a.client.simple_query("SELECT 1").await.is_ok(),
            };
        let (what, late, ok) = match (a.expected, outcome) {
            (Some(rule), Some(o)) => (
                format!("ended by {} at {}", o.rule, since(t0, o.at)),
                curfew_policy::format_age(o.lateness),
                o.rule == rule && !alive,
            ),
            (Some(_), None) => ("NOT ENDED".to_owned(), "-".to_owned(), false),
            (None, Some(o)) => (format!("ENDED by {}", o.rule), "-".to_owned(), false),
            (None, None) => (
                if alive {
                    "alive".to_owned()
                } else {
                    "GONE".to_owned()
                },
                "-".to_owned(),
                alive,
            ),
        };
        all_ok &= ok;
        let expected = a
            .expected
            .map_or("survives".to_owned(), |r| format!("ended by {r}"));
        rows.push(vec![
            a.pid.to_string(),
            a.role.to_owned(),
            a.label.to_owned(),
            expected,
            what,
            late,
        ]);
        marks.push(ok);
    }
    let flags: Vec<&str> = marks
        .iter()
        .map(|ok| if *ok { "" } else { "  <-- unexpected" })
        .collect();
    n.say("\nSummary:");
    (n.table)(
        &["PID", "ROLE", "SESSION", "EXPECTED", "OUTCOME", "LATE"],
        &rows,
        &flags,
    );
    n.say("\nWhat the users saw:");
    for a in actors.iter() {
        if let Some((_, saw)) = &a.saw {
            n.say(format!("  {} ({}): {saw}", a.role, a.label));
        }
    }
    if verification.is_intact() {
        n.say(format!(
            "\nAudit log: {} records, hash chain and sequence intact, every termination intent has its outcome.",
            verification.records
        ));
    } else {
        all_ok = false;
        n.say("\nAudit log: NOT intact:");
        for p in &verification.problems {
            n.say(format!(
                "  {}:{}: {}",
                audit_path.display(),
                p.line,
                p.message
            ));
        }
    }
    if all_ok {
        n.say(format!(
            "All {} sessions were treated as the policy says.",
            actors.len()
        ));
    }
    all_ok
}

fn keep_files(n: &Narrator<'_>, keep: &Path, policy: &Path, audit: &Path) -> Result<(), DemoError> {
    let io = |what: String| move |source| DemoError::Io { what, source };
    std::fs::create_dir_all(keep).map_err(io(format!("creating {}", keep.display())))?;
    std::fs::copy(policy, keep.join("curfew.toml")).map_err(io("keeping the policy".to_owned()))?;
    std::fs::copy(audit, keep.join("audit.jsonl"))
        .map_err(io("keeping the audit log".to_owned()))?;
    n.say(format!(
        "\nKept the policy and the audit log in {}: try `curfew audit show {}/audit.jsonl`.",
        keep.display(),
        keep.display()
    ));
    Ok(())
}
