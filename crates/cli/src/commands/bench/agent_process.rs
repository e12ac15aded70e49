//! The agent under test, as its own process (so its CPU and memory are its own): started from
//! this binary, its snapshots counted from its debug log.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `curfew agent`.
pub(crate) struct AgentProcess {
    child: Child,
    snapshots: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
}

impl AgentProcess {
    /// Start `curfew agent` on a policy, counting its snapshots; with `log`, its log (debug
    /// level for the agent) is also copied to that file.
    pub(crate) fn start(
        policy: &Path,
        audit: &Path,
        log: Option<&Path>,
    ) -> anyhow::Result<AgentProcess> {
        let exe = std::env::current_exe().context("finding the curfew binary")?;
        let mut child = Command::new(exe)
            .args(["agent", "-c"])
            .arg(policy)
            .arg("--audit-log")
            .arg(audit)
            .env("CURFEW_LOG", "info,curfew::agent=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting curfew agent")?;
        let snapshots = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let stderr = child.stderr.take().context("reading the agent's log")?;
        let (s, c) = (snapshots.clone(), connected.clone());
        let mut keep = match log {
            Some(path) => Some(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => None,
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = keep.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if line.contains("snapshot of") {
                    s.fetch_add(1, Ordering::Relaxed);
                } else if line.contains("this agent leads") {
                    c.store(true, Ordering::Relaxed);
                }
            }
        });
        Ok(AgentProcess {
            child,
            snapshots,
            connected,
        })
    }

    /// Wait until the agent has connected to its target and leads it.
    pub(crate) async fn connected(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while !self.connected.load(Ordering::Relaxed) {
            if let Some(status) = self.child.try_wait()? {
                bail!("curfew agent exited with {status} before connecting");
            }
            if started.elapsed() > limit {
                bail!("curfew agent did not connect within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Snapshots taken so far.
    pub(crate) fn snapshots(&self) -> u64 {
        self.snapshots.load(Ordering::Relaxed)
    }

    /// Stop it as systemd would (SIGTERM) and wait.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("stopping the agent")?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("curfew agent stopped with {status}");
        }
        Ok(())
    }
}
