//! Running the server programs, as an unprivileged OS user when this process
//! is root (initdb, pg_ctl and postgres refuse to run as root; mariadbd only
//! runs as root with `--user`): `postgres` for PostgreSQL, `mysql` for
//! MariaDB.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;

use crate::error::SandboxError;

/// The OS user PostgreSQL runs as when we are root.
const SERVER_USER: &str = "postgres";

/// An OS identity to switch to before running a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Finds `name`'s uid and primary gid in passwd(5)-formatted text.
pub(crate) fn lookup_user(passwd: &str, name: &str) -> Option<RunAs> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.trim().parse().ok()?;
        let gid = fields.next()?.trim().parse().ok()?;
        Some(RunAs { uid, gid })
    })
}

/// Runs programs for one cluster: from its directory, with `PG*`
/// environment variables removed, and as the server user when needed.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    run_as: Option<RunAs>,
    work_dir: PathBuf,
}

impl Runner {
    /// A runner for the cluster rooted at `work_dir`, which this process has
    /// just created. If the directory is owned by root, we are root: the
    /// programs then run as `postgres`, and `work_dir` is handed to it.
    pub(crate) fn for_new_dir(work_dir: &Path) -> Result<Runner, SandboxError> {
        Runner::for_new_dir_as(work_dir, SERVER_USER).map_err(|e| match e {
            SandboxError::NoServerUser { .. } => SandboxError::NoPostgresUser,
            other => other,
        })
    }

    /// As [`Runner::for_new_dir`], running the programs as `server_user` when we are root.
    pub(crate) fn for_new_dir_as(
        work_dir: &Path,
        server_user: &str,
    ) -> Result<Runner, SandboxError> {
        let meta = fs::metadata(work_dir)
            .map_err(|e| SandboxError::io(format!("inspecting {}", work_dir.display()), e))?;
        let run_as = if meta.uid() == 0 {
            let passwd = fs::read_to_string("/etc/passwd")
                .map_err(|e| SandboxError::io("reading /etc/passwd", e))?;
            Some(
                lookup_user(&passwd, server_user).ok_or_else(|| SandboxError::NoServerUser {
                    user: server_user.to_owned(),
                })?,
            )
        } else {
            None
        };
        let runner = Runner {
            run_as,
            work_dir: work_dir.to_path_buf(),
        };
        runner.hand_over(work_dir)?;
        Ok(runner)
    }

    /// Gives `path` to the server user (a no-op unless we are root).
    pub(crate) fn hand_over(&self, path: &Path) -> Result<(), SandboxError> {
        match self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| SandboxError::io(format!("changing owner of {}", path.display()), e)),
            None => Ok(()),
        }
    }

    /// A command for `program` with the identity, directory and
    /// environment set up; stdin is null unless changed.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.work_dir).stdin(Stdio::null());
        for (name, _) in env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                command.env_remove(name);
            }
        }
        if let Some(user) = self.run_as {
            // Root's HOME is not readable by the server user.
            command
                .uid(user.uid)
                .gid(user.gid)
                .env("HOME", &self.work_dir);
        }
        command
    }

    /// Runs `program args…`, feeding it `input` on stdin when given, and
    /// returns its stdout; a non-zero exit becomes [`SandboxError::Command`]
    /// described as `what` with the program's stderr and stdout.
    pub(crate) fn run<I, S>(
        &self,
        what: &str,
        program: &Path,
        args: I,
        input: Option<&str>,
    ) -> Result<String, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(program);
        command.args(args);
        let output = capture(&mut command, input)
            .map_err(|e| SandboxError::io(format!("running {}", program.display()), e))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let combined = [stderr.trim(), stdout.trim()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Err(SandboxError::Command {
            what: what.to_owned(),
            status: output.status.code(),
            output: combined,
        })
    }
}

/// Runs `command` to completion, capturing stdout and stderr; `input` is
/// written from a separate thread so large inputs and outputs cannot
/// deadlock on full pipes.
fn capture(command: &mut Command, input: Option<&str>) -> std::io::Result<Output> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let Some(input) = input else {
        return command.output();
    };
    command.stdin(Stdio::piped());
    let mut child = command.spawn()?;
    let stdin = child.stdin.take();
    thread::scope(|scope| {
        let writer = scope.spawn(move || match stdin {
            // Dropping stdin at the end of the closure closes the pipe.
            Some(mut stdin) => stdin.write_all(input.as_bytes()),
            None => Ok(()),
        });
        let output = child.wait_with_output();
        // A write error (e.g. the program exited early) shows up in its status.
        let _ = writer.join();
        output
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresx:x:5:5::/:/bin/false\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            lookup_user(passwd, "postgres"),
            Some(RunAs { uid: 101, gid: 104 })
        );
        assert_eq!(lookup_user(passwd, "root"), Some(RunAs { uid: 0, gid: 0 }));
        assert_eq!(lookup_user(passwd, "nobody"), None);
        assert_eq!(lookup_user("postgres:x:abc:1:::\n", "postgres"), None);
    }

    #[test]
    fn run_returns_stdout_and_reports_failures() {
        let runner = Runner {
            run_as: None,
            work_dir: env::temp_dir(),
        };
        let out = runner
            .run("cat", Path::new("/bin/cat"), ["-"], Some("hello"))
            .unwrap();
        assert_eq!(out, "hello");
        let err = runner
            .run(
                "sh",
                Path::new("/bin/sh"),
                ["-c", "echo oops >&2; exit 3"],
                None,
            )
            .unwrap_err();
        match err {
            SandboxError::Command { status, output, .. } => {
                assert_eq!(status, Some(3));
                assert_eq!(output, "oops");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
