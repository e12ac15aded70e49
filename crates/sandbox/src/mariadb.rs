//! A throwaway MariaDB server: `mariadb-install-db` into a fresh directory, then `mariadbd` on a
//! free loopback port with its own socket and pid file, run as the `mysql` OS user when this
//! process is root, stopped and removed on drop.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{HOST, percent_encode};
use crate::error::SandboxError;
use crate::mariadb_binaries::{MariaDbPrograms, find_mariadb};
use crate::options::TlsFiles;
use crate::process::Runner;
use crate::workdir;

/// The OS user the server runs as when we are root (Debian's package creates it).
const SERVER_USER: &str = "mysql";

/// The administrator `mariadb-install-db` creates (password-less, for fixtures only).
const ADMIN: &str = "root";

/// How long the server is given to start or stop.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many ports to try when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

/// Server log lines included in errors.
const LOG_LINES_IN_ERRORS: usize = 30;

/// What kind of MariaDB server to start; `MariaDbOptions::default()` gives one without TLS,
/// with `performance_schema` on (it holds the clients' connection attributes).
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    /// When set, the server enables TLS with these files.
    pub tls: Option<TlsFiles>,
    /// Whether `performance_schema` is on (MariaDB's default is off).
    pub performance_schema: bool,
    /// Extra server options as (name, value), passed as `--name=value` after the sandbox's own
    /// (so they override them: `("skip-name-resolve", "OFF")` turns name resolution back on).
    pub settings: Vec<(String, String)>,
    /// The programs to use; [`find_mariadb`] when `None`.
    pub programs: Option<MariaDbPrograms>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            tls: None,
            performance_schema: true,
            settings: Vec::new(),
            programs: None,
        }
    }
}

/// A throwaway MariaDB server on 127.0.0.1 with its own data directory, socket and pid file.
/// Dropping it kills the server and deletes the directory.
#[derive(Debug)]
pub struct MariaDbServer {
    root: PathBuf,
    programs: MariaDbPrograms,
    runner: Runner,
    options: MariaDbOptions,
    port: u16,
    child: Option<Child>,
}

