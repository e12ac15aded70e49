//! The gateway suites' fixture: a sandbox PostgreSQL with SCRAM and TLS, its roles, a
//! verifier source that really reads `pg_authid` (as the superuser, over the Unix socket: for
//! tests only), a gateway in front of it, and clients.

#![allow(dead_code, unreachable_pub)]

pub mod clients;
pub mod logs;
pub mod policy;
pub mod raw;

use std::net::SocketAddr;

use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;

use curfew_gateway::{
    AuthFunctionSource, Drained, Gateway, GatewayConfig, MockSalt, RoleLookup, RoleSecret,
    Shutdown, StoredSecret, TlsFiles, TlsHandle, UpstreamConfig, VerifierFuture, VerifierSource,
    VerifierSourceError,
};
use curfew_postgres::{ConnectionUrl, GatewayAuth, TargetSpec};
use curfew_sandbox::{Auth, Cluster, Options, TestPki};
use curfew_testkit::TempDir;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// alice's password.
pub const ALICE_PASSWORD: &str = "alice-secret";

/// The roles every suite has: alice logs in; the others cannot, each for its own reason.
const ROLES: &str = "
SET password_encryption = 'scram-sha-256';
CREATE ROLE alice LOGIN PASSWORD 'alice-secret';
CREATE ROLE nologin_role NOLOGIN PASSWORD 'nologin-secret';
CREATE ROLE expired_role LOGIN PASSWORD 'expired-secret' VALID UNTIL '2001-01-01';
SET password_encryption = 'md5';
CREATE ROLE md5_role LOGIN PASSWORD 'md5-secret';
";

/// How a suite's gateway is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `require_tls`.
    pub require_tls: bool,
    /// `max_clients`.
    pub max_clients: usize,
    /// `login_timeout`.
    pub login_timeout: Duration,
    /// Fetch verifiers through `curfew.gateway_secret` as `curfew_gateway` (installed as
    /// `curfew init` does) rather than by reading `pg_authid`.
    pub auth_function: bool,
    /// TLS on the server (and `sslmode=verify-full` towards it); without, the server leg is
    /// plaintext (`sslmode=disable`).
    pub server_tls: bool,
    /// The server's bin directory (another major version); the sandbox's default when `None`.
    pub bin_dir: Option<std::path::PathBuf>,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Duration,
    /// Write the gateway's audit records to `audit.jsonl` in the harness's directory.
    pub audit_log: bool,
    /// How long the gateway waits for a registry call (the auth function source's): 10 s by
    /// default, longer than the product's 2 s, so that a loaded machine does not turn a slow
    /// answer into a fallback no test is about; a test of that timeout sets it.
    pub registry_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            require_tls: false,
            max_clients: 50,
            login_timeout: Duration::from_secs(10),
            auth_function: false,
            server_tls: true,
            bin_dir: None,
            shutdown_timeout: Duration::from_secs(30),
            audit_log: false,
            registry_timeout: Duration::from_secs(10),
        }
    }
}

/// The password of the superuser and of curfew's own roles in the auth-function setup.
pub const ADMIN_PASSWORD: &str = "admin-secret";

