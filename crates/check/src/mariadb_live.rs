//! `curfew check` on a live MariaDB/MySQL target: connect as the agent does, read the facts
//! [`crate::mariadb`] judges (global variables, curfew's grants, the accounts), judge them.

use std::collections::BTreeMap;

use curfew_mysql::{Connection, Flavor, MysqlError, MysqlTarget, global_privileges};
use mysql_async::prelude::Queryable;

use crate::mariadb::{Account, MariaDbFacts, VARIABLES, judge_mariadb};
use crate::{Checked, DatabaseGrant, Finding, LeaderHolder, PolicyContext, Status};

/// Connect to a MariaDB/MySQL target and judge it. An account that lacks a privilege the agent
/// needs cannot connect: that is the privileges finding, and the rest is not checked.
pub(crate) async fn check_mariadb(
    target: &curfew_policy::Target,
    context: PolicyContext<'_>,
) -> Checked {
    let spec = match MysqlTarget::from_policy(target) {
        Ok(spec) => spec,
        Err(e) => {
            return crate::checked::unreachable(target, String::new(), e.to_string(), Vec::new());
        }
    };
    let db_role = spec.url.user.clone();
    let connected = match curfew_mysql::connect(&spec).await {
        Ok(connected) => connected,
        Err(MysqlError::MissingPrivileges {
            account, missing, ..
        }) => return missing_privileges(target, db_role, &account, &missing),
        Err(e) => return crate::checked::unreachable(target, db_role, e.to_string(), Vec::new()),
    };
    let warnings = connected.warnings;
    let mut connection = connected.connection;
    match read_facts(&mut connection).await {
        Ok(facts) => {
            let mut findings = judge_mariadb(&facts, context);
            findings.push(read_leader(&mut connection, &facts, context).await);
            Checked {
                target: target.name.clone(),
                db_role,
                server: Some(server_name(&facts)),
                findings,
                warnings,
            }
        }
        Err(e) => crate::checked::unreachable(target, db_role, e, warnings),
    }
}

/// CURFEW-MARIADB-LEADER from the leader lock's holder and its announcement; UNKNOWN when the
/// holders cannot be read.
async fn read_leader(
    connection: &mut Connection,
    facts: &MariaDbFacts,
    context: PolicyContext<'_>,
) -> Finding {
    let account = curfew_mysql::account_name(&facts.user, &facts.host);
    match connection.lock_holders().await {
        Ok(holders) => {
            let holder = holders.into_iter().find(|h| h.granted).map(|h| LeaderHolder {
                id: u64::try_from(h.pid).unwrap_or_default(),
                account: h.role.unwrap_or_default(),
                own_account: h.own_role,
                announcement: h.application,
            });
            crate::leader(holder.as_ref(), &account, context)
        }
        Err(e) => Finding {
            id: "CURFEW-MARIADB-LEADER",
            title: "A curfew agent enforces this policy on the server",
            requirement: "NIST SP 800-171 3.1.11[b]: sessions are terminated after the defined conditions",
            status: Status::Unknown,
            observed: format!("the leader lock's holders could not be read: {e}"),
            expected: "the leader lock held by curfew's account, announcing enforcement of this policy".to_owned(),
            why: String::new(),
            fix: "SELECT IS_USED_LOCK('curfew_leader'); and look that connection up in information_schema.PROCESSLIST.".to_owned(),
        },
    }
}

/// "MariaDB 10.11.14-MariaDB-0+deb12u2", "MySQL 8.0.36".
fn server_name(facts: &MariaDbFacts) -> String {
    match facts.flavor {
        Flavor::MariaDb { .. } => format!("MariaDB {}", facts.version),
        Flavor::MySql => format!("MySQL {}", facts.version),
    }
}

