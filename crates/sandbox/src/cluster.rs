//! A running throwaway PostgreSQL cluster.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::binaries::{self, find_binaries};
use crate::config::{self, HOST, TLS_CERT_FILE, TLS_KEY_FILE};
use crate::error::SandboxError;
use crate::options::{Options, TlsFiles};
use crate::process::Runner;
use crate::workdir;

/// The superuser initdb creates.
const SUPERUSER: &str = "postgres";

/// How many ports to try when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

/// Server log lines included in start-up errors.
const LOG_LINES_IN_ERRORS: usize = 30;

/// Seconds pg_ctl waits for start-up and shutdown.
const PG_CTL_TIMEOUT: &str = "60";

/// A throwaway PostgreSQL cluster on 127.0.0.1 with its own data and socket
/// directories. Dropping it stops the server and deletes the directories.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    major_version: u32,
    runner: Runner,
}

impl Cluster {
    /// Creates, configures and starts a new cluster on a free port.
    pub fn start(options: Options) -> Result<Cluster, SandboxError> {
        let bin_dir = match &options.bin_dir {
            Some(dir) => {
                binaries::check_bin_dir(dir, "Options::bin_dir")?;
                dir.clone()
            }
            None => find_binaries()?,
        };
        let root = workdir::create_unique_dir()?;
        let runner = match Runner::for_new_dir(&root) {
            Ok(runner) => runner,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        // From here on, dropping `cluster` cleans up after any failure.
        let mut cluster = Cluster {
            data_dir: root.join("data"),
            socket_dir: root.join("socket"),
            log_file: root.join("server.log"),
            root,
            bin_dir,
            port: 0,
            major_version: 0,
            runner,
        };
        cluster.major_version = cluster.query_major_version()?;
        cluster.create_socket_dir()?;
        cluster.initdb()?;
        let base_conf = read(&cluster.data_dir.join("postgresql.conf"))?;
        write(
            &cluster.data_dir.join("pg_hba.conf"),
            &config::pg_hba(&options),
        )?;
        if let Some(tls) = &options.tls {
            cluster.install_tls(tls)?;
        }
        let (socket_dir, data_dir) = (cluster.socket_dir.clone(), cluster.data_dir.clone());
        cluster.start_on_free_port(|port| {
            let additions = config::conf_additions(&options, port, &socket_dir, &data_dir);
            format!("{base_conf}{additions}")
        })?;
        Ok(cluster)
    }

    /// The address the server listens on: `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port the server listens on (also the Unix socket's suffix).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The superuser's name: always `"postgres"`.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The server's major version, e.g. 15.
    pub fn major_version(&self) -> u32 {
        self.major_version
    }

    /// `postgresql://USER@127.0.0.1:PORT/DB?sslmode=disable`, with the user
    /// and database percent-encoded.
    pub fn url(&self, user: &str, database: &str) -> String {
        config::url(user, self.port, database)
    }

    /// Runs `sql` as the superuser over the Unix socket with the bin
    /// directory's `psql` (`-X -q -A -t -v ON_ERROR_STOP=1`, database
    /// `postgres`) and returns its output without the trailing newline.
    /// Errors include psql's stderr. Meant for test and demo setup.
    pub fn psql(&self, sql: &str) -> Result<String, SandboxError> {
        let port = self.port.to_string();
        let args = [
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &self.socket_dir.to_string_lossy(),
            "-p",
            &port,
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-f",
            "-",
        ];
        let output = self
            .runner
            .run("psql", &self.bin_dir.join("psql"), args, Some(sql))?;
        Ok(output.trim_end_matches('\n').to_owned())
    }

    /// Stops the server (`pg_ctl stop -m fast -w`); does nothing if it is not
    /// running.
    pub fn stop(&mut self) -> Result<(), SandboxError> {
        if !self.is_running() {
            return Ok(());
        }
        self.pg_ctl(
            "pg_ctl stop",
            &["stop", "-m", "fast", "-w", "-t", PG_CTL_TIMEOUT],
        )
        .map(drop)
    }

    /// Stops the server if it is running and starts it again on the same
    /// port and socket directory.
    pub fn restart(&mut self) -> Result<(), SandboxError> {
        self.stop()?;
        self.pg_ctl_start()
    }

    /// Whether the server is running (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.data_dir.join("postmaster.pid").exists()
            && self.pg_ctl("pg_ctl status", &["status"]).is_ok()
    }

