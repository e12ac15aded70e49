//! The MariaDB script applied to a real MariaDB server (`crates/sandbox`): the server-wide
//! timeouts take the values it writes, and every account of a named user, one with a quote
//! and a backtick in its name included, gets its MAX_USER_CONNECTIONS, whatever the SQL mode.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use curfew_sandbox::{MariaDbOptions, MariaDbServer};

fn policy(text: &str) -> curfew_policy::Policy {
    curfew_policy::parse_policy("t.toml", text, jiff::tz::db())
        .unwrap()
        .policy
}

#[test]
fn the_mariadb_script_applies_and_sets_what_it_says() {
    let server = MariaDbServer::start(MariaDbOptions::default()).unwrap();
    server
        .admin_sql(
            "CREATE USER 'o''k`x'@'%'; CREATE USER 'o''k`x'@'10.0.0.%';
             CREATE USER 'kim'@'%'; CREATE USER 'other'@'%';
             SET GLOBAL sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES');",
        )
        .unwrap();
    let script = curfew_compile::compile(
        &policy(
            "[[rule]]\nname = \"idle\"\nidle = \"15m\"\n\n\
             [[rule]]\nname = \"tx\"\nidle_in_transaction = \"5m\"\n\n\
             [[rule]]\nname = \"loose\"\nmax_sessions = 5\nroles = [\"o'k`x\", \"kim\"]\n\n\
             [[rule]]\nname = \"tight\"\nmax_sessions = 2\nroles = [\"o'k`x\"]\n",
        ),
        curfew_compile::Dialect::MariaDb,
        "t.toml",
        "abc",
    );
    server
        .admin_sql(&script)
        .unwrap_or_else(|e| panic!("{e}\n{script}"));
    let globals = server
        .admin_sql(
            "SELECT @@GLOBAL.wait_timeout, @@GLOBAL.interactive_timeout, @@GLOBAL.idle_transaction_timeout",
        )
        .unwrap();
    assert_eq!(globals, "990\t990\t360");
    let limits = server
        .admin_sql(
            "SELECT CONCAT(User, '@', Host, '=', max_user_connections) FROM mysql.user \
             WHERE max_user_connections > 0 ORDER BY User, Host",
        )
        .unwrap();
    // The strictest rule wins where two name the same user.
    assert_eq!(limits, "kim@%=5\no'k`x@%=2\no'k`x@10.0.0.%=2");
}