/// Installs the ledger, `curfew.gateway_secret` (for `curfew_gateway`, serving every
/// non-superuser login role) and the gateway session registry as `curfew init` does, and
/// returns the source that calls them.
async fn install_auth_function(cluster: &Cluster, dir: &TempDir) -> AuthFunctionSource {
    cluster
        .psql(&format!(
            "ALTER ROLE postgres PASSWORD '{ADMIN_PASSWORD}';
             CREATE ROLE curfew_agent LOGIN PASSWORD '{ADMIN_PASSWORD}';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE curfew_gateway LOGIN PASSWORD '{ADMIN_PASSWORD}';"
        ))
        .expect("curfew's roles");
    let password_file = dir.password_file(ADMIN_PASSWORD);
    let spec = |user: &str| TargetSpec {
        name: "primary".to_owned(),
        url: ConnectionUrl::parse(&format!(
            "postgresql://{user}@127.0.0.1:{}/postgres?sslmode=prefer",
            cluster.port()
        ))
        .expect("URL"),
        password_file: Some(password_file.clone()),
    };
    let mut admin = curfew_postgres::connect(&spec("postgres"))
        .await
        .expect("superuser connection")
        .connection;
    admin.install_ledger("curfew_agent").await.expect("ledger");
    let installed = admin
        .install_gateway_auth(&GatewayAuth {
            gateway_role: "curfew_gateway".to_owned(),
            serve_members_of: None,
            serve_superusers: false,
        })
        .await
        .expect("auth function");
    assert!(installed.installed, "{installed:?}");
    let registry = admin
        .install_gateway_registry("curfew_agent", "curfew_gateway")
        .await
        .expect("gateway session registry");
    assert!(registry.installed, "{registry:?}");
    AuthFunctionSource::new(spec("curfew_gateway"))
}

/// Reads `pg_authid` as the superuser: what `curfew.gateway_secret` returns, for tests (a
/// real read of the server's secrets; the served-roles rule is the auth function's, not this).
pub struct PgAuthidSource {
    client: Client,
}

impl PgAuthidSource {
    /// Connects over the cluster's Unix socket (trusted).
    pub async fn connect(cluster: &Cluster) -> PgAuthidSource {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(cluster.socket_dir())
            .port(cluster.port())
            .user(cluster.superuser())
            .dbname("postgres");
        let (client, connection) = config.connect(NoTls).await.expect("superuser connection");
        tokio::spawn(connection);
        PgAuthidSource { client }
    }

    /// The stored secret of `role`, whatever its kind and whether it may log in.
    pub async fn client_secret_of(&self, role: &str) -> Option<String> {
        self.client
            .query_opt(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&role],
            )
            .await
            .ok()
            .flatten()
            .and_then(|row| row.get::<_, Option<String>>(0))
    }

    /// The stored secret of `role`, if it may log in.
    pub async fn secret(&self, role: &str) -> Result<Option<String>, tokio_postgres::Error> {
        let row = self
            .client
            .query_opt(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1 AND rolcanlogin \
                 AND (rolvaliduntil IS NULL OR rolvaliduntil > now())",
                &[&role],
            )
            .await?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }
}

impl VerifierSource for PgAuthidSource {
    fn fetch<'a>(&'a self, role: &'a str) -> VerifierFuture<'a> {
        Box::pin(async move {
            self.secret(role)
                .await
                .map(|s| RoleLookup {
                    secret: s.map_or(RoleSecret::NotServed, |s| {
                        RoleSecret::Stored(StoredSecret::new(s))
                    }),
                    // A test key, as the auth function derives one from its stored key.
                    mock: MockSalt {
                        salt_base64: base64::engine::general_purpose::STANDARD.encode(
                            curfew_scram::Verifier::mock(role, b"test mock key", 4096)
                                .map(|v| v.salt().to_vec())
                                .unwrap_or_default(),
                        ),
                        iterations: 4096,
                    },
                    locks: Vec::new(),
                    member_of: Vec::new(),
                })
                .map_err(|e| VerifierSourceError {
                    code: e.code().map(|c| c.code().to_owned()),
                    reason: e.to_string(),
                })
        })
    }
}

/// A cluster, a gateway in front of it, and how to reach both.
pub struct Harness {
    /// The server.
    pub cluster: Cluster,
    /// Certificates: the server's and the gateway's, signed by one CA.
    pub pki: TestPki,
    /// Where the CA, certificate and key files are.
    pub dir: TempDir,
    /// The gateway's address.
    pub addr: SocketAddr,
    /// A superuser connection (Unix socket) for setup and checks.
    pub admin: Arc<PgAuthidSource>,
    /// The gateway's client-leg TLS, to reload.
    pub tls_handle: TlsHandle,
    /// The gateway itself (a handle: ending sessions, its traffic counters).
    pub gateway: Gateway,
    /// Stops the gateway: a drain, or at once.
    pub shutdown: Shutdown,
    /// The gateway's audit log, when `Setup::audit_log`.
    pub audit_log: Option<std::path::PathBuf>,
    /// `Setup::registry_timeout`, for another gateway too.
    registry_timeout: Duration,
    task: Option<JoinHandle<Drained>>,
}

