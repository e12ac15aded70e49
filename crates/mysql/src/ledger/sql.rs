//! The ledger's tables in the `curfew` database and the statements that read the server's
//! accounts. Instants are microseconds since the epoch on the server's clock (as the session
//! statements read them), so no time zone is ever involved.

/// The database the ledger lives in (an administrator creates it and grants curfew's account
/// every privilege on it; curfew creates its tables).
pub const DATABASE: &str = "curfew";

/// The server's clock, microseconds since the epoch.
pub(crate) const NOW_US: &str = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)";

/// The ledger's tables, created if missing: a stable id per user name (the loop's role ids),
/// the locks, and what curfew did or is doing to each account (intent, then applied).
pub(crate) const CREATE_TABLES: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS `curfew`.`account` (\
       id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
       user VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       UNIQUE KEY (user)) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS `curfew`.`login_lock` (\
       id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
       account_id INT UNSIGNED NOT NULL, \
       user VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       kind VARCHAR(16) NOT NULL, \
       rule VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, \
       reason TEXT CHARACTER SET utf8mb4 NOT NULL, \
       created_by TEXT CHARACTER SET utf8mb4 NOT NULL, \
       created_at BIGINT NOT NULL, \
       expires_at BIGINT NULL, \
       released_at BIGINT NULL, \
       released_by TEXT CHARACTER SET utf8mb4 NULL, \
       announced_created BOOL NOT NULL DEFAULT 0, \
       announced_released BOOL NOT NULL DEFAULT 0, \
       KEY (account_id), KEY (released_at)) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS `curfew`.`account_change` (\
       user VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       host VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       action VARCHAR(8) NOT NULL, \
       applied BOOL NOT NULL, \
       was_locked BOOL NOT NULL, \
       PRIMARY KEY (user, host)) ENGINE=InnoDB",
];

/// How many of the ledger's tables exist.
pub(crate) const COUNT_TABLES: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = 'curfew' AND TABLE_NAME IN ('account', 'login_lock', 'account_change')";

/// Whether the `curfew` database exists (and curfew's account sees it).
pub(crate) const HAS_DATABASE: &str =
    "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'curfew'";

/// Every account with its locked state, `access` bits and whether it is a role (MariaDB 10.4+).
pub(crate) const ACCOUNTS: &str = "SELECT CONVERT(User USING utf8mb4), CONVERT(Host USING utf8mb4), \
     JSON_VALUE(Priv, '$.account_locked'), JSON_VALUE(Priv, '$.access'), \
     JSON_VALUE(Priv, '$.is_role') FROM mysql.global_priv";

/// A stable id for every user name not yet given one.
pub(crate) const NEW_IDS: &str = "INSERT INTO `curfew`.`account` (user) \
     SELECT DISTINCT CONVERT(g.User USING utf8mb4) FROM mysql.global_priv g \
     WHERE g.User <> '' AND NOT EXISTS (SELECT 1 FROM `curfew`.`account` a \
       WHERE a.user = CONVERT(g.User USING utf8mb4) COLLATE utf8mb4_bin)";

/// The columns of a lock row, in `LockRow`'s order.
pub(crate) const LOCK_COLUMNS: &str = "id, account_id, user, kind, rule, reason, created_by, \
     created_at, expires_at, released_at, released_by";
