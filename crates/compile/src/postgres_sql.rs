//! The fixed SQL of the PostgreSQL output: the version check and the helpers that expand role
//! and database patterns when the script is applied.
//!
//! The helpers live in `pg_temp` for the one transaction the script runs in and are dropped
//! before it commits. Names are always passed to `format()` with `%I` (identifiers) and values
//! with `%L` (literals).

use crate::scope::Exempt;
use crate::text::literal;

/// A dollar-quote tag that occurs in none of `bodies`: `$curfew$`, else `$curfew1$`, ...
pub(crate) fn dollar_tag(bodies: &[&str]) -> String {
    let mut n = 0u32;
    loop {
        let tag = if n == 0 {
            "$curfew$".to_owned()
        } else {
            format!("$curfew{n}$")
        };
        if bodies.iter().all(|b| !b.contains(&tag)) {
            return tag;
        }
        n += 1;
    }
}

/// `ARRAY['a', 'b']::text[]` (or an empty text array).
pub(crate) fn text_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| literal(i)).collect();
    format!("ARRAY[{}]::text[]", items.join(", "))
}

/// The statements that check the server version and create the helpers.
pub(crate) fn prologue(exempt: &Exempt, agent_roles: &[String]) -> String {
    let roles_body = roles_function_body(exempt, agent_roles);
    let bodies = [
        VERSION_CHECK_BODY,
        LIKE_BODY,
        roles_body.as_str(),
        DATABASES_BODY,
        SET_BODY,
        CONNECTION_LIMIT_BODY,
    ];
    let tag = dollar_tag(&bodies);
    let mut out = String::new();
    out.push_str("BEGIN;\n");
    out.push_str(
        "-- Quotes in the literals below are doubled; backslashes are plain characters.\n",
    );
    out.push_str("SET LOCAL standard_conforming_strings = on;\n\n");
    out.push_str("-- idle_session_timeout exists from PostgreSQL 14 on.\n");
    out.push_str(&format!("DO {tag}{VERSION_CHECK_BODY}{tag};\n\n"));
    out.push_str(
        "-- Helpers for this transaction only (in pg_temp; dropped before COMMIT).\n\
         -- curfew_like: a policy name pattern (* any run of characters, ? one) as a LIKE pattern.\n",
    );
    out.push_str(&format!(
        "CREATE OR REPLACE FUNCTION pg_temp.curfew_like(pattern text) RETURNS text\n\
         LANGUAGE sql IMMUTABLE AS {tag}{LIKE_BODY}{tag};\n"
    ));
    out.push_str(
        "-- curfew_roles: the roles a rule's roles/member_of cover (memberships direct or through\n\
         -- other roles), without the exempt roles, curfew's own roles and the reserved pg_* roles.\n",
    );
    out.push_str(&format!(
        "CREATE OR REPLACE FUNCTION pg_temp.curfew_roles(roles text[], member_of text[]) RETURNS SETOF name\n\
         LANGUAGE sql STABLE AS {tag}{roles_body}{tag};\n"
    ));
    out.push_str(
        "-- curfew_databases: the databases (accepting connections) matching the patterns.\n",
    );
    out.push_str(&format!(
        "CREATE OR REPLACE FUNCTION pg_temp.curfew_databases(databases text[]) RETURNS SETOF name\n\
         LANGUAGE sql STABLE AS {tag}{DATABASES_BODY}{tag};\n"
    ));
    out.push_str(
        "-- curfew_set: ALTER ROLE ... [IN DATABASE ...] SET for each role (and database) in scope.\n",
    );
    out.push_str(&format!(
        "CREATE OR REPLACE PROCEDURE pg_temp.curfew_set(rule text, setting text, value text,\n    \
         roles text[] DEFAULT NULL, member_of text[] DEFAULT NULL, databases text[] DEFAULT NULL)\n\
         LANGUAGE plpgsql AS {tag}{SET_BODY}{tag};\n"
    ));
    out.push_str(
        "-- curfew_connection_limit: ALTER ROLE ... CONNECTION LIMIT for each role in scope.\n",
    );
    out.push_str(&format!(
        "CREATE OR REPLACE PROCEDURE pg_temp.curfew_connection_limit(rule text, sessions int,\n    \
         roles text[] DEFAULT NULL, member_of text[] DEFAULT NULL)\n\
         LANGUAGE plpgsql AS {tag}{CONNECTION_LIMIT_BODY}{tag};\n"
    ));
    out
}

/// The statements that drop the helpers and commit.
pub(crate) const EPILOGUE: &str = "\
DROP PROCEDURE pg_temp.curfew_connection_limit(text, int, text[], text[]);
DROP PROCEDURE pg_temp.curfew_set(text, text, text, text[], text[], text[]);
DROP FUNCTION pg_temp.curfew_databases(text[]);
DROP FUNCTION pg_temp.curfew_roles(text[], text[]);
DROP FUNCTION pg_temp.curfew_like(text);
COMMIT;
";

