//! The run's fixture: a sandbox cluster with `scram-sha-256` and TLS (plaintext allowed too,
//! so direct rounds can go without), the ledger and the gateway's auth function as
//! `curfew init` installs them, a role with a password, pgbench's tables, and the files each
//! proxy is started with.

use std::hash::BuildHasher as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use curfew_postgres::{ConnectionUrl, GatewayAuth, TargetSpec};
use curfew_sandbox::{Auth, Cluster, Options, TestPki};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::Progress;
use crate::error::BenchError;
use crate::gateway::GatewayPlan;
use crate::gateway::proxies::{self, Proxy, auth_file_line, pgbouncer_ini};

/// The role pgbench and the idle clients log in as.
pub(crate) const BENCH_ROLE: &str = "bench_user";
/// The role whose sessions PostgreSQL's own `idle_session_timeout` ends (the lateness
/// figures' reference).
pub(crate) const NATIVE_ROLE: &str = "bench_native";
/// Its database, holding pgbench's tables.
pub(crate) const BENCH_DATABASE: &str = "bench";
/// The role the gateway fetches verifiers as.
const GATEWAY_ROLE: &str = "curfew_gateway";
/// The operating-system user PgBouncer runs as when this process is root.
const PGBOUNCER_USER: &str = "postgres";

/// A gateway's policy file: its listen port and its rules in, the text out.
type PolicyText = dyn Fn(u16, &str) -> String + Send + Sync;

/// Everything the rounds need.
pub(crate) struct Setup {
    pub cluster: Cluster,
    pub password: String,
    pub postgres_version: String,
    pub pgbouncer_version: String,
    pki: TestPki,
    dir: PathBuf,
    exe: PathBuf,
    gateway_workers: Option<u16>,
    pgbouncer: PathBuf,
    pgbouncer_user: Option<&'static str>,
    policy_of: Box<PolicyText>,
    pgbouncer_files: (PathBuf, PathBuf, PathBuf),
    max_clients: usize,
}

/// A password for this run only (the cluster listens on loopback and is removed afterwards).
fn run_password(label: &str) -> String {
    let state = std::collections::hash_map::RandomState::new();
    format!(
        "{label}-{:016x}{:016x}",
        state.hash_one((label, std::process::id())),
        state.hash_one(Instant::now())
    )
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> BenchError {
    move |source| BenchError::IoDoing { what, source }
}

/// Write `contents` to `path` with `mode`.
fn write(path: &Path, contents: &str, mode: u32) -> Result<(), BenchError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, contents).map_err(io(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("setting the mode of {}", path.display())))
}

/// A free port on loopback.
fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The uid and gid of `user` from `/etc/passwd`'s text.
fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, uid, gid, ..] if *name == user => {
                Some((uid.parse().ok()?, gid.parse().ok()?))
            }
            _ => None,
        }
    })
}

impl Setup {
    /// Start and prepare everything.
    pub(crate) async fn prepare(
        plan: &GatewayPlan,
        progress: &dyn Progress,
    ) -> Result<Setup, BenchError> {
        let root = rustix::process::geteuid().is_root();
        let pgbouncer = proxies::find_or_install_pgbouncer(root, progress)?;
        let pgbouncer_version = version_of(&pgbouncer);
        progress.message("starting a PostgreSQL cluster (scram-sha-256, TLS)".to_owned());
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).map_err(BenchError::Sandbox)?;
        let max_connections = u32::try_from(plan.most_clients() + 200).unwrap_or(u32::MAX);
        let server_tls = pki.server.clone();
        let cluster = tokio::task::spawn_blocking(move || {
            Cluster::start(Options {
                auth: Auth::Scram,
                tls: Some(server_tls),
                max_connections: Some(max_connections),
                ..Options::default()
            })
        })
        .await??;
        // The sandbox requires TLS with SCRAM; allow plaintext too so the direct rounds can
        // go without TLS, as the proxies' clients do.
        let hba = "local all all trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n\
                   host all all ::1/128 scram-sha-256\n";
        let hba_path = cluster.data_dir().join("pg_hba.conf");
        std::fs::write(&hba_path, hba).map_err(io(format!("writing {}", hba_path.display())))?;
        let password = run_password("bench");
        let admin_password = run_password("admin");
        cluster.psql(&format!(
            "SELECT pg_reload_conf();
             SET password_encryption = 'scram-sha-256';
             ALTER ROLE postgres PASSWORD '{admin_password}';
             CREATE ROLE curfew_agent LOGIN PASSWORD '{admin_password}';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE {GATEWAY_ROLE} LOGIN PASSWORD '{admin_password}';
             CREATE ROLE {BENCH_ROLE} LOGIN PASSWORD '{password}';
             CREATE ROLE {NATIVE_ROLE} LOGIN PASSWORD '{password}';
             ALTER ROLE {NATIVE_ROLE} SET idle_session_timeout = '{}ms';
             CREATE DATABASE {BENCH_DATABASE} OWNER {BENCH_ROLE};",
            crate::gateway::lateness::LIMIT.as_millis()
        ))?;
        let postgres_version = cluster.psql("SHOW server_version")?;

