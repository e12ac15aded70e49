//! `curfew init` with a `[gateway]`: the gateway's auth function is installed on the target it
//! forwards to, callable by the gateway's own role (the user of `auth_url`) and by no other.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_ops::Step;
use curfew_policy::LoadedPolicy;
use curfew_testkit::cluster_with_agent_role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_installs_the_gateway_auth_function_for_the_gateway_role_only() {
    let cluster =
        cluster_with_agent_role("CREATE ROLE gw LOGIN; CREATE ROLE ana LOGIN PASSWORD 'pw';");
    let text = format!(
        "[[target]]\nname = \"db\"\nurl = \"{}\"\n\n[gateway]\nauth_url = \"{}\"\n\n[[rule]]\nname = \"idle\"\nidle = \"1h\"\n",
        cluster.url("curfew_agent", "postgres"),
        cluster.url("gw", "postgres"),
    );
    let loaded = LoadedPolicy::from_bytes_with(
        "curfew.toml",
        text.into_bytes(),
        Some(&[&curfew_postgres::POSTGRES_URLS]),
    )
    .unwrap();
    let request = curfew_ops::InitRequest {
        targets: curfew_ops::primaries(&loaded, None).unwrap(),
        agent_role: None,
        admin_user: Some(cluster.superuser()),
        admin_password_file: None,
        gateway: loaded.policy.gateway.as_ref(),
    };
    let mut steps = Vec::new();
    curfew_ops::init(&request, &mut |step| {
        steps.push(step);
        Ok(())
    })
    .await
    .unwrap();
    assert!(
        steps.iter().any(|s| matches!(s,
            Step::GatewayAuthInstalled { target, gateway_role, serve_members_of: None, serve_superusers: false }
                if target == "db" && gateway_role == "gw")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| matches!(s,
            Step::GatewayRegistryInstalled { target, gateway_role, agent_role }
                if target == "db" && gateway_role == "gw" && agent_role == "curfew_agent")),
        "{steps:?}"
    );
    let registry = "SELECT count(*) FROM curfew.gateway_sessions";
    let as_agent = cluster
        .psql(&format!("SET ROLE curfew_agent; {registry}"))
        .unwrap();
    assert_eq!(as_agent, "0");
    let as_gateway = cluster
        .psql(&format!("SET ROLE gw; {registry}"))
        .unwrap_err()
        .to_string();
    assert!(as_gateway.contains("permission denied"), "{as_gateway}");
    let executable = cluster
        .psql(&format!(
            "SELECT has_function_privilege('gw', '{}', 'EXECUTE'), has_function_privilege('curfew_agent', '{}', 'EXECUTE')",
            curfew_postgres::GATEWAY_REGISTER_FUNCTION,
            curfew_postgres::GATEWAY_REGISTER_FUNCTION
        ))
        .unwrap();
    assert_eq!(executable, "t|f");

    let query = "SELECT secret_kind FROM curfew.gateway_secret('ana')";
    let as_gateway = cluster.psql(&format!("SET ROLE gw; {query}")).unwrap();
    assert!(as_gateway.contains("scram-sha-256"), "{as_gateway}");
    let as_agent = cluster
        .psql(&format!("SET ROLE curfew_agent; {query}"))
        .unwrap_err()
        .to_string();
    assert!(as_agent.contains("permission denied"), "{as_agent}");
}
