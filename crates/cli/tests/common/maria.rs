//! Helpers for the tests that run the `curfew` binary against a real MariaDB.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use curfew_sandbox::{MariaDbOptions, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// curfew's account on the test servers, and its password.
pub const AGENT: &str = "curfew_agent";
const AGENT_PASSWORD: &str = "agent-secret";

/// A MariaDB server with curfew's account (`PROCESS`, `CONNECTION ADMIN`; its password
/// written to `password_file`, mode 0600) and a passwordless client account for each of
/// `users`, all at 127.0.0.1.
pub fn server_with(password_file: &Path, users: &[&str]) -> MariaDbServer {
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    let mut sql = format!(
        "CREATE USER '{AGENT}'@'127.0.0.1' IDENTIFIED BY '{AGENT_PASSWORD}';
         GRANT PROCESS, CONNECTION ADMIN ON *.* TO '{AGENT}'@'127.0.0.1';"
    );
    for user in users {
        sql.push_str(&format!("CREATE USER '{user}'@'127.0.0.1';"));
    }
    server.admin_sql(&sql).unwrap();
    std::fs::write(password_file, format!("{AGENT_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    server
}

/// What `curfew init` installs for curfew's account (`curfew_mysql::install_sql`: the anchor
/// store, the login-lock ledger's tables, view and procedure, their grants), run by the
/// administrator under the `sql_mode` curfew's sessions fix (init runs on one).
pub fn install_curfew(server: &MariaDbServer) {
    let mut script = String::from(
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION';\nDELIMITER //\n",
    );
    for statement in curfew_mysql::install_sql(
        &format!("'{AGENT}'@'127.0.0.1'"),
        curfew_mysql::Flavor::MariaDb {
            major: 10,
            minor: 5,
        },
    ) {
        script.push_str(&statement);
        script.push_str("\n//\n");
    }
    server.admin_sql(&script).unwrap();
}

/// A client session of `user` over TCP from 127.0.0.1.
pub async fn client(server: &MariaDbServer, user: &str) -> Conn {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port())
        .prefer_socket(false)
        .user(Some(user));
    Conn::new(opts).await.unwrap()
}

/// Whether the session still answers (which ends its idleness).
pub async fn alive(conn: &mut Conn) -> bool {
    tokio::time::timeout(Duration::from_secs(5), conn.query_drop("SELECT 1"))
        .await
        .is_ok_and(|r| r.is_ok())
}