        let dir = plan.keep.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("curfew-bench-gateway-{}", std::process::id()))
        });
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let password_file = dir.join("admin.password");
        write(&password_file, &admin_password, 0o600)?;
        let cert = dir.join("gateway.crt");
        let key = dir.join("gateway.key");
        write(&cert, &pki.server.cert_pem, 0o644)?;
        write(&key, &pki.server.key_pem, 0o600)?;

        progress.message("installing the ledger and the gateway's auth function".to_owned());
        install_auth(&cluster, &password_file).await?;
        progress.message(format!("pgbench -i -s {}", plan.scale));
        initialize(&cluster, plan.scale, &password)?;

        // PgBouncer's files, readable by the user it runs as.
        let pgbouncer_user = root.then_some(PGBOUNCER_USER);
        let bouncer_dir = dir.join("pgbouncer");
        std::fs::create_dir_all(&bouncer_dir)
            .map_err(io(format!("creating {}", bouncer_dir.display())))?;
        let verifier = cluster.psql(&format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{BENCH_ROLE}'"
        ))?;
        let auth_file = bouncer_dir.join("userlist.txt");
        write(&auth_file, &auth_file_line(BENCH_ROLE, &verifier), 0o600)?;
        let bouncer_cert = bouncer_dir.join("server.crt");
        let bouncer_key = bouncer_dir.join("server.key");
        write(&bouncer_cert, &pki.server.cert_pem, 0o644)?;
        write(&bouncer_key, &pki.server.key_pem, 0o600)?;
        if let Some(user) = pgbouncer_user {
            let passwd = std::fs::read_to_string("/etc/passwd")?;
            let (uid, gid) = passwd_ids(&passwd, user).ok_or_else(|| {
                BenchError::PgbouncerMissing(format!(
                    "running as root, PgBouncer must run as the `{user}` user, which does not exist"
                ))
            })?;
            for path in [&dir, &bouncer_dir, &auth_file, &bouncer_cert, &bouncer_key] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(io(format!("handing {} to {user}", path.display())))?;
            }
        }

        let server_port = cluster.port();
        let gateway_url =
            format!("postgresql://{GATEWAY_ROLE}@127.0.0.1:{server_port}/postgres?sslmode=disable");
        let max_clients = plan.most_clients() + 16;
        let (policy_cert, policy_key, policy_password) = (cert.clone(), key.clone(), password_file);
        let policy_of = Box::new(move |port: u16, rules: &str| {
            format!(
                "[[target]]\nname = \"bench\"\nurl = \"{gateway_url}\"\npassword_file = \"{}\"\n\n\
                 {rules}\n\
                 [gateway]\nlisten = \"127.0.0.1:{port}\"\ntarget = \"bench\"\n\
                 tls_cert = \"{}\"\ntls_key = \"{}\"\nmax_clients = {max_clients}\n",
                policy_password.display(),
                policy_cert.display(),
                policy_key.display(),
            )
        });
        Ok(Setup {
            cluster,
            password,
            postgres_version,
            pgbouncer_version,
            pki,
            dir,
            exe: plan.gateway_exe.clone(),
            gateway_workers: plan.gateway_workers,
            pgbouncer,
            pgbouncer_user,
            policy_of,
            pgbouncer_files: (auth_file, bouncer_cert, bouncer_key),
            max_clients,
        })
    }

    /// A fresh `curfew gateway` on a free port, its policy's only rule an idle limit of an
    /// hour (no session of the throughput rounds meets it).
    pub(crate) fn start_gateway(&self, run: &str) -> Result<Proxy, BenchError> {
        self.start_gateway_with(run, "[[rule]]\nname = \"idle\"\nidle = \"1h\"\n")
    }

    /// A fresh `curfew gateway` on a free port, enforcing `rules` (the policy's `[[rule]]`
    /// tables).
    pub(crate) fn start_gateway_with(&self, run: &str, rules: &str) -> Result<Proxy, BenchError> {
        let port = free_port()?;
        let policy = self.dir.join(format!("gateway-{run}.toml"));
        write(&policy, &(self.policy_of)(port, rules), 0o600)?;
        proxies::gateway(
            &self.exe,
            &policy,
            self.gateway_workers,
            port,
            &self.dir,
            run,
        )
    }

    /// A fresh PgBouncer on a free port.
    pub(crate) fn start_pgbouncer(&self, run: &str) -> Result<Proxy, BenchError> {
        let port = free_port()?;
        let (auth, cert, key) = &self.pgbouncer_files;
        let ini = pgbouncer_ini(
            port,
            self.cluster.port(),
            BENCH_DATABASE,
            auth,
            cert,
            key,
            self.max_clients,
        );
        let path = self
            .dir
            .join("pgbouncer")
            .join(format!("pgbouncer-{run}.ini"));
        write(&path, &ini, 0o644)?;
        proxies::pgbouncer(
            &self.pgbouncer,
            &path,
            port,
            self.pgbouncer_user,
            &self.dir,
            run,
        )
    }

    /// A rustls client configuration trusting the run's CA.
    pub(crate) fn client_tls(&self) -> Result<rustls::ClientConfig, BenchError> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.pki.ca_pem.as_bytes())
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        roots.add(ca).map_err(|e| BenchError::Tls(e.to_string()))?;
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| BenchError::Tls(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    }

    /// Wait until the server has let go of the bench role's sessions of an earlier phase.
    pub(crate) async fn settle(&self) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let count = self.cluster.psql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = '{BENCH_ROLE}'"
            ))?;
            if count == "0" || Instant::now() > deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Remove the run's files unless they are kept.
    pub(crate) fn finish(self, keep: bool) {
        if !keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The ledger and `curfew.gateway_secret` for the gateway's role, as `curfew init` installs
/// them.
async fn install_auth(cluster: &Cluster, password_file: &Path) -> Result<(), BenchError> {
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port()
    );
    let spec = TargetSpec {
        name: "bench".to_owned(),
        url: ConnectionUrl::parse(&url).map_err(|e| BenchError::Setup(e.to_string()))?,
        password_file: Some(password_file.to_owned()),
    };
    let mut admin = curfew_postgres::connect(&spec).await?.connection;
    admin.install_ledger("curfew_agent").await?;
    let installed = admin
        .install_gateway_auth(&GatewayAuth {
            gateway_role: GATEWAY_ROLE.to_owned(),
            serve_members_of: None,
            serve_superusers: false,
        })
        .await?;
    if !installed.installed {
        return Err(BenchError::Setup(format!(
            "the gateway's auth function was not installed: {:?}",
            installed.notes
        )));
    }
    Ok(())
}

/// `pgbench -i -s SCALE` as the bench role, over TCP.
fn initialize(cluster: &Cluster, scale: u32, password: &str) -> Result<(), BenchError> {
    let pgbench = cluster.bin_dir().join("pgbench");
    let output = Command::new(&pgbench)
        .args(["-i", "-q", "-s", &scale.to_string()])
        .args(["-h", "127.0.0.1", "-p", &cluster.port().to_string()])
        .args(["-U", BENCH_ROLE, BENCH_DATABASE])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .output()
        .map_err(io(format!("running {}", pgbench.display())))?;
    if !output.status.success() {
        return Err(BenchError::Pgbench {
            what: "pgbench -i".to_owned(),
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

/// `EXE --version`'s first line, or "unknown".
fn version_of(exe: &Path) -> String {
    Command::new(exe)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_user_in_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:109::/var/lib/postgresql:/bin/bash\n";
        assert_eq!(passwd_ids(passwd, "postgres"), Some((104, 109)));
        assert_eq!(passwd_ids(passwd, "nobody"), None);
    }

    #[test]
    fn run_passwords_differ() {
        assert_ne!(run_password("a"), run_password("a"));
    }
}
