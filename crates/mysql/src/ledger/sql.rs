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

/// The accounts as curfew reads them: a view an administrator creates (`curfew init`), run
/// with its definer's rights, so curfew's account needs no `SELECT` on `mysql.global_priv`,
/// whose rows hold every account's password hash. It shows each account's name, locked
/// state, `access` bits, whether it is a role, its authentication plugin and whether it has
/// no password: never the hash.
pub(crate) const CREATE_ACCOUNT_STATE: &str = "CREATE OR REPLACE DEFINER = CURRENT_USER \
     SQL SECURITY DEFINER VIEW `curfew`.`account_state` AS SELECT \
     CONVERT(User USING utf8mb4) COLLATE utf8mb4_bin AS user, \
     CONVERT(Host USING utf8mb4) COLLATE utf8mb4_bin AS host, \
     JSON_VALUE(Priv, '$.account_locked') AS account_locked, \
     JSON_VALUE(Priv, '$.access') AS access, \
     JSON_VALUE(Priv, '$.is_role') AS is_role, \
     IFNULL(JSON_VALUE(Priv, '$.plugin'), '') AS plugin, \
     IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '' AS no_password \
     FROM mysql.global_priv";

/// `access` bits of an account administrator, whom curfew never locks: `SUPER`, `GRANT
/// OPTION` and `CREATE USER` on `*.*` (MariaDB's `SUPER_ACL`, `GRANT_ACL`, `CREATE_USER_ACL`;
/// 10.5+ split `SUPER`, so an administrator may hold `ALL` without it).
pub(crate) const ADMIN_ACL: u64 = (1 << 15) | (1 << 10) | (1 << 25);

/// The accounts `curfew.set_account_lock` locked, so that it unlocks those and no other (an
/// account an administrator locked stays locked whoever asks). Only the procedure's definer
/// writes it: curfew's account has no grant on it, unlike the ledger's own tables.
pub(crate) const CREATE_LOCKED_ACCOUNT_TABLE: &str = "CREATE TABLE IF NOT EXISTS \
     `curfew`.`locked_account` (\
       user VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       host VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       PRIMARY KEY (user, host)) ENGINE=InnoDB";

/// An upgrade from a version that locked accounts with `CREATE USER`: the accounts the
/// ledger says curfew locked (not those locked before it) are taken as the procedure's own.
/// `curfew init` runs it as the administrator, who vouches for the ledger at that moment.
pub(crate) const ADOPT_LOCKED_ACCOUNTS: &str = "INSERT IGNORE INTO `curfew`.`locked_account` \
     (user, host) SELECT user, host FROM `curfew`.`account_change` \
     WHERE action = 'lock' AND applied AND NOT was_locked";