const VERSION_CHECK_BODY: &str = "
BEGIN
  IF current_setting('server_version_num')::int < 140000 THEN
    RAISE EXCEPTION 'curfew: these settings need PostgreSQL 14 or later; this server runs %',
      current_setting('server_version');
  END IF;
END
";

const LIKE_BODY: &str = r"
  SELECT replace(replace(replace(replace(replace(pattern,
    '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
";

fn roles_function_body(exempt: &Exempt, agent_roles: &[String]) -> String {
    format!(
        "
  WITH RECURSIVE up(member, grp) AS (
      SELECT oid, oid FROM pg_catalog.pg_roles
    UNION
      SELECT up.member, a.roleid FROM up JOIN pg_catalog.pg_auth_members a ON a.member = up.grp
  ), groups(member, name) AS (
    SELECT up.member, g.rolname FROM up JOIN pg_catalog.pg_roles g ON g.oid = up.grp
  )
  SELECT r.rolname FROM pg_catalog.pg_roles r
  WHERE left(r.rolname, 3) <> 'pg_'
    AND (curfew_roles.roles IS NULL OR r.rolname LIKE ANY
         (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(curfew_roles.roles) p)))
    AND (curfew_roles.member_of IS NULL OR EXISTS
         (SELECT FROM groups g WHERE g.member = r.oid AND g.name LIKE ANY
          (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(curfew_roles.member_of) p))))
    -- [exempt] roles
    AND NOT r.rolname LIKE ANY
        (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest({exempt_roles}) p))
    -- [exempt] member_of
    AND NOT EXISTS
        (SELECT FROM groups g WHERE g.member = r.oid AND g.name LIKE ANY
         (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest({exempt_member_of}) p)))
    -- curfew's own roles (the targets' users)
    AND r.rolname <> ALL ({agent_roles})
  ORDER BY 1
",
        exempt_roles = text_array(&exempt.roles),
        exempt_member_of = text_array(&exempt.member_of),
        agent_roles = text_array(agent_roles),
    )
}

const DATABASES_BODY: &str = "
  SELECT d.datname FROM pg_catalog.pg_database d
  WHERE d.datallowconn AND d.datname LIKE ANY
    (ARRAY(SELECT pg_temp.curfew_like(p) FROM unnest(curfew_databases.databases) p))
  ORDER BY 1
";

const SET_BODY: &str = "
DECLARE
  role_name name;
  database_name name;
  statement text;
  applied int := 0;
BEGIN
  FOR role_name IN SELECT pg_temp.curfew_roles(roles, member_of) LOOP
    IF databases IS NULL THEN
      statement := format('ALTER ROLE %I SET %I = %L', role_name, setting, value);
      EXECUTE statement;
      RAISE NOTICE 'curfew: rule %: %', rule, statement;
      applied := applied + 1;
    ELSE
      FOR database_name IN SELECT pg_temp.curfew_databases(databases) LOOP
        statement := format('ALTER ROLE %I IN DATABASE %I SET %I = %L',
                            role_name, database_name, setting, value);
        EXECUTE statement;
        RAISE NOTICE 'curfew: rule %: %', rule, statement;
        applied := applied + 1;
      END LOOP;
    END IF;
  END LOOP;
  IF applied = 0 THEN
    RAISE NOTICE 'curfew: rule %: no role (or database) in its scope exists; nothing set', rule;
  END IF;
END
";

const CONNECTION_LIMIT_BODY: &str = "
DECLARE
  role_name name;
  statement text;
  applied int := 0;
BEGIN
  FOR role_name IN SELECT pg_temp.curfew_roles(roles, member_of) LOOP
    statement := format('ALTER ROLE %I CONNECTION LIMIT %s', role_name, sessions);
    EXECUTE statement;
    RAISE NOTICE 'curfew: rule %: %', rule, statement;
    applied := applied + 1;
  END LOOP;
  IF applied = 0 THEN
    RAISE NOTICE 'curfew: rule %: no role in its scope exists; nothing set', rule;
  END IF;
END
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dollar_tag_never_occurs_in_a_body() {
        assert_eq!(dollar_tag(&["select 1"]), "$curfew$");
        assert_eq!(dollar_tag(&["x $curfew$ y", "$curfew1$"]), "$curfew2$");
    }

    #[test]
    fn arrays_quote_their_items_as_literals() {
        assert_eq!(
            text_array(&["a'b".to_owned(), "c".to_owned()]),
            "ARRAY['a''b', 'c']::text[]"
        );
        assert_eq!(text_array(&[]), "ARRAY[]::text[]");
    }
}
