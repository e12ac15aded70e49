//! The steps `curfew_ops::lock` and `unlock` report on a real server where no agent leads: the
//! change recorded, the stand-in started, the change applied by it; and the operator's mistakes
//! refused before anything is recorded.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_ops::{AfterLift, Completion, OpsError, Step};
use curfew_policy::LoadedPolicy;
use curfew_postgres::PolicyTarget;
use curfew_sandbox::Cluster;
use curfew_testkit::{TempDir, cluster_with_agent_role};

fn policy(cluster: &Cluster) -> LoadedPolicy {
    let text = format!(
        "[agent]\ninterval = \"1s\"\n\n[[target]]\nname = \"db\"\nurl = \"{}\"\n\n[[rule]]\nname = \"idle\"\nidle = \"1h\"\nroles = [\"kim\"]\n",
        cluster.url("curfew_agent", "postgres")
    );
    LoadedPolicy::from_bytes_with(
        "curfew.toml",
        text.into_bytes(),
        Some(&[&curfew_postgres::POSTGRES_URLS]),
    )
    .unwrap()
}

/// Every step but the warnings (which depend on how the sandbox is reached).
fn collect(steps: &mut Vec<Step>) -> impl FnMut(Step) -> std::io::Result<()> + '_ {
    |step| {
        if !matches!(step, Step::Warning(_)) {
            steps.push(step);
        }
        Ok(())
    }
}

async fn init(cluster: &Cluster, loaded: &LoadedPolicy) {
    let request = curfew_ops::InitRequest {
        targets: curfew_ops::primaries(loaded, None).unwrap(),
        agent_role: None,
        admin_user: Some(cluster.superuser()),
        admin_password_file: None,
        gateway: None,
    };
    let mut steps = Vec::new();
    curfew_ops::init(&request, &mut collect(&mut steps))
        .await
        .unwrap();
    assert!(
        matches!(&steps[0], Step::Installed { target, agent_role, schema_existed: false, .. }
            if target == "db" && agent_role == "curfew_agent"),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_where_no_agent_leads_is_recorded_then_applied_by_the_stand_in() {
    let cluster = cluster_with_agent_role("CREATE ROLE ana LOGIN;");
    let loaded = policy(&cluster);
    init(&cluster, &loaded).await;
    let dir = TempDir::new("ops", "lock_steps");
    let audit = dir.join("audit.jsonl");
    let wait: curfew_policy::Limit = "15s".parse().unwrap();

    let request = curfew_ops::LockRequest {
        targets: curfew_ops::primaries(&loaded, None).unwrap(),
        role: "ana",
        reason: " INC-1: leaked ",
        until: None,
        wait,
        audit_log: Some(&audit),
    };
    let mut steps = Vec::new();
    let done = curfew_ops::lock(
        &loaded,
        &request,
        PolicyTarget::from_policy,
        &mut collect(&mut steps),
    )
    .await
    .unwrap();
    assert_eq!(done, Completion::Applied);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(
        matches!(&steps[0], Step::Recorded { target, role, until: None, sessions: 0, .. }
            if target == "db" && role == "ana"),
        "{steps:?}"
    );
    assert_eq!(
        steps[1],
        Step::StandInStarted {
            targets: vec!["db".to_owned()],
            audit_log: audit.clone(),
        }
    );
    assert_eq!(
        steps[2],
        Step::Applied {
            target: "db".to_owned(),
            role: "ana".to_owned(),
            disabled_by_curfew: true,
            sessions_ended: 0,
        }
    );
    let login = cluster
        .psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ana';")
        .unwrap();
    assert_eq!(login.trim(), "f", "ana can still log in");

    let request = curfew_ops::UnlockRequest {
        targets: curfew_ops::primaries(&loaded, None).unwrap(),
        role: "ana",
        reason: "INC-1 closed",
        wait,
        audit_log: Some(&audit),
    };
    let mut steps = Vec::new();
    let done = curfew_ops::unlock(
        &loaded,
        &request,
        PolicyTarget::from_policy,
        &mut collect(&mut steps),
    )
    .await
    .unwrap();
    assert_eq!(done, Completion::Applied);
    assert_eq!(
        steps,
        vec![
            Step::StandInStarted {
                targets: vec!["db".to_owned()],
                audit_log: audit.clone(),
            },
            Step::Lifted {
                target: "db".to_owned(),
                role: "ana".to_owned(),
                login: AfterLift::CanLogIn,
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_usage_errors_and_record_nothing() {
    let cluster =
        cluster_with_agent_role("CREATE ROLE ana LOGIN; CREATE ROLE boss LOGIN SUPERUSER;");
    let loaded = policy(&cluster);
    init(&cluster, &loaded).await;
    let lock = |role: &'static str| curfew_ops::LockRequest {
        targets: curfew_ops::primaries(&loaded, None).unwrap(),
        role,
        reason: "INC-2",
        until: None,
        wait: "1s".parse().unwrap(),
        audit_log: None,
    };
    type Expected = fn(&OpsError) -> bool;
    let cases: [(&str, Expected); 4] = [
        ("nobody", |e| matches!(e, OpsError::NoSuchRole { .. })),
        ("boss", |e| matches!(e, OpsError::Superuser { .. })),
        ("curfew_agent", |e| matches!(e, OpsError::OwnRole { .. })),
        // No agent leads and the policy names no audit log: nowhere to record the change.
        ("ana", |e| matches!(e, OpsError::NoAuditLog)),
    ];
    for (role, expected) in cases {
        let mut steps = Vec::new();
        let error = curfew_ops::lock(
            &loaded,
            &lock(role),
            PolicyTarget::from_policy,
            &mut collect(&mut steps),
        )
        .await
        .unwrap_err();
        assert!(expected(&error), "{role}: {error:?}");
        assert!(error.is_usage(), "{role}: {error}");
        assert!(steps.is_empty(), "{role}: {steps:?}");
    }
    let locks = cluster.psql("SELECT count(*) FROM curfew.lock;").unwrap();
    assert_eq!(locks.trim(), "0", "a lock was recorded");
    assert!(matches!(
        curfew_ops::primaries(&loaded, Some("elsewhere")),
        Err(OpsError::NoPrimaryTarget { .. })
    ));
}