/// The one account change curfew makes, as a procedure an administrator creates (`curfew
/// init`) and curfew's account may only execute: `ALTER USER ... ACCOUNT LOCK/UNLOCK` of an
/// existing account that is no role, no account administrator ([`ADMIN_ACL`]) and not the
/// server's own locked `mariadb.sys` (it reads and deletes `mysql.global_priv`: unlocked, it
/// has no password); an `UNLOCK` only of an account it locked itself (`curfew.locked_account`,
/// recorded before the `ALTER USER`). Without it curfew's account would need `CREATE USER`,
/// with which it could change any account's password, an administrator's included. The names
/// are quoted by the server (`QUOTE`) under the procedure's own `sql_mode` (the one `curfew
/// init`'s session fixes: no `NO_BACKSLASH_ESCAPES`), so no name can end the string it is in.
/// Errors: 1396 for no such account, 1227 for one it refuses.
pub(crate) const CREATE_SET_ACCOUNT_LOCK: &str = "CREATE OR REPLACE DEFINER = CURRENT_USER \
     PROCEDURE `curfew`.`set_account_lock`(\
       IN in_user VARCHAR(128) CHARACTER SET utf8mb4, \
       IN in_host VARCHAR(255) CHARACTER SET utf8mb4, \
       IN in_lock BOOLEAN) \
     MODIFIES SQL DATA SQL SECURITY DEFINER \
     COMMENT 'curfew: lock an account that is no role and no administrator, or unlock one it locked' \
     BEGIN \
       DECLARE v_access BIGINT UNSIGNED DEFAULT NULL; \
       DECLARE v_role BOOLEAN DEFAULT FALSE; \
       DECLARE v_locked BOOLEAN DEFAULT FALSE; \
       DECLARE v_found INT DEFAULT 0; \
       SELECT COUNT(*), MAX(CAST(IFNULL(JSON_VALUE(Priv, '$.access'), '0') AS UNSIGNED)), \
         MAX(IFNULL(JSON_VALUE(Priv, '$.is_role'), 'false') IN ('1', 'true')), \
         MAX(IFNULL(JSON_VALUE(Priv, '$.account_locked'), 'false') IN ('1', 'true')) \
         INTO v_found, v_access, v_role, v_locked FROM mysql.global_priv \
         WHERE CONVERT(User USING utf8mb4) COLLATE utf8mb4_bin = in_user \
           AND CONVERT(Host USING utf8mb4) COLLATE utf8mb4_bin = in_host; \
       IF v_found <> 1 OR in_lock IS NULL THEN \
         SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1396, \
           MESSAGE_TEXT = 'curfew.set_account_lock: no such account'; \
       END IF; \
       IF v_role OR (v_access & 33588224) <> 0 OR in_user = 'mariadb.sys' THEN \
         SIGNAL SQLSTATE '42000' SET MYSQL_ERRNO = 1227, \
           MESSAGE_TEXT = 'curfew.set_account_lock: curfew never locks a role, the server''s own account or an administrator (SUPER, GRANT OPTION or CREATE USER)'; \
       END IF; \
       IF in_lock THEN \
         IF NOT v_locked THEN \
           INSERT IGNORE INTO `curfew`.`locked_account` (user, host) VALUES (in_user, in_host); \
           PREPARE curfew_alter_user FROM CONCAT('ALTER USER ', QUOTE(in_user), '@', \
             QUOTE(in_host), ' ACCOUNT LOCK'); \
           EXECUTE curfew_alter_user; \
           DEALLOCATE PREPARE curfew_alter_user; \
         END IF; \
       ELSE \
         IF v_locked THEN \
           IF NOT EXISTS (SELECT 1 FROM `curfew`.`locked_account` \
                          WHERE user = in_user AND host = in_host) THEN \
             SIGNAL SQLSTATE '42000' SET MYSQL_ERRNO = 1227, \
               MESSAGE_TEXT = 'curfew.set_account_lock: curfew did not lock this account; an administrator unlocks it'; \
           END IF; \
           PREPARE curfew_alter_user FROM CONCAT('ALTER USER ', QUOTE(in_user), '@', \
             QUOTE(in_host), ' ACCOUNT UNLOCK'); \
           EXECUTE curfew_alter_user; \
           DEALLOCATE PREPARE curfew_alter_user; \
         END IF; \
         DELETE FROM `curfew`.`locked_account` WHERE user = in_user AND host = in_host; \
       END IF; \
     END";

