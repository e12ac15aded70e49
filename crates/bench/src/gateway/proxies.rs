//! The two proxies measured, each as its own process (so its memory is its own): curfew
//! gateway, started from the `curfew` binary, and PgBouncer in session mode.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    /// `curfew gateway`.
    Gateway,
    /// PgBouncer, `pool_mode = session`.
    Pgbouncer,
}

impl ProxyKind {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Gateway => "curfew gateway",
            ProxyKind::Pgbouncer => "pgbouncer",
        }
    }
}

/// A running proxy, stopped (SIGKILL) when dropped.
pub(crate) struct Proxy {
    child: Child,
    /// Which one.
    pub kind: ProxyKind,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
}

impl Proxy {
    /// Start `command` (its standard error into `log`) and wait until `port` accepts.
    fn start(
        kind: ProxyKind,
        mut command: Command,
        port: u16,
        log: PathBuf,
    ) -> Result<Proxy, BenchError> {
        let file = File::create(&log).map_err(|source| BenchError::IoDoing {
            what: format!("creating {}", log.display()),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|source| BenchError::IoDoing {
                what: format!("starting {}", kind.name()),
                source,
            })?;
        let mut proxy = Proxy {
            child,
            kind,
            port,
            log,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = proxy.child.try_wait()? {
                return Err(proxy.failed(format!("exited with {status}")));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(proxy);
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(proxy.failed("did not listen within 20s".to_owned()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error naming this proxy, `why`, and its log's last lines.
    pub(crate) fn failed(&self, why: String) -> BenchError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        BenchError::Proxy {
            name: self.kind.name(),
            why,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    /// Whether it is still running.
    pub(crate) fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait()? {
            Some(status) => Err(self.failed(format!("exited with {status}"))),
            None => Ok(()),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curfew gateway -c POLICY [--workers N]` from `exe`.
pub(crate) fn gateway(
    exe: &Path,
    policy: &Path,
    workers: Option<u16>,
    port: u16,
    dir: &Path,
    run: &str,
) -> Result<Proxy, BenchError> {
    let mut command = Command::new(exe);
    command
        .args(["gateway", "-c"])
        .arg(policy)
        .arg("--audit-log")
        .arg(dir.join(format!("gateway-{run}.audit.jsonl")))
        .env("CURFEW_LOG", "warn");
    if let Some(workers) = workers {
        command.args(["--workers", &workers.to_string()]);
    }
    Proxy::start(
        ProxyKind::Gateway,
        command,
        port,
        dir.join(format!("gateway-{run}.log")),
    )
}

/// PgBouncer on `config`; as root it switches to `run_as` (it refuses to run as root).
pub(crate) fn pgbouncer(
    exe: &Path,
    config: &Path,
    port: u16,
    run_as: Option<&str>,
    dir: &Path,
    run: &str,
) -> Result<Proxy, BenchError> {
    let mut command = Command::new(exe);
    if let Some(user) = run_as {
        command.args(["-u", user]);
    }
    command.arg(config);
    Proxy::start(
        ProxyKind::Pgbouncer,
        command,
        port,
        dir.join(format!("pgbouncer-{run}.log")),
    )
}

/// Where Debian installs PgBouncer.
const PGBOUNCER_PATHS: [&str; 2] = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

/// The PgBouncer binary; when absent, installed from Debian's packages if this process runs as
/// root, else an error saying how to install it.
pub(crate) fn find_or_install_pgbouncer(
    root: bool,
    progress: &dyn crate::Progress,
) -> Result<PathBuf, BenchError> {
    let found = || {
        PGBOUNCER_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    };
    if let Some(path) = found() {
        return Ok(path);
    }
    if !root {
        return Err(BenchError::PgbouncerMissing(
            "PgBouncer is not installed; install it (`sudo apt-get install -y pgbouncer` on \
             Debian or Ubuntu) and run the benchmark again"
                .to_owned(),
        ));
    }
    progress.message("installing pgbouncer (apt-get install -y pgbouncer)".to_owned());
    let output = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "pgbouncer",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|source| BenchError::IoDoing {
            what: "running apt-get install pgbouncer".to_owned(),
            source,
        })?;
    match found() {
        Some(path) if output.status.success() => Ok(path),
        _ => Err(BenchError::PgbouncerMissing(format!(
            "`apt-get install -y pgbouncer` failed ({}); install PgBouncer and run the benchmark \
             again:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))),
    }
}

/// PgBouncer's configuration: session mode, SCRAM against `auth_file`, client TLS allowed
/// with the given certificate, the server leg in the clear on loopback (as the gateway's).
pub(crate) fn pgbouncer_ini(
    port: u16,
    server_port: u16,
    database: &str,
    auth_file: &Path,
    cert: &Path,
    key: &Path,
    max_clients: usize,
) -> String {
    format!(
        "[databases]\n\
         {database} = host=127.0.0.1 port={server_port} dbname={database}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = scram-sha-256\n\
         auth_file = {auth}\n\
         pool_mode = session\n\
         max_client_conn = {clients}\n\
         default_pool_size = {clients}\n\
         max_db_connections = 0\n\
         ignore_startup_parameters = extra_float_digits\n\
         client_tls_sslmode = allow\n\
         client_tls_cert_file = {cert}\n\
         client_tls_key_file = {key}\n\
         server_tls_sslmode = disable\n\
         log_connections = 0\n\
         log_disconnections = 0\n\
         log_pooler_errors = 1\n",
        auth = auth_file.display(),
        cert = cert.display(),
        key = key.display(),
        clients = max_clients + 16,
    )
}

/// A line of PgBouncer's `auth_file`: the role and its verifier, each double-quoted (a `"`
/// doubled).
pub(crate) fn auth_file_line(role: &str, verifier: &str) -> String {
    let quote = |s: &str| s.replace('"', "\"\"");
    format!("\"{}\" \"{}\"\n", quote(role), quote(verifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_file_quotes_both_fields() {
        assert_eq!(auth_file_line("a\"b", "SCRAM"), "\"a\"\"b\" \"SCRAM\"\n");
    }

    #[test]
    fn pgbouncer_runs_in_session_mode_with_scram() {
        let ini = pgbouncer_ini(
            6000,
            5432,
            "bench",
            Path::new("/a"),
            Path::new("/c"),
            Path::new("/k"),
            1000,
        );
        for line in [
            "pool_mode = session",
            "auth_type = scram-sha-256",
            "bench = host=127.0.0.1 port=5432 dbname=bench",
            "max_client_conn = 1016",
            "client_tls_sslmode = allow",
            "server_tls_sslmode = disable",
        ] {
            assert!(ini.contains(line), "{line} not in\n{ini}");
        }
    }
}
