//! The agent under test, as its own process (so its CPU and memory are its own): started from
//! the `curfew` binary, its snapshots counted from its debug log.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::BenchError;

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
        exe: &Path,
        policy: &Path,
        audit: &Path,
        log: Option<&Path>,
    ) -> Result<AgentProcess, BenchError> {
        let mut child = Command::new(exe)
            .args(["agent", "-c"])
            .arg(policy)
            .arg("--audit-log")
            .arg(audit)
            .env("CURFEW_LOG", "info,curfew::agent=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BenchError::IoDoing {
                what: "starting curfew agent".to_owned(),
                source,
            })?;
        let snapshots = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let stderr = child.stderr.take().ok_or(BenchError::AgentLog)?;
        let (s, c) = (snapshots.clone(), connected.clone());
        let mut keep = match log {
            Some(path) => {
                Some(
                    std::fs::File::create(path).map_err(|source| BenchError::IoDoing {
                        what: format!("creating {}", path.display()),
                        source,
                    })?,
                )
            }
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
    pub(crate) async fn connected(&mut self, limit: Duration) -> Result<(), BenchError> {
        let started = Instant::now();
        while !self.connected.load(Ordering::Relaxed) {
            if let Some(status) = self.child.try_wait()? {
                return Err(BenchError::AgentExited(status));
            }
            if started.elapsed() > limit {
                return Err(BenchError::AgentSilent(limit));
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
    pub(crate) fn stop(mut self) -> Result<(), BenchError> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|source| BenchError::IoDoing {
                what: "stopping the agent".to_owned(),
                source,
            })?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(BenchError::AgentFailed(status));
        }
        Ok(())
    }
}