/// An account `curfew.set_account_lock` locked, renamed since by an administrator (`RENAME
/// USER` keeps the lock): its record moves to the new host, so curfew can unlock it when its
/// lock ends. Only when the old account is gone, was the procedure's, and the new one is of
/// the same user and locked; 1227 otherwise. (An account someone else locked while one of
/// curfew's was dropped would pass too: the server cannot tell the two apart.)
pub(crate) const CREATE_MOVE_ACCOUNT_LOCK: &str = "CREATE OR REPLACE DEFINER = CURRENT_USER \
     PROCEDURE `curfew`.`move_account_lock`(\
       IN in_user VARCHAR(128) CHARACTER SET utf8mb4, \
       IN in_from VARCHAR(255) CHARACTER SET utf8mb4, \
       IN in_to VARCHAR(255) CHARACTER SET utf8mb4) \
     MODIFIES SQL DATA SQL SECURITY DEFINER \
     COMMENT 'curfew: an account curfew locked was renamed; its lock is still curfew''s' \
     BEGIN \
       IF EXISTS (SELECT 1 FROM `curfew`.`locked_account` \
                  WHERE user = in_user AND host = in_from) \
          AND NOT EXISTS (SELECT 1 FROM mysql.global_priv \
                  WHERE CONVERT(User USING utf8mb4) COLLATE utf8mb4_bin = in_user \
                    AND CONVERT(Host USING utf8mb4) COLLATE utf8mb4_bin = in_from) \
          AND EXISTS (SELECT 1 FROM mysql.global_priv \
                  WHERE CONVERT(User USING utf8mb4) COLLATE utf8mb4_bin = in_user \
                    AND CONVERT(Host USING utf8mb4) COLLATE utf8mb4_bin = in_to \
                    AND IFNULL(JSON_VALUE(Priv, '$.account_locked'), 'false') IN ('1', 'true')) \
       THEN \
         DELETE FROM `curfew`.`locked_account` WHERE user = in_user AND host = in_from; \
         INSERT IGNORE INTO `curfew`.`locked_account` (user, host) VALUES (in_user, in_to); \
       ELSE \
         SIGNAL SQLSTATE '42000' SET MYSQL_ERRNO = 1227, \
           MESSAGE_TEXT = 'curfew.move_account_lock: not a renamed account curfew locked'; \
       END IF; \
     END";

/// The canary accounts `curfew verify` made through [`CREATE_CREATE_CANARY`], so that
/// [`CREATE_DROP_CANARY`] drops those and no other. curfew's account has no grant on it.
pub(crate) const CREATE_CANARY_TABLE: &str = "CREATE TABLE IF NOT EXISTS `curfew`.`canary` (\
       user VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       host VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       created_at BIGINT NOT NULL, \
       PRIMARY KEY (user, host)) ENGINE=InnoDB";

/// `curfew verify`'s canary account made without `CREATE USER` on curfew's account: a new
/// account (no account of that user name may exist: none is ever taken over) with no
/// privileges, its password given only as a `mysql_native_password` hash, recorded first in
/// `curfew.canary` (the record removed again if the `CREATE USER` fails, as when an
/// administrator made that account in between: `drop_canary` must never drop it). Errors: 1396
/// for a name in use or bad arguments.
///
/// Whoever holds curfew's account could otherwise make login accounts at will: the user name
/// must carry the canary mark (`curfew_canary_`, so that every such account is recognisable as
/// verify's), and at most 100 may exist at once (a run makes one per rule
/// it tests and drops them; leftovers of a run that was killed count until dropped).
pub(crate) const CREATE_CREATE_CANARY: &str = "CREATE OR REPLACE DEFINER = CURRENT_USER \
     PROCEDURE `curfew`.`create_canary`(\
       IN in_user VARCHAR(128) CHARACTER SET utf8mb4, \
       IN in_host VARCHAR(255) CHARACTER SET utf8mb4, \
       IN in_hash VARCHAR(41) CHARACTER SET ascii) \
     MODIFIES SQL DATA SQL SECURITY DEFINER \
     COMMENT 'curfew verify: a new account without privileges, for one run' \
     BEGIN \
       IF in_user IS NULL OR in_user = '' OR in_host IS NULL OR in_hash IS NULL \
          OR in_hash NOT REGEXP '^[*][0-9A-F]{40}$' THEN \
         SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1396, \
           MESSAGE_TEXT = 'curfew.create_canary: bad arguments'; \
       END IF; \
       IF LOCATE('curfew_canary_', in_user) = 0 THEN \
         SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1396, \
           MESSAGE_TEXT = 'curfew.create_canary: a canary user name carries curfew_canary_'; \
       END IF; \
       IF (SELECT COUNT(*) FROM `curfew`.`canary`) >= 100 THEN \
         SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1396, \
           MESSAGE_TEXT = 'curfew.create_canary: 100 canary accounts exist (curfew.canary): drop the leftovers of killed runs first'; \
       END IF; \
       IF EXISTS (SELECT 1 FROM mysql.global_priv \
                  WHERE CONVERT(User USING utf8mb4) COLLATE utf8mb4_bin = in_user) THEN \
         SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1396, \
           MESSAGE_TEXT = 'curfew.create_canary: an account of that user name exists'; \
       END IF; \
       INSERT INTO `curfew`.`canary` (user, host, created_at) \
         VALUES (in_user, in_host, UNIX_TIMESTAMP()); \
       BEGIN \
         DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN \
           DELETE FROM `curfew`.`canary` WHERE user = in_user AND host = in_host; \
           RESIGNAL; \
         END; \
         PREPARE curfew_create_user FROM CONCAT('CREATE USER ', QUOTE(in_user), '@', \
           QUOTE(in_host), ' IDENTIFIED WITH mysql_native_password AS ', QUOTE(in_hash)); \
         EXECUTE curfew_create_user; \
         DEALLOCATE PREPARE curfew_create_user; \
       END; \
     END";

