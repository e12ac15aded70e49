"""psycopg 3 as a user whose session curfew's gateway enforces a policy on, run by
clients_enforce.rs. One connection (autocommit), then STEPs in order:

    python3 psycopg_enforce.py CONNINFO STEP...      (the password in PGPASSWORD)

    exec:SQL        run SQL (BEGIN opens a transaction: autocommit is on)
    sleep:SECONDS   sleep without touching the connection (a user away from the keyboard)
    watch:SECONDS   wait on the connection's socket and read what arrives (a client that
                    listens while idle), until it closes or the time is up
    every:SECONDS:TOTAL:SQL
                    run SQL every SECONDS for TOTAL seconds, stopping at the first error

Each event is a line of tab-separated fields, seconds since the login second:

    login   AT
    refused AT  CLASS  SQLSTATE  TEXT                     (the login failed)
    notice  AT  -      SQLSTATE  SEVERITY  MESSAGE  HINT  (through the notice handler)
    ok      AT  SQL
    error   AT  CLASS  SQLSTATE  SEVERITY  MESSAGE  HINT  DETAIL
    closed  AT  CLASS  TEXT                               (watch: the connection ended)
"""

import select
import sys
import time

import psycopg

started = time.monotonic()


def field(value):
    """A field on one line: newlines and tabs written as escapes."""
    return "" if value is None else str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def event(kind, *fields):
    at = f"{time.monotonic() - started:.2f}"
    print("\t".join([kind, at] + [field(f) for f in fields]), flush=True)


def on_notice(diag):
    event("notice", "-", diag.sqlstate, diag.severity, diag.message_primary, diag.message_hint)


def error(e):
    diag = e.diag
    event(
        "error",
        type(e).__name__,
        e.sqlstate or diag.sqlstate,
        diag.severity,
        diag.message_primary or str(e),
        diag.message_hint,
        diag.message_detail,
    )


def run(conn, sql):
    """Runs sql; False when it failed."""
    try:
        conn.execute(sql)
    except psycopg.Error as e:
        error(e)
        return False
    event("ok", sql)
    return True


def watch(conn, seconds):
    """Reads what the server sends while the session is idle: libpq hands a notice, and an
    error that arrives outside a query, to the notice handler."""
    pgconn = conn.pgconn
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        readable, _, _ = select.select([pgconn.socket], [], [], max(0.0, until - time.monotonic()))
        if not readable:
            continue
        try:
            pgconn.consume_input()
            pgconn.is_busy()
        except psycopg.OperationalError as e:
            event("closed", type(e).__name__, str(e))
            return
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            event("closed", "ConnStatus", pgconn.status.name)
            return


def main(conninfo, steps):
    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name="psycopg enforced")
    except psycopg.OperationalError as e:
        event("refused", type(e).__name__, e.sqlstate, str(e))
        return
    event("login")
    conn.add_notice_handler(on_notice)
    for step in steps:
        kind, _, rest = step.partition(":")
        if kind == "exec":
            run(conn, rest)
        elif kind == "sleep":
            time.sleep(float(rest))
        elif kind == "watch":
            watch(conn, float(rest))
        elif kind == "every":
            interval, total, sql = rest.split(":", 2)
            until = time.monotonic() + float(total)
            while time.monotonic() < until and run(conn, sql):
                time.sleep(float(interval))
        else:
            raise SystemExit(f"unknown step {step!r}")
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
