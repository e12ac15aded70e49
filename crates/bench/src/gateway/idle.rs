//! Memory per idle client: a proxy's resident memory before and after it holds many idle,
//! authenticated clients.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::config::SslMode;

use crate::error::BenchError;
use crate::gateway::proxies::Proxy;

/// How a client logs in for the idle measurement.
pub(crate) struct Login<'a> {
    /// The role.
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
    /// The database.
    pub database: &'a str,
    /// TLS on the client leg, trusting the test CA; `None`: plaintext.
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
}

/// How many logins are in flight at once while opening.
const OPENING_AT_ONCE: usize = 32;

/// Log in once through `port`.
async fn open(port: u16, login: &Login<'_>) -> Result<Client, BenchError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(login.user)
        .password(login.password)
        .dbname(login.database)
        .connect_timeout(Duration::from_secs(30));
    let open_error = |source| BenchError::Open {
        role: login.user.to_owned(),
        source,
    };
    match login.tls {
        Some(tls) => {
            config.ssl_mode(SslMode::Require);
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
            let (client, connection) = config.connect(connector).await.map_err(open_error)?;
            tokio::spawn(connection);
            Ok(client)
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(open_error)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// A process's resident memory in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss_kib(&status)
}

/// `VmRSS` from the text of `/proc/PID/status`, in KiB.
pub(crate) fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// One proxy's figure: RSS before, after `clients` idle clients, and the difference per client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleMemory {
    /// `curfew gateway` or `pgbouncer`.
    pub proxy: &'static str,
    /// TLS on the client leg.
    pub tls: bool,
    /// Idle clients held.
    pub clients: usize,
    /// RSS before they connected (KiB).
    pub rss_before_kib: u64,
    /// RSS while they are connected and idle (KiB).
    pub rss_after_kib: u64,
    /// (after − before) / clients, in KiB.
    pub kib_per_client: f64,
}

/// Warm `proxy` up with one login, then hold `clients` idle logins and read its RSS.
pub(crate) async fn measure(
    proxy: &mut Proxy,
    clients: usize,
    login: &Login<'_>,
) -> Result<IdleMemory, BenchError> {
    // The first login loads what every later one shares (TLS configuration, threads).
    drop(open(proxy.port, login).await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = proxy.pid();
    let before = rss_kib(pid).ok_or_else(|| proxy.failed("no /proc status".to_owned()))?;
    let mut held = Vec::with_capacity(clients);
    while held.len() < clients {
        let batch = OPENING_AT_ONCE.min(clients - held.len());
        let opened =
            futures_util::future::try_join_all((0..batch).map(|_| open(proxy.port, login))).await?;
        held.extend(opened);
    }
    // Let the proxy settle (buffers returned, handshakes' temporary state freed).
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.check_alive()?;
    let after = rss_kib(pid).ok_or_else(|| proxy.failed("no /proc status".to_owned()))?;
    drop(held);
    Ok(IdleMemory {
        proxy: proxy.kind.name(),
        tls: login.tls.is_some(),
        clients,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_client: after.saturating_sub(before) as f64 / clients.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nThreads:\t2\n";
        assert_eq!(vm_rss_kib(status), Some(1234));
        assert_eq!(vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_an_rss() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