/// The findings when curfew's account lacks what the agent needs: the exact GRANTs, and the
/// other checks named as not run.
fn missing_privileges(
    target: &curfew_policy::Target,
    db_role: String,
    account: &str,
    missing: &[String],
) -> Checked {
    let mut findings = vec![Finding {
        id: "CURFEW-MARIADB-PRIVILEGES",
        title: "curfew's account has exactly the privileges it needs",
        requirement: "curfew's own security: least privilege (NIST SP 800-171 3.1.5)",
        status: Status::Fail,
        observed: format!("{account} lacks: {}", missing.join("; ")),
        expected: "PROCESS and the privilege to end connections (CONNECTION ADMIN on MariaDB 10.5+, CONNECTION_ADMIN on MySQL)".to_owned(),
        why: "curfew's account cannot see or end other accounts' sessions, so the agent refuses to run on this target".to_owned(),
        fix: missing
            .iter()
            .map(|s| format!("{s};"))
            .collect::<Vec<_>>()
            .join(" "),
    }];
    for (id, title) in [
        (
            "CURFEW-MARIADB-TIMEOUT",
            "V-253717 (MariaDB) / V-235185 (MySQL): idle sessions are ended per the policy, native timeouts as the backstop",
        ),
        ("CURFEW-MARIADB-TLS", "Clients must use TLS 1.2 or later"),
        (
            "CURFEW-MARIADB-NOPASSWORD",
            "No account logs in without a password",
        ),
        (
            "CURFEW-MARIADB-LOGGING",
            "Connections and disconnections are logged",
        ),
        (
            "CURFEW-MARIADB-STORE",
            "Only administrators may change the curfew database (curfew's own account by table grants only)",
        ),
        ("CURFEW-CLOCK", "This host's clock agrees with the server's"),
        (
            "CURFEW-MARIADB-LEADER",
            "A curfew agent enforces this policy on the server",
        ),
    ] {
        findings.push(Finding {
            id,
            title,
            requirement: "the check itself",
            status: Status::Unknown,
            observed: "not checked: curfew's account lacks the privileges the agent needs (see CURFEW-MARIADB-PRIVILEGES)".to_owned(),
            expected: "a connection with the agent's privileges".to_owned(),
            why: String::new(),
            fix: "Grant what CURFEW-MARIADB-PRIVILEGES names, then check again.".to_owned(),
        });
    }
    Checked {
        target: target.name.clone(),
        db_role,
        server: None,
        findings,
        warnings: Vec::new(),
    }
}

async fn read_facts(connection: &mut Connection) -> Result<MariaDbFacts, String> {
    let info = connection.info().clone();
    let target = connection.target().to_owned();
    let conn = connection.inspection();
    let fail =
        |what: &str, e: mysql_async::Error| format!("target \"{target}\": {what} failed: {e}");
    // Names are fixed text of ours; `IN` keeps it one round trip.
    let list = VARIABLES
        .iter()
        .map(|v| curfew_mysql::string_literal(v))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE LOWER(VARIABLE_NAME) IN ({list})"
        ))
        .await
        .map_err(|e| fail("reading the server's variables", e))?;
    let variables: BTreeMap<String, String> = rows.into_iter().collect();
    // SHOW GRANTS may carry a password hash: only the privilege lists are kept.
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(|e| fail("SHOW GRANTS", e))?;
    let privileges = global_privileges(&grants);
    drop(grants);
    let accounts = read_accounts(conn, info.flavor).await;
    let clock = read_clock(conn)
        .await
        .map_err(|e| fail("reading the server's clock", e))?
        .ok_or_else(|| format!("target \"{target}\": no usable reading of the server's clock"))?;
    let database_grants = read_database_grants(conn).await;
    let own_database_grants = read_own_database_grants(conn, &info.user, &info.host)
        .await
        .map_err(|e| fail("reading curfew's database grants", e))?;
    Ok(MariaDbFacts {
        database_grants,
        own_database_grants,
        clock,
        version: info.version,
        flavor: info.flavor,
        user: info.user,
        host: info.host,
        variables,
        privileges,
        accounts,
    })
}