/// Drops a canary account [`CREATE_CREATE_CANARY`] made (its sessions are the caller's to end
/// first), and nothing when the account is not one it made: harmless to call again.
pub(crate) const CREATE_DROP_CANARY: &str = "CREATE OR REPLACE DEFINER = CURRENT_USER \
     PROCEDURE `curfew`.`drop_canary`(\
       IN in_user VARCHAR(128) CHARACTER SET utf8mb4, \
       IN in_host VARCHAR(255) CHARACTER SET utf8mb4) \
     MODIFIES SQL DATA SQL SECURITY DEFINER \
     COMMENT 'curfew verify: drop a canary account curfew.create_canary made' \
     BEGIN \
       IF EXISTS (SELECT 1 FROM `curfew`.`canary` WHERE user = in_user AND host = in_host) THEN \
         PREPARE curfew_drop_user FROM CONCAT('DROP USER IF EXISTS ', QUOTE(in_user), '@', \
           QUOTE(in_host)); \
         EXECUTE curfew_drop_user; \
         DEALLOCATE PREPARE curfew_drop_user; \
         DELETE FROM `curfew`.`canary` WHERE user = in_user AND host = in_host; \
       END IF; \
     END";

/// Every account with its locked state, `access` bits and whether it is a role (MariaDB 10.4+).
pub(crate) const ACCOUNTS: &str =
    "SELECT user, host, account_locked, access, is_role FROM `curfew`.`account_state`";

/// A stable id for every user name not yet given one.
pub(crate) const NEW_IDS: &str = "INSERT INTO `curfew`.`account` (user) \
     SELECT DISTINCT g.user FROM `curfew`.`account_state` g \
     WHERE g.user <> '' AND NOT EXISTS (SELECT 1 FROM `curfew`.`account` a \
       WHERE a.user = g.user)";

/// The columns of a lock row, in `LockRow`'s order.
pub(crate) const LOCK_COLUMNS: &str = "id, account_id, user, kind, rule, reason, created_by, \
     created_at, expires_at, released_at, released_by";

#[cfg(test)]
mod tests {
    use super::*;

    /// How many canary accounts [`CREATE_CREATE_CANARY`] lets exist at once.
    const MAX_CANARY_ACCOUNTS: u32 = 100;

    #[test]
    fn create_canary_caps_the_accounts_and_requires_the_mark() {
        assert!(CREATE_CREATE_CANARY.contains(&format!(
            "(SELECT COUNT(*) FROM `curfew`.`canary`) >= {MAX_CANARY_ACCOUNTS} THEN"
        )));
        assert!(CREATE_CREATE_CANARY.contains(&format!(
            "LOCATE('{}', in_user) = 0 THEN",
            curfew_policy::CANARY_MARK
        )));
    }
}
