//! Helpers for the tests that run the `curfew` binary against a real PostgreSQL.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test binary uses some of them

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use curfew_sandbox::Cluster;
pub use curfew_testkit::KillOnDrop;

pub mod gateway_cluster;
pub mod maria;
pub mod metrics;

pub fn curfew() -> Command {
    Command::new(env!("CARGO_BIN_EXE_curfew"))
}

/// `curfew ARGS` run from the workspace root (so `examples/...` paths work), output collected.
pub fn run(args: &[&str]) -> std::process::Output {
    curfew()
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap()
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `curfew agent -c POLICY --audit-log AUDIT`, its standard output discarded.
pub fn agent_command(policy: &Path, audit: &Path) -> Command {
    let mut command = curfew();
    command
        .args(["agent", "-c"])
        .arg(policy)
        .arg("--audit-log")
        .arg(audit)
        .stdout(Stdio::null());
    command
}

/// A running agent whose log (standard error) can be read with [`lines_of`]; killed when the
/// test ends, even by a panic.
pub fn agent(policy: &Path, audit: &Path) -> KillOnDrop {
    KillOnDrop(
        agent_command(policy, audit)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// A directory removed when dropped.
pub use curfew_testkit::TempDir as Dir;

pub fn dir(name: &str) -> Dir {
    Dir::new("cli-live", name)
}

pub fn cluster() -> Cluster {
    curfew_testkit::cluster_with_agent_role("CREATE ROLE kim LOGIN;")
}

pub fn policy_text(cluster: &Cluster, rules: &str) -> String {
    format!(
        "[agent]\ninterval = \"1s\"\n\n[[target]]\nname = \"db\"\nurl = \"{}\"\n\n{rules}",
        cluster.url("curfew_agent", "postgres")
    )
}

pub async fn session(
    cluster: &Cluster,
    user: &str,
) -> (tokio_postgres::Client, i32, mpsc::Receiver<()>) {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres",
        cluster.port()
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel();
    tokio::spawn(async move {
        let _ = connection.await;
        let _ = tx.send(());
    });
    let pid = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (client, pid, rx)
}

/// Stderr lines of a child, as they come.
pub fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait for a log line containing `needle`; all lines seen on the way.
pub fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    wait_for_any(lines, &[needle], limit)
}

/// Wait for a log line containing any of `needles`; all lines seen on the way.
pub fn wait_for_any(
    lines: &mpsc::Receiver<String>,
    needles: &[&str],
    limit: Duration,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = needles.iter().any(|needle| line.contains(needle));
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no log line with any of {needles:?} within {limit:?}; saw:\n{}",
        seen.join("\n")
    );
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn events(audit: &Path) -> Vec<String> {
    curfew_audit::read(audit)
        .unwrap()
        .into_iter()
        .map(|e| e.unwrap().event)
        .collect()
}

/// `curfew audit verify AUDIT` exits 0 (its output is shown when it does not).
pub fn assert_audit_verifies(audit: &Path) {
    let out = curfew()
        .args(["audit", "verify"])
        .arg(audit)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP response: status code and body.
pub struct Response {
    pub code: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET http://address/path` with nothing but the standard library (HTTP/1.1, one request
/// per connection; a chunked body is decoded).
pub fn http_get(address: &str, path: &str) -> std::io::Result<Response> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|status| status.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    Ok(Response {
        code,
        content_type: header("content-type").unwrap_or_default(),
        body,
    })
}

/// Wait for the agent to say where it serves its status page; the `host:port`.
pub fn listen_address(lines: &mpsc::Receiver<String>) -> String {
    let seen = wait_for(lines, "status page on http://", Duration::from_secs(20));
    seen.last()
        .and_then(|l| l.split("http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned()
}

/// A psql session of `user` (with this application name) that takes curfew's leader lock and
/// keeps it until killed; returns once the server shows the lock granted.
pub fn hold_leader_lock(cluster: &Cluster, user: &str, application: &str) -> KillOnDrop {
    use std::io::Write as _;
    let mut holder = Command::new(cluster.bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port().to_string(),
        ])
        .args(["-U", user, "-d", "postgres"])
        .env("PGAPPNAME", application)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let stdin = holder.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "SELECT pg_advisory_lock({});",
        curfew_postgres::LEADER_KEY
    )
    .unwrap();
    stdin.flush().unwrap();
    let start = std::time::Instant::now();
    while cluster
        .psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        .unwrap()
        == "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lock was never taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    holder
}