/// The accounts, each secret reduced on the server to whether it is empty (no hash is read).
async fn read_accounts(
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
) -> Result<Vec<Account>, String> {
    let rows: Vec<mysql_async::Row> = match flavor {
        // 10.4+: accounts live in mysql.global_priv as JSON; mysql.user is a view without the
        // lock flag. curfew's account reads them through `curfew init`'s view (no SELECT on
        // mysql.global_priv, which holds the hashes); an administrator running check without
        // the view reads the table.
        Flavor::MariaDb { .. } => {
            let view = conn
                .query(
                    "SELECT user, host, plugin, no_password, \
                     IFNULL(account_locked, '0') IN ('1', 'true'), \
                     IFNULL(is_role, '0') IN ('1', 'true') FROM `curfew`.`account_state`",
                )
                .await;
            match view {
                Ok(rows) => rows,
                Err(_) => conn
                    .query(
                        "SELECT User, Host, IFNULL(JSON_VALUE(Priv, '$.plugin'), ''), \
                         IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '', \
                         IFNULL(JSON_VALUE(Priv, '$.account_locked'), '0') IN ('1', 'true'), \
                         IFNULL(JSON_VALUE(Priv, '$.is_role'), '0') IN ('1', 'true') \
                         FROM mysql.global_priv",
                    )
                    .await
                    .map_err(|e| e.to_string())?,
            }
        }
        Flavor::MySql => conn
            .query(
                "SELECT User, Host, plugin, IFNULL(authentication_string, '') = '', \
                 account_locked = 'Y', FALSE FROM mysql.user",
            )
            .await
            .map_err(|e| e.to_string())?,
    };
    rows.into_iter()
        .map(|row| {
            let text = |i: usize| -> Result<String, String> {
                match row.get_opt::<Option<String>, usize>(i) {
                    Some(Ok(v)) => Ok(v.unwrap_or_default()),
                    _ => Err(format!("column {i} of an account row is not text")),
                }
            };
            let flag = |i: usize| -> Result<bool, String> {
                match row.get_opt::<Option<i64>, usize>(i) {
                    Some(Ok(v)) => Ok(v.unwrap_or(0) != 0),
                    _ => Err(format!("column {i} of an account row is not a number")),
                }
            };
            Ok(Account {
                user: text(0)?,
                host: text(1)?,
                plugin: text(2)?,
                empty_secret: flag(3)?,
                locked: flag(4)?,
                role: flag(5)?,
            })
        })
        .collect()
}

/// Every database-level grant from `mysql.db` (readable by administrators only), each row's
/// privileges named as `GRANT` names them.
async fn read_database_grants(conn: &mut mysql_async::Conn) -> Result<Vec<DatabaseGrant>, String> {
    let columns = [
        ("Select_priv", "SELECT"),
        ("Insert_priv", "INSERT"),
        ("Update_priv", "UPDATE"),
        ("Delete_priv", "DELETE"),
        ("Create_priv", "CREATE"),
        ("Drop_priv", "DROP"),
        ("Grant_priv", "GRANT OPTION"),
        ("References_priv", "REFERENCES"),
        ("Index_priv", "INDEX"),
        ("Alter_priv", "ALTER"),
        ("Create_tmp_table_priv", "CREATE TEMPORARY TABLES"),
        ("Lock_tables_priv", "LOCK TABLES"),
        ("Create_view_priv", "CREATE VIEW"),
        ("Show_view_priv", "SHOW VIEW"),
        ("Create_routine_priv", "CREATE ROUTINE"),
        ("Alter_routine_priv", "ALTER ROUTINE"),
        ("Execute_priv", "EXECUTE"),
        ("Event_priv", "EVENT"),
        ("Trigger_priv", "TRIGGER"),
    ];
    let list = columns
        .iter()
        .map(|(column, name)| format!("IF({column} = 'Y', '{name}', NULL)"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(String, String, String, String)> = conn
        .query(format!(
            "SELECT User, Host, Db, CONCAT_WS(',', {list}) FROM mysql.db"
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|(user, host, database, privileges)| DatabaseGrant {
            user,
            host,
            database,
            privileges: split_privileges(&privileges),
        })
        .collect())
}

/// curfew's own database-level grants, from `information_schema.SCHEMA_PRIVILEGES` (which
/// shows an account its own).
async fn read_own_database_grants(
    conn: &mut mysql_async::Conn,
    user: &str,
    host: &str,
) -> Result<Vec<DatabaseGrant>, mysql_async::Error> {
    let grantee = format!("'{user}'@'{host}'");
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_SCHEMA, GROUP_CONCAT(PRIVILEGE_TYPE) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? GROUP BY TABLE_SCHEMA",
            (grantee,),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(database, privileges)| DatabaseGrant {
            user: user.to_owned(),
            host: host.to_owned(),
            database,
            privileges: split_privileges(&privileges),
        })
        .collect())
}

fn split_privileges(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Three readings of the server's clock between two of this host's; the one with the shortest
/// round trip bounds the offset best.
async fn read_clock(
    conn: &mut mysql_async::Conn,
) -> Result<Option<curfew_postgres::ClockReading>, mysql_async::Error> {
    let mut samples = Vec::new();
    for _ in 0..3 {
        let before = jiff::Timestamp::now();
        let micros: Option<i64> = conn
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .await?;
        let after = jiff::Timestamp::now();
        if let Some(server) = micros.and_then(|m| jiff::Timestamp::from_microsecond(m).ok()) {
            samples.push((before, server, after));
        }
    }
    Ok(curfew_postgres::ClockReading::from_samples(&samples))
}
