//! The fixed SQL of the login trigger (`curfew compile --dialect postgres --login-trigger`):
//! the functions that evaluate windows with the server's clock, and the decision itself. The
//! policy's data (rules, windows, exemptions) comes in through functions that
//! [`crate::login_trigger`] writes; names and values in this text are never built from policy
//! text.

/// `curfew.login_like(pattern)`: a policy name pattern (`*` any run of characters, `?` one) as a
/// `LIKE` pattern, `\`, `%` and `_` escaped.
pub(crate) const LIKE_BODY: &str = r"
  SELECT replace(replace(replace(replace(replace(pattern,
    '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
";

/// `curfew.login_matches(subject, patterns)`: whether `subject` matches one of the patterns (false for
/// none).
pub(crate) const MATCHES_BODY: &str = "
  SELECT coalesce(login_matches.subject LIKE ANY
    (ARRAY(SELECT curfew.login_like(p) FROM unnest(login_matches.patterns) p)), false)
";

/// `curfew.login_instances(rule, zone, at)`: the instances of the rule's windows near `at`, as
/// instants. Weekly windows: each day from two before to nine after `at`'s date in the zone (a
/// week and a day each side of what can matter); civil times become instants with `AT TIME
/// ZONE zone`, the server's time zone data, never the session's `TimeZone`.
pub(crate) const INSTANCES_BODY: &str = "
  WITH local AS (
    SELECT (login_instances.at_instant AT TIME ZONE login_instances.zone_name)::date AS today
  ), dates AS (
    SELECT (local.today + g.n)::timestamp AS day FROM local, generate_series(-2, 9) AS g(n)
  ), civil AS (
    SELECT d.day + make_interval(mins => w.from_min) AS opens,
           d.day + make_interval(days => CASE WHEN w.to_min <= w.from_min THEN 1 ELSE 0 END,
                                 mins => w.to_min) AS closes
    FROM curfew.login_windows() w JOIN dates d
      ON (w.days >> (extract(isodow FROM d.day)::int - 1)) & 1 = 1
    WHERE w.rule = login_instances.rule_name AND w.days IS NOT NULL
    UNION ALL
    SELECT w.range_start, w.range_end FROM curfew.login_windows() w
    WHERE w.rule = login_instances.rule_name AND w.days IS NULL
  )
  SELECT c.opens AT TIME ZONE login_instances.zone_name, c.closes AT TIME ZONE login_instances.zone_name
  FROM civil c
  WHERE (c.opens AT TIME ZONE login_instances.zone_name) < (c.closes AT TIME ZONE login_instances.zone_name)
";

/// `curfew.login_refusal(who, groups)`: the message refusing `who`'s login now, or NULL. The
/// order is the per-session engine's: an incident lock refuses even an exempt role; then the
/// exemptions pass; then a window lock the agent recorded; then each `lock_logins` rule, in the
/// policy's order.
pub(crate) const REFUSAL_BODY: &str = "
DECLARE
  who_oid oid;
  groups text[];
  r record;
  l record;
  inside boolean;
  edge timestamptz;
  later timestamptz;
  opens_text text;
BEGIN
  SELECT oid INTO who_oid FROM pg_catalog.pg_roles WHERE rolname = who;
  -- Memberships, direct or through other roles.
  WITH RECURSIVE up(grp) AS (
      SELECT a.roleid FROM pg_catalog.pg_auth_members a WHERE a.member = who_oid
    UNION
      SELECT a.roleid FROM up JOIN pg_catalog.pg_auth_members a ON a.member = up.grp
  )
  SELECT coalesce(array_agg(g.rolname::text), '{}') INTO groups
  FROM up JOIN pg_catalog.pg_roles g ON g.oid = up.grp;

  -- Locks recorded in curfew's ledger (curfew lock; the agent's window locks).
  FOR l IN
    SELECT k.kind, k.rule, k.reason, k.expires_at FROM curfew.lock k
    WHERE k.role_oid = who_oid AND k.released_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > clock_timestamp())
    ORDER BY k.kind = 'incident' DESC, k.id
  LOOP
    IF l.kind = 'incident' THEN
      IF l.expires_at IS NULL THEN
        RETURN format(curfew.login_message('incident'), who, l.reason);
      END IF;
      RETURN format(curfew.login_message('incident_until'), who, l.reason,
                    to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'));
    END IF;
  END LOOP;

  IF EXISTS (SELECT FROM curfew.login_exemptions() e
             WHERE (e.roles IS NULL OR curfew.login_matches(who, e.roles))
               AND (e.member_of IS NULL OR curfew.login_matches(who, e.member_of)
                    OR EXISTS (SELECT FROM unnest(groups) g
                               WHERE curfew.login_matches(g, e.member_of)))) THEN
    RETURN NULL;
  END IF;

  FOR l IN
    SELECT k.rule, k.reason FROM curfew.lock k
    WHERE k.role_oid = who_oid AND k.kind = 'window' AND k.released_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > clock_timestamp())
    ORDER BY k.id LIMIT 1
  LOOP
    RETURN format(curfew.login_message('window_lock'), who, l.reason, l.rule);
  END LOOP;

  FOR r IN SELECT * FROM curfew.login_rules() LOOP
    CONTINUE WHEN r.roles IS NOT NULL AND NOT curfew.login_matches(who, r.roles);
    CONTINUE WHEN r.member_of IS NOT NULL AND NOT curfew.login_matches(who, r.member_of)
      AND NOT EXISTS (SELECT FROM unnest(groups) g WHERE curfew.login_matches(g, r.member_of));
    SELECT coalesce(bool_or(i.opens <= now() AND now() < i.closes), false) INTO inside
    FROM curfew.login_instances(r.rule, r.zone, now()) i;
    CONTINUE WHEN inside = (r.kind = 'allow');
    IF r.kind = 'allow' THEN
      -- Outside every window: logins open at the next opening.
      SELECT min(i.opens) INTO edge FROM curfew.login_instances(r.rule, r.zone, now()) i
      WHERE i.opens > now();
    ELSE
      -- Inside a deny window: logins open at its end (windows that touch count as one).
      edge := now();
      LOOP
        SELECT max(i.closes) INTO later FROM curfew.login_instances(r.rule, r.zone, now()) i
        WHERE i.opens <= edge AND edge < i.closes;
        EXIT WHEN later IS NULL;
        edge := later;
      END LOOP;
    END IF;
    IF edge IS NULL THEN
      RETURN format(r.closed_message, who);
    END IF;
    opens_text := CASE
      WHEN (edge AT TIME ZONE r.zone)::date = (now() AT TIME ZONE r.zone)::date
        THEN to_char(edge AT TIME ZONE r.zone, 'HH24:MI')
      ELSE to_char(edge AT TIME ZONE r.zone, 'Dy YYYY-MM-DD HH24:MI')
    END;
    RETURN format(r.opens_message, who, opens_text);
  END LOOP;
  RETURN NULL;
END
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_text_reads_the_clock_in_the_rules_zone_only() {
        // The session's TimeZone (the client's choice) never decides: every conversion names
        // the rule's zone (or UTC), and no bare ::timestamptz cast reads the session's.
        for body in [INSTANCES_BODY, REFUSAL_BODY] {
            assert!(!body.contains("::timestamptz"), "{body}");
            assert!(!body.contains("current_setting"), "{body}");
            assert!(!body.contains("localtime"), "{body}");
        }
        assert_eq!(REFUSAL_BODY.matches("AT TIME ZONE r.zone").count(), 4);
    }
}