impl MariaDbServer {
    /// Creates, configures and starts a new server on a free port.
    pub fn start(options: MariaDbOptions) -> Result<MariaDbServer, SandboxError> {
        let programs = match &options.programs {
            Some(programs) => programs.clone(),
            None => find_mariadb()?,
        };
        let root = workdir::create_unique_dir()?;
        let runner = match Runner::for_new_dir_as(&root, SERVER_USER) {
            Ok(runner) => runner,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        // From here on, dropping `server` cleans up after any failure.
        let mut server = MariaDbServer {
            root,
            programs,
            runner,
            options,
            port: 0,
            child: None,
        };
        server.install_db()?;
        if let Some(tls) = server.options.tls.clone() {
            server.install_tls(&tls)?;
        }
        let mut attempt = 1;
        loop {
            server.port = workdir::free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(_) if attempt < PORT_ATTEMPTS && server.port_was_taken() => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The address the server listens on: `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("mariadb.sock")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The administrator's name (`"root"`, without a password, reachable over the socket).
    pub fn admin(&self) -> &str {
        ADMIN
    }

    /// `mariadb://USER@127.0.0.1:PORT/DB?sslmode=disable`, user and database percent-encoded.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!(
            "mariadb://{}@{HOST}:{}/{}?sslmode=disable",
            percent_encode(user),
            self.port,
            percent_encode(database)
        )
    }

    /// Runs `sql` as the administrator over the socket with the `mariadb` client (batch mode,
    /// no column names) and returns its output without the trailing newline. Errors include
    /// the client's stderr. Meant for test and demo setup.
    pub fn admin_sql(&self, sql: &str) -> Result<String, SandboxError> {
        let socket = format!("--socket={}", self.socket().display());
        let args = [
            "--no-defaults",
            socket.as_str(),
            "--user",
            ADMIN,
            "--batch",
            "--skip-column-names",
        ];
        let output = self
            .runner
            .run("mariadb", &self.programs.client, args, Some(sql))?;
        Ok(output.trim_end_matches('\n').to_owned())
    }

    /// Stops the server (`SHUTDOWN`, then waits for it to exit); does nothing if it is not
    /// running.
    pub fn stop(&mut self) -> Result<(), SandboxError> {
        if !self.is_running() {
            self.child = None;
            return Ok(());
        }
        let asked = self.admin_sql("SHUTDOWN");
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.is_running() {
            if Instant::now() > deadline {
                self.kill();
                asked?;
                return Err(self.not_ready("mariadbd shutdown"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.child = None;
        Ok(())
    }

    /// Stops the server if it is running and starts it again on the same port and socket
    /// (connection ids start again from the beginning).
    pub fn restart(&mut self) -> Result<(), SandboxError> {
        self.stop()?;
        self.spawn()
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of the server log (empty if there is none).
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(bytes) = fs::read(self.log_file()) else {
            return String::new();
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join("\n")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The server's own temporary directory: concurrent servers sharing `/tmp` collide on
    /// their temporary tables' names during `mariadb-install-db`.
    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn install_db(&self) -> Result<(), SandboxError> {
        let tmp = self.tmp_dir();
        fs::create_dir(&tmp)
            .map_err(|e| SandboxError::io(format!("creating {}", tmp.display()), e))?;
        self.runner.hand_over(&tmp)?;
        let datadir = format!("--datadir={}", self.data_dir().display());
        let tmpdir = format!("--tmpdir={}", tmp.display());
        let args = [
            "--no-defaults",
            datadir.as_str(),
            tmpdir.as_str(),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ];
        self.runner
            .run("mariadb-install-db", &self.programs.install_db, args, None)
            .map(drop)
    }

    fn install_tls(&self, tls: &TlsFiles) -> Result<(), SandboxError> {
        for (name, contents, mode) in [
            ("server.crt", &tls.cert_pem, 0o644),
            ("server.key", &tls.key_pem, 0o600),
        ] {
            let path = self.root.join(name);
            fs::write(&path, contents)
                .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| {
                SandboxError::io(format!("setting permissions of {}", path.display()), e)
            })?;
            self.runner.hand_over(&path)?;
        }
        Ok(())
    }

    /// The server's command line after the program.
    fn args(&self) -> Vec<String> {
        let root = self.root.display();
        let mut args = vec![
            // Read no my.cnf: the system's configuration is not the sandbox's.
            "--no-defaults".to_owned(),
            format!("--datadir={}/data", root),
            format!("--socket={}/mariadb.sock", root),
            format!("--pid-file={}/mariadb.pid", root),
            format!("--tmpdir={}/tmp", root),
            format!("--port={}", self.port),
            format!("--bind-address={HOST}"),
            // Accounts are matched by address, without DNS look-ups.
            "--skip-name-resolve".to_owned(),
            "--skip-log-bin".to_owned(),
            "--innodb-buffer-pool-size=16M".to_owned(),
            "--innodb-flush-log-at-trx-commit=2".to_owned(),
            format!(
                "--performance-schema={}",
                if self.options.performance_schema {
                    "ON"
                } else {
                    "OFF"
                }
            ),
        ];
        if self.options.tls.is_some() {
            args.push(format!("--ssl-cert={}/server.crt", root));
            args.push(format!("--ssl-key={}/server.key", root));
        }
        for (name, value) in &self.options.settings {
            args.push(format!("--{name}={value}"));
        }
        args
    }

    /// Starts `mariadbd` on `self.port` and waits until it accepts connections.
    fn spawn(&mut self) -> Result<(), SandboxError> {
        let log_path = self.log_file();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| SandboxError::io(format!("opening {}", log_path.display()), e))?;
        let log_start = log
            .metadata()
            .map_err(|e| SandboxError::io(format!("inspecting {}", log_path.display()), e))?
            .len();
        let stderr = log
            .try_clone()
            .map_err(|e| SandboxError::io("duplicating the log's handle", e))?;
        let mut command = self.runner.command(&self.programs.server);
        command
            .args(self.args())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let child = command.spawn().map_err(|e| {
            SandboxError::io(format!("running {}", self.programs.server.display()), e)
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.log_since(log_start).contains("ready for connections") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(SandboxError::Command {
                    what: format!("mariadbd (port {})", self.port),
                    status: status.code(),
                    output: format!(
                        "--- last lines of {} ---\n{}",
                        log_path.display(),
                        self.log_tail(LOG_LINES_IN_ERRORS)
                    ),
                });
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(self.not_ready("mariadbd"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_since(&self, start: u64) -> String {
        let mut text = String::new();
        let _ = fs::File::open(self.log_file()).and_then(|mut file| {
            file.seek(SeekFrom::Start(start))?;
            file.read_to_string(&mut text)
        });
        text
    }

    /// Whether the server log says the port was in use.
    fn port_was_taken(&self) -> bool {
        let log = self.log_since(0);
        log.contains("Address already in use") || log.contains("Can't start server: Bind")
    }

    fn not_ready(&self, what: &str) -> SandboxError {
        SandboxError::NotReady {
            what: what.to_owned(),
            seconds: READY_TIMEOUT.as_secs(),
            log: self.log_tail(LOG_LINES_IN_ERRORS),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.root);
    }
}
