//! `curfew demo`: a throwaway cluster, realistic sessions, the agent on a short-fused policy,
//! the humans connecting through the gateway (TLS and SCRAM end to end) while the application
//! and the backup connect directly, each termination shown as it happens, then a summary and
//! the audit log's verification. Leaves nothing running (dropping the demo's future stops the
//! gateway and removes its cluster).

mod cast;
mod error;
mod gateway;
mod live;
mod secrets;
mod summary;

pub use error::DemoError;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_agent::AgentOptions;
use curfew_audit::AuditLog;
use curfew_policy::LoadedPolicy;
use curfew_policy::explain::summary;
use curfew_sandbox::{Auth, Cluster, Options};
use tokio::sync::{broadcast, oneshot, watch};

use cast::{Doors, Part, Route, open, run_in_background};
use gateway::RunningGateway;
use live::{wait_for_first_evaluation, watch_live};
use secrets::Passwords;
use summary::{keep_files, report};

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

/// Run the demo, telling `n` each line of its story.
pub async fn demo(args: &DemoOptions, n: &Narrator<'_>) -> Result<(), DemoError> {
    let begun = Instant::now();
    n.say(
        "curfew demo: a throwaway PostgreSQL cluster, realistic sessions, the agent enforcing a short-fused policy, and the humans connecting through curfew's gateway.\n",
    );
    n.say("Starting a local PostgreSQL cluster (initdb, loopback only, SCRAM passwords; removed at the end)...");
    let options = Options {
        auth: Auth::Scram,
        ..Options::default()
    };
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(options))
        .await
        .map_err(|source| DemoError::Task {
            what: "starting the cluster",
            source,
        })??;
    let passwords = Passwords::generate(cast::LOGIN_ROLES)?;
    cluster.psql(&format!("{}{}", cast::SETUP_SQL, passwords.verifiers_sql()))?;
    n.say(format!(
        "  PostgreSQL {} on {}:{}, ready in {:.1}s\n",
        cluster.major_version(),
        cluster.host(),
        cluster.port(),
        begun.elapsed().as_secs_f64()
    ));
    n.say("Roles (the three-role pattern of the security guide, plus humans; each login role has a random password for this run):");
    n.say("  appowner       NOLOGIN; owns schema app");
    n.say("  appuser        the application (orders-api)");
    n.say("  backupuser     read-only; runs backups (pg_dump)");
    n.say("  analyst_kim, analyst_lee, ops_ann   humans (members of role `humans`)");
    n.say("  curfew_agent   curfew's agent: only pg_read_all_stats and pg_signal_backend");
    n.say("  curfew_gateway curfew's gateway: may only call curfew.gateway_secret\n");

    let dir = work_dir()?;
    let files = gateway::write_certificates(&dir)?;
    let agent_password_file = passwords.write_file("curfew_agent", &dir, "curfew_agent.pw")?;
    let gateway_password_file =
        passwords.write_file("curfew_gateway", &dir, "curfew_gateway.pw")?;
    // Bound now so the policy can name the port; handed to the gateway once it is set up.
    let gateway_listener =
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| DemoError::Io {
                what: "listening for the gateway on 127.0.0.1".to_owned(),
                source,
            })?;
    let gateway_address = gateway_listener
        .local_addr()
        .map_err(|source| DemoError::Io {
            what: "reading the gateway's address".to_owned(),
            source,
        })?;
    let policy_text = cast::policy(&cast::PolicySettings {
        port: cluster.port(),
        agent_password_file: &agent_password_file,
        gateway: gateway_address,
        files: &files,
    });
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
    n.say("  exempt: role postgres; backupuser while it runs pg_dump");
    n.say(format!(
        "  gateway: listens at {gateway_address}, TLS required (a throwaway CA and certificate made for this run), serves the members of `humans` only\n"
    ));

    gateway::install_auth_function(&cluster, &loaded.policy, "curfew_agent").await?;
    // The gateway's audit log is its own file, as `audit_log` in [gateway] requires.
    let gateway_audit_path = dir.join("gateway-audit.jsonl");
    let gateway_audit = AuditLog::open(&gateway_audit_path).map_err(|source| DemoError::Audit {
        what: "opening the gateway's audit log",
        source,
    })?;
    let gateway = RunningGateway::start(
        gateway_listener,
        &loaded.policy,
        gateway_password_file,
        gateway_audit,
    )?;
    n.say(format!(
        "Gateway at {} in front of PostgreSQL {}:{} (the ledger, curfew.gateway_secret and the session registry installed as `curfew init` installs them).",
        gateway.address,
        cluster.host(),
        cluster.port()
    ));
    n.say("  It checks each human's SCRAM proof against the verifier it fetches as curfew_gateway, then logs in to the server as that human with the key recovered from the proof: the password never crosses it.");
    n.say("  The agent connects to the server directly, as curfew_agent.\n");

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

    n.say("Opening sessions (humans through the gateway: TLS verified as sslmode=verify-full, SCRAM with channel_binding=require; the application and the backup directly to the server, SCRAM over loopback):");
    let doors = Doors {
        server: (cluster.host().to_owned(), cluster.port()),
        gateway: gateway.address,
        gateway_tls: gateway::client_tls(&files.ca)?,
        passwords,
    };
    let mut actors = Vec::new();
    let t0 = Instant::now();
    let human = |label, role, application, expected, setup| Part {
        label,
        role,
        application,
        expected: Some(expected),
        setup,
    };
    let machine = |label, role, application| Part {
        label,
        role,
        application,
        expected: None,
        setup: "",
    };
    actors.push(
        open(
            &doors,
            Route::Gateway,
            human(
                "idle in psql",
                "analyst_kim",
                "psql",
                "inactivity",
                "SELECT count(*) FROM app.orders",
            ),
        )
        .await?,
    );
    actors.push(
        open(
            &doors,
            Route::Gateway,
            human(
                "forgot an open transaction",
                "analyst_lee",
                "psql",
                "abandoned-transaction",
                "BEGIN; UPDATE app.orders SET status = 'hold' WHERE id = 42",
            ),
        )
        .await?,
    );
    let mut ann = open(
        &doors,
        Route::Gateway,
        human(
            "a long-running report",
            "ops_ann",
            "psql",
            "session-lifetime",
            "",
        ),
    )
    .await?;
    run_in_background(&mut ann, "SELECT pg_sleep(60)");
    actors.push(ann);
    for _ in 0..2 {
        let pool = Part {
            setup: "SELECT count(*) FROM app.orders",
            ..machine("the application's pool", "appuser", "orders-api")
        };
        actors.push(open(&doors, Route::Direct, pool).await?);
    }
    let backup = machine("a backup, still running", "backupuser", "pg_dump");
    let mut backup = open(&doors, Route::Direct, backup).await?;
    run_in_background(&mut backup, "SELECT pg_sleep(60)");
    actors.push(backup);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Straight to the server, around the gateway: the agent still sees it (and, the newest
    // session beyond the limit, ends it), but can only end it the server's way.
    actors.push(
        open(
            &doors,
            Route::Direct,
            human(
                "a second session",
                "analyst_kim",
                "DBeaver",
                "one-session-each",
                "SELECT 1",
            ),
        )
        .await?,
    );
    cast::read_paths(&cluster, &mut actors)?;
    for a in &actors {
        let expect = a.expected.map_or("must survive".to_owned(), |r| {
            format!("expect: ended by {r}")
        });
        n.say(format!(
            "  pid {:<6} {:<12} {:<28} {:<8} {expect}",
            a.pid,
            a.role,
            a.label,
            a.route.name()
        ));
    }
    n.say("\nEnforcing (each line is printed as it happens): the gateway ends its sessions itself, warning first where a rule says `warn`, and tells the user the rule and the reason; the agent leaves them to it (for `gateway_grace`) and ends the sessions on the server directly:");

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

    let by_gateway = outcomes.iter().filter(|o| o.by_gateway).count();
    let gateway_audit = summary::GatewayAudit::read(&gateway_audit_path, by_gateway).await?;
    let ok = report(
        n,
        &mut actors,
        &outcomes,
        t0,
        &verification,
        &audit_path,
        &gateway_audit,
    )
    .await;
    if let Some(keep) = &args.keep {
        keep_files(n, keep, &policy_path, &audit_path)?;
    }
    drop(actors);
    // The humans' clients are gone, so their gateway sessions end; then the gateway stops.
    let gateway_stopped = gateway.stop().await;
    drop(cluster);
    drop(dir);
    n.say(format!(
        "\nThe gateway {} and the cluster was stopped and removed. Total time {:.1}s.",
        if gateway_stopped {
            "was stopped"
        } else {
            "was aborted (sessions still open after 5s)"
        },
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

/// The demo's own directory (it holds keys and password files: its owner's only).
fn work_dir() -> Result<WorkDir, DemoError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!("curfew-demo-{}", std::process::id()));
    // Left over by an earlier process with this id that was killed outright.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| DemoError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
    Ok(WorkDir(dir))
}