    /// The last `lines` lines of the server log (empty if there is none).
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(bytes) = fs::read(&self.log_file) else {
            return String::new();
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join("\n")
    }

    fn pg_ctl(&self, what: &str, args: &[&str]) -> Result<String, SandboxError> {
        let data = self.data_dir.to_string_lossy();
        let mut all_args = vec!["-D", &data];
        all_args.extend_from_slice(args);
        self.runner
            .run(what, &self.bin_dir.join("pg_ctl"), all_args, None)
    }

    fn query_major_version(&self) -> Result<u32, SandboxError> {
        let what = "postgres --version";
        let output = self
            .runner
            .run(what, &self.bin_dir.join("postgres"), ["--version"], None)?;
        binaries::parse_major_version(&output).ok_or_else(|| SandboxError::Command {
            what: format!("{what} (unrecognised output)"),
            status: Some(0),
            output,
        })
    }

    fn create_socket_dir(&self) -> Result<(), SandboxError> {
        fs::create_dir(&self.socket_dir)
            .map_err(|e| SandboxError::io(format!("creating {}", self.socket_dir.display()), e))?;
        set_mode(&self.socket_dir, 0o700)?;
        self.runner.hand_over(&self.socket_dir)
    }

    fn initdb(&self) -> Result<(), SandboxError> {
        let data = self.data_dir.to_string_lossy();
        let mut args = vec![
            "-D",
            &data,
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ];
        if self.major_version >= 14 {
            args.push("--no-instructions");
        }
        self.runner
            .run("initdb", &self.bin_dir.join("initdb"), args, None)
            .map(drop)
    }

    fn install_tls(&self, tls: &TlsFiles) -> Result<(), SandboxError> {
        for (name, contents, mode) in [
            (TLS_CERT_FILE, &tls.cert_pem, 0o644),
            (TLS_KEY_FILE, &tls.key_pem, 0o600),
        ] {
            let path = self.data_dir.join(name);
            write(&path, contents)?;
            set_mode(&path, mode)?;
            self.runner.hand_over(&path)?;
        }
        Ok(())
    }

    /// Writes `postgresql.conf` for a fresh free port and starts the server,
    /// retrying with another port when the chosen one was taken meanwhile.
    fn start_on_free_port(
        &mut self,
        render_conf: impl Fn(u16) -> String,
    ) -> Result<(), SandboxError> {
        let conf_path = self.data_dir.join("postgresql.conf");
        let mut attempt = 1;
        loop {
            self.port = workdir::free_port()?;
            write(&conf_path, &render_conf(self.port))?;
            let log_start = fs::metadata(&self.log_file).map(|m| m.len()).unwrap_or(0);
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(_) if attempt < PORT_ATTEMPTS && self.port_was_taken(log_start) => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server log written after `log_start` says the port was in use.
    fn port_was_taken(&self, log_start: u64) -> bool {
        let mut new_log = String::new();
        let read = fs::File::open(&self.log_file).and_then(|mut file| {
            file.seek(SeekFrom::Start(log_start))?;
            file.read_to_string(&mut new_log)
        });
        read.is_ok()
            && (new_log.contains("could not bind") || new_log.contains("Address already in use"))
    }

    fn pg_ctl_start(&self) -> Result<(), SandboxError> {
        let log = self.log_file.to_string_lossy();
        let args = ["-l", &log, "-w", "-t", PG_CTL_TIMEOUT, "start"];
        match self.pg_ctl("pg_ctl start", &args) {
            Ok(_) => Ok(()),
            Err(SandboxError::Command {
                what,
                status,
                output,
            }) => Err(SandboxError::Command {
                what: format!("{what} (port {})", self.port),
                status,
                output: format!(
                    "{output}\n--- last lines of {} ---\n{}",
                    self.log_file.display(),
                    self.log_tail(LOG_LINES_IN_ERRORS)
                ),
            }),
            Err(other) => Err(other),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data_dir.join("postmaster.pid").exists() {
            let _ = self.pg_ctl(
                "pg_ctl stop",
                &["stop", "-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT],
            );
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn read(path: &Path) -> Result<String, SandboxError> {
    fs::read_to_string(path).map_err(|e| SandboxError::io(format!("reading {}", path.display()), e))
}

fn write(path: &Path, contents: &str) -> Result<(), SandboxError> {
    fs::write(path, contents)
        .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| SandboxError::io(format!("setting permissions of {}", path.display()), e))
}
