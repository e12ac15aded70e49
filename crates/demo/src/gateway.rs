//! The demo's gateway: `curfew gateway` for the demo policy's `[gateway]`, run inside the demo's
//! process (so it ends with the demo, however the demo ends), with a throwaway CA and
//! certificate for the client leg, and the auth function installed as `curfew init` installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use curfew_audit::AuditLog;
use curfew_gateway::{AuthFunctionSource, Gateway, PolicyGateway};
use curfew_policy::Policy;
use curfew_postgres::{ConnectionUrl, GatewayAuth, Host, SslMode, TargetSpec};
use curfew_sandbox::{Cluster, TestPki};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::DemoError;

/// The client leg's files: the CA clients trust, the gateway's certificate and its key.
#[derive(Debug, Clone)]
pub(super) struct GatewayFiles {
    /// The throwaway CA (clients' `sslrootcert`).
    pub(super) ca: PathBuf,
    /// The gateway's certificate (for `localhost` and `127.0.0.1`), signed by the CA.
    pub(super) cert: PathBuf,
    /// Its private key, readable by its owner only.
    pub(super) key: PathBuf,
}

/// Makes a CA and a certificate for the gateway (rcgen, through the sandbox's `TestPki`) and
/// writes them into `dir`.
pub(super) fn write_certificates(dir: &Path) -> Result<GatewayFiles, DemoError> {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"])?;
    let write = |name: &str, text: &str, mode: u32| -> Result<PathBuf, DemoError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = dir.join(name);
        let io = |source| DemoError::Io {
            what: format!("writing {}", path.display()),
            source,
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(io)?;
        Ok(path)
    };
    Ok(GatewayFiles {
        ca: write("ca.pem", &pki.ca_pem, 0o644)?,
        cert: write("gateway.crt", &pki.server.cert_pem, 0o644)?,
        key: write("gateway.key", &pki.server.key_pem, 0o600)?,
    })
}

/// As `curfew init` does for a policy with a `[gateway]`: the ledger (for `curfew_agent`),
/// `curfew.gateway_secret` (callable by the gateway's own role only, serving the roles the
/// policy says) and the session registry (the gateway records each session it logs in, so the
/// agent and `curfew.sessions` see the client behind it), installed by the superuser over the
/// cluster's Unix socket.
pub(super) async fn install_auth_function(
    cluster: &Cluster,
    policy: &Policy,
    agent_role: &str,
) -> Result<(), DemoError> {
    let gateway = policy.gateway.as_ref().ok_or(DemoError::NoGatewayAuth(
        "the demo policy has no [gateway]".to_owned(),
    ))?;
    let settings = GatewayAuth::for_gateway(gateway).ok_or(DemoError::NoGatewayAuth(
        "the demo policy's auth_url names no role".to_owned(),
    ))?;
    let mut url = ConnectionUrl::parse(&cluster.url(cluster.superuser(), "postgres"))?;
    url.hosts = vec![(
        Host::Socket(cluster.socket_dir().to_owned()),
        cluster.port(),
    )];
    let admin = TargetSpec {
        name: "demo".to_owned(),
        url,
        password_file: None,
    };
    let mut connection = curfew_postgres::connect(&admin).await?.connection;
    connection.install_ledger(agent_role).await?;
    let installed = connection.install_gateway_auth(&settings).await?;
    if !installed.installed {
        return Err(DemoError::NoGatewayAuth(installed.notes.join("; ")));
    }
    let registry = connection
        .install_gateway_registry(agent_role, &settings.gateway_role)
        .await?;
    if registry.installed {
        Ok(())
    } else {
        Err(DemoError::NoGatewayRegistry(registry.notes.join("; ")))
    }
}

/// The gateway, serving until [`RunningGateway::stop`]; dropped, it is aborted.
pub(super) struct RunningGateway {
    /// Where clients connect.
    pub(super) address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningGateway {
    /// Serves `policy`'s `[gateway]` on `listener` (bound by the caller, on the port the
    /// policy names), fetching verifiers as the gateway's role with the password in
    /// `auth_password_file`, enforcing the policy's rules on its sessions and recording them
    /// in its own audit log, `audit`.
    pub(super) fn start(
        listener: TcpListener,
        policy: &Policy,
        auth_password_file: PathBuf,
        audit: AuditLog,
    ) -> Result<RunningGateway, DemoError> {
        let address = listener.local_addr().map_err(|source| DemoError::Io {
            what: "reading the gateway's address".to_owned(),
            source,
        })?;
        let mut mapped = PolicyGateway::from_policy(policy)?;
        // A policy gives `auth_url` no password file of its own yet (only the target's, when
        // `auth_url` is the target's URL); the gateway's dedicated role has its own.
        mapped.auth.password_file = Some(auth_password_file);
        let source = Arc::new(AuthFunctionSource::new(mapped.auth));
        let gateway = Gateway::new(mapped.config, source)?;
        gateway.enforce(Arc::new(policy.clone()));
        gateway.audit_to(audit, "demo");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(curfew_gateway::run(vec![listener], gateway, async move {
            let _ = stopped.await;
        }));
        Ok(RunningGateway {
            address,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops taking clients and waits (up to 5 s) for the sessions still open to end; true if
    /// they did.
    pub(super) async fn stop(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_ok_and(|joined| joined.is_ok()),
            None => true,
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// TLS for the humans' side of the gateway, as libpq's `sslmode=verify-full` with
/// `sslrootcert` the demo's CA: the certificate's chain and its name are both checked.
pub(super) fn client_tls(ca: &Path) -> Result<MakeRustlsConnect, DemoError> {
    let mut url = ConnectionUrl::parse("postgresql://client@127.0.0.1/postgres")?;
    url.sslmode = SslMode::VerifyFull;
    url.sslrootcert = Some(ca.to_owned());
    let config = curfew_postgres::client_config(&url)?.ok_or_else(|| {
        curfew_postgres::TlsError::Config("sslmode=verify-full gave no TLS configuration".into())
    })?;
    Ok(MakeRustlsConnect::new(config))
}
