//! A SCRAM cluster with what `curfew init` installs for an agent and a gateway side by side:
//! the ledger, the gateway's auth function and its session registry.

use curfew_postgres::{ConnectionUrl, GatewayAuth, TargetSpec};
use curfew_sandbox::{Auth, Cluster, Options};

use super::Dir;

/// The password of `postgres`, `curfew_agent` and `curfew_gateway`.
pub const PASSWORD: &str = "pw-for-tests";

/// A plaintext URL to the cluster's `postgres` database as `user`.
pub fn url(cluster: &Cluster, user: &str) -> String {
    format!(
        "postgresql://{user}@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port()
    )
}

/// The cluster, with `curfew_agent` (`pg_read_all_stats`, `pg_signal_backend`, and
/// `agent_options` such as `CREATEROLE` for verify's canaries) and `curfew_gateway`, then
/// `more_sql` (other roles), then the gateway's auth function and registry for them.
pub async fn gateway_cluster(d: &Dir, agent_options: &str, more_sql: &str) -> Cluster {
    let cluster = curfew_testkit::started(Options {
        auth: Auth::Scram,
        ..Options::default()
    });
    cluster
        .psql(&format!(
            "ALTER ROLE postgres PASSWORD '{PASSWORD}';
             CREATE ROLE curfew_agent LOGIN {agent_options} PASSWORD '{PASSWORD}';
             GRANT pg_read_all_stats, pg_signal_backend TO curfew_agent;
             CREATE ROLE curfew_gateway LOGIN PASSWORD '{PASSWORD}';
             {more_sql}"
        ))
        .unwrap();
    let mut admin = curfew_postgres::connect(&TargetSpec {
        name: "db".to_owned(),
        url: ConnectionUrl::parse(&url(&cluster, "postgres")).unwrap(),
        password_file: Some(d.password_file(PASSWORD)),
    })
    .await
    .unwrap()
    .connection;
    admin.install_ledger("curfew_agent").await.unwrap();
    let auth = admin
        .install_gateway_auth(&GatewayAuth {
            gateway_role: "curfew_gateway".to_owned(),
            serve_members_of: None,
            serve_superusers: false,
        })
        .await
        .unwrap();
    assert!(auth.installed, "{auth:?}");
    let registry = admin
        .install_gateway_registry("curfew_agent", "curfew_gateway")
        .await
        .unwrap();
    assert!(registry.installed, "{registry:?}");
    cluster
}
