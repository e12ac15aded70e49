//! The MariaDB sandbox: started, reachable as its administrator, restarted, removed on drop.
#![allow(clippy::unwrap_used)]

use curfew_sandbox::{MariaDbOptions, MariaDbServer};

#[test]
fn a_server_starts_answers_restarts_and_is_removed_on_drop() {
    let mut server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    let version = server.admin_sql("SELECT VERSION()").unwrap();
    assert!(version.contains("MariaDB"), "{version}");
    assert_eq!(
        server
            .admin_sql("SELECT @@port, @@performance_schema")
            .unwrap(),
        format!("{}\t1", server.port())
    );
    server.admin_sql("CREATE DATABASE kept").unwrap();
    server.restart().unwrap();
    assert!(server.is_running());
    assert_eq!(
        server.admin_sql("SHOW DATABASES LIKE 'kept'").unwrap(),
        "kept"
    );
    let data = server.data_dir();
    assert!(data.exists());
    drop(server);
    assert!(!data.exists(), "{} is left behind", data.display());
}

#[test]
fn a_failing_statement_reports_the_client_s_error() {
    let server = MariaDbServer::start(MariaDbOptions {
        performance_schema: false,
        ..MariaDbOptions::default()
    })
    .unwrap();
    let err = server.admin_sql("SELECT * FROM no_such_table").unwrap_err();
    assert!(err.to_string().contains("No database selected"), "{err}");
}