impl Harness {
    /// Starts a SCRAM+TLS cluster with the roles, and a gateway per `setup` whose upstream is
    /// that cluster with `sslmode=verify-full`.
    pub async fn start(name: &str, setup: Setup) -> Harness {
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).expect("certificates");
        let cluster = curfew_testkit::started(Options {
            auth: Auth::Scram,
            tls: setup.server_tls.then(|| pki.server.clone()),
            bin_dir: setup.bin_dir.clone(),
            ..Options::default()
        });
        cluster.psql(ROLES).expect("roles");
        let dir = TempDir::new("gateway", name);
        let ca = dir.write("ca.pem", &pki.ca_pem, 0o644);
        let cert = dir.write("gateway.crt", &pki.server.cert_pem, 0o644);
        let key = dir.write("gateway.key", &pki.server.key_pem, 0o600);
        let tls = if setup.server_tls {
            format!("sslmode=verify-full&sslrootcert={}", ca.display())
        } else {
            "sslmode=disable".to_owned()
        };
        let url = ConnectionUrl::parse(&format!(
            "postgresql://unused@127.0.0.1:{}/postgres?{tls}",
            cluster.port()
        ))
        .expect("upstream URL");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut config = GatewayConfig::new(vec![addr], UpstreamConfig { url });
        config.tls = Some(TlsFiles { cert, key });
        config.require_tls = setup.require_tls;
        config.max_clients = setup.max_clients;
        config.login_timeout = setup.login_timeout;
        config.shutdown_timeout = setup.shutdown_timeout;
        let admin = Arc::new(PgAuthidSource::connect(&cluster).await);
        let source: Arc<dyn VerifierSource> = if setup.auth_function {
            Arc::new(
                install_auth_function(&cluster, &dir)
                    .await
                    .with_call_timeout(setup.registry_timeout),
            )
        } else {
            admin.clone()
        };
        let gateway = Gateway::new(config, source).expect("gateway");
        let audit_log = setup.audit_log.then(|| dir.join("audit.jsonl"));
        if let Some(path) = &audit_log {
            let log = curfew_audit::AuditLog::open(path).expect("audit log");
            assert!(gateway.audit_to(log, "primary"));
        }
        let tls_handle = gateway.tls().clone();
        let shutdown = Shutdown::new();
        // Sessions on two worker threads, as `curfew gateway` runs them: limits, cancels,
        // timeouts and the stop are tested across workers.
        let workers = Arc::new(curfew_gateway::Workers::start(2).expect("worker threads"));
        let task = tokio::spawn({
            let (gateway, shutdown) = (gateway.clone(), shutdown.clone());
            async move {
                curfew_gateway::run_until_on(vec![listener], gateway, &shutdown, workers).await
            }
        });
        Harness {
            registry_timeout: setup.registry_timeout,
            cluster,
            pki,
            dir,
            addr,
            admin,
            tls_handle,
            gateway,
            shutdown,
            audit_log,
            task: Some(task),
        }
    }

    /// A client configuration for `user` through the gateway.
    pub fn config(&self, user: &str, password: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.addr.port())
            .user(user)
            .password(password)
            .dbname("postgres")
            .application_name("gateway test")
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// Logs in without TLS.
    pub async fn plain(&self, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
        let mut config = self.config(user, password);
        config.ssl_mode(SslMode::Disable);
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Logs in with TLS (`sslmode=require`, the gateway's CA trusted), with `binding`.
    pub async fn tls(
        &self,
        user: &str,
        password: &str,
        binding: ChannelBinding,
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = self.config(user, password);
        config.ssl_mode(SslMode::Require).channel_binding(binding);
        let (client, connection) = config.connect(self.tls_connector()).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs `sql` with psql through the gateway as `user` (host `localhost`, the test CA as
    /// `sslrootcert`, then `options`); its output, or its stderr when it fails.
    pub async fn psql(
        &self,
        user: &str,
        password: &str,
        options: &str,
        sql: &str,
    ) -> Result<String, String> {
        let psql = self.cluster.bin_dir().join("psql");
        let conninfo = format!(
            "host=localhost port={} user={user} dbname=postgres sslrootcert={} {options}",
            self.addr.port(),
            self.dir.join("ca.pem").display()
        );
        let (password, sql) = (password.to_owned(), sql.to_owned());
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(psql)
                .args(["-X", "-A", "-t", "-d", &conninfo, "-c", &sql])
                .env("PGPASSWORD", password)
                .env("PGCONNECT_TIMEOUT", "10")
                .output()
        })
        .await
        .expect("psql task")
        .expect("psql runs");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// A rustls client configuration trusting the test CA.
    pub fn client_tls(&self) -> rustls::ClientConfig {
        client_tls_trusting(&self.pki.ca_pem)
    }

    /// tokio-postgres's TLS connector trusting the test CA.
    pub fn tls_connector(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new(self.client_tls())
    }

    /// Another gateway (plaintext, its own process state: a new verifier source and
    /// connection) in front of the same cluster, fetching through the auth function as
    /// `curfew_gateway` (a `Setup { auth_function: true }` harness installed it): a second
    /// instance, or the first one restarted. Stops when the returned sender is dropped.
    pub async fn another_gateway(&self) -> (SocketAddr, oneshot::Sender<()>) {
        self.another_gateway_enforcing(None).await
    }

    /// [`Harness::another_gateway`] enforcing `policy` when there is one.
    pub async fn another_gateway_enforcing(
        &self,
        policy: Option<Arc<curfew_policy::Policy>>,
    ) -> (SocketAddr, oneshot::Sender<()>) {
        let password_file = self.dir.password_file(ADMIN_PASSWORD);
        let spec = TargetSpec {
            name: "primary".to_owned(),
            url: ConnectionUrl::parse(&format!(
                "postgresql://curfew_gateway@127.0.0.1:{}/postgres?sslmode=prefer",
                self.cluster.port()
            ))
            .expect("URL"),
            password_file: Some(password_file),
        };
        let upstream = ConnectionUrl::parse(&format!(
            "postgresql://unused@127.0.0.1:{}/postgres?sslmode=disable",
            self.cluster.port()
        ))
        .expect("upstream URL");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let config = GatewayConfig::new(vec![addr], UpstreamConfig { url: upstream });
        let source = AuthFunctionSource::new(spec).with_call_timeout(self.registry_timeout);
        let gateway = Gateway::new(config, Arc::new(source)).expect("gateway");
        if let Some(policy) = policy {
            gateway.enforce(policy);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(curfew_gateway::run(vec![listener], gateway, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Stops the gateway (no more accepts) without waiting for sessions: the drain begins.
    pub fn stop(&mut self) {
        self.shutdown.drain();
    }

    /// Waits for the gateway to return after a stop; how its drain went.
    pub async fn stopped(&mut self) -> Drained {
        let task = self.task.take().expect("the gateway is running");
        task.await.expect("the gateway's task")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A rustls client configuration trusting the CA `ca_pem`.
pub fn client_tls_trusting(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA");
    roots.add(ca).expect("CA added");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The SQLSTATE and message of a failed login.
pub fn login_error(result: Result<Client, tokio_postgres::Error>) -> (String, String) {
    let Err(error) = result else {
        panic!("the login succeeded but should have failed");
    };
    let Some(db) = error.as_db_error() else {
        panic!("not a server error: {error}");
    };
    (db.code().code().to_owned(), db.message().to_owned())
}
