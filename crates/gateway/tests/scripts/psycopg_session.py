"""psycopg 3 against one endpoint (the server direct or curfew's gateway), run by clients.rs.

    python3 psycopg_session.py CONNINFO REFUSED_USER...

The password is PGPASSWORD. Each check prints "ok <name>" and the first failure raises (exit 1),
so the caller can tell which check failed; each refused login prints
"refused <user>: <server message>" for the caller to compare with the other endpoint's.
"""

import sys
import threading
import time

import psycopg
from psycopg import errors


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok {name}", flush=True)


def session(conninfo):
    with psycopg.connect(conninfo, application_name="psycopg through curfew") as conn:
        check("tls", conn.pgconn.ssl_in_use, "the connection is not encrypted")
        user, pid, app = conn.execute(
            "SELECT current_user, pg_backend_pid(), current_setting('application_name')"
        ).fetchone()
        check("query", user == "alice", user)
        check("backend pid", conn.info.backend_pid == pid, f"{conn.info.backend_pid} != {pid}")
        check("application_name", app == "psycopg through curfew", app)
        check(
            "parameter status",
            conn.info.parameter_status("server_version") is not None
            and conn.info.parameter_status("application_name") == "psycopg through curfew",
            "no server_version or application_name ParameterStatus",
        )

        # Server-side binding (Parse/Bind/Execute), text and binary, and a prepared statement.
        row = conn.execute("SELECT %s::int + %s, %s::text, %s::bytea", (40, 2, "é ü", b"\x00\xff")).fetchone()
        check("server-side parameters", row == (42, "é ü", b"\x00\xff"), repr(row))
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT %b::int8 * 2", (21,))
            check("binary parameters and results", cur.fetchone() == (42,))
        for n in range(3):
            conn.execute("SELECT %s::int AS n", (n,), prepare=True)
        prepared = conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int AS n%%'"
        ).fetchone()[0]
        check("prepared statement", prepared == 1, f"{prepared} prepared")
        conn.execute("SET work_mem = '3MB'")
        check("SET persists", conn.execute("SHOW work_mem").fetchone()[0] == "3MB")
        conn.commit()

        # Transactions: committed, rolled back, and a savepoint rolled back inside one.
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE tx (n int)")
            conn.execute("INSERT INTO tx VALUES (1)")
        with conn.transaction():
            conn.execute("INSERT INTO tx VALUES (2)")
            raise psycopg.Rollback()
        with conn.transaction():
            conn.execute("INSERT INTO tx VALUES (3)")
            with conn.transaction():
                conn.execute("INSERT INTO tx VALUES (4)")
                raise psycopg.Rollback()
        rows = [r[0] for r in conn.execute("SELECT n FROM tx ORDER BY n")]
        check("transactions", rows == [1, 3], repr(rows))
        conn.commit()
        try:
            with conn.transaction():
                conn.execute("SELECT 1/0")
        except errors.DivisionByZero:
            pass
        check("error then usable", conn.execute("SELECT 7").fetchone() == (7,))
        conn.commit()

        # COPY in (text), out (text and binary).
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE c (id int, name text)")
            with cur.copy("COPY c (id, name) FROM STDIN") as copy:
                for i in range(2000):
                    copy.write_row((i, f"name\t{i}"))
            with cur.copy("COPY c TO STDOUT") as copy:
                rows = list(copy.rows())
            check("copy in and out", len(rows) == 2000 and rows[5] == ("5", "name\t5"), repr(rows[:2]))
            with cur.copy("COPY (SELECT id, name FROM c ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text"])
                rows = list(copy.rows())
            check("binary copy out", rows[1999] == (1999, "name\t1999"), repr(rows[-1:]))
        conn.commit()

        # A pipeline of statements sent before their results are read.
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int", (i,)) for i in range(300)]
        values = [c.fetchone()[0] for c in cursors]
        check("pipeline", values == list(range(300)), repr(values[:3]))
        conn.commit()

    # Cancel of a running pg_sleep: the classic PQcancel, and psycopg's cancel_safe (libpq 17's
    # PQcancelConn, which sends the cancel over TLS like the session) where it exists.
    if not hasattr(psycopg.Connection, "cancel_safe"):
        raise AssertionError(f"psycopg {psycopg.__version__} lacks cancel_safe: 3.2 or newer is needed")
    for method in ["cancel", "cancel_safe"]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            def later():
                time.sleep(1.0)
                getattr(conn, method)()

            canceller = threading.Thread(target=later)
            canceller.start()
            started = time.monotonic()
            try:
                conn.execute("SELECT pg_sleep(60)")
                raise AssertionError(f"{method}: the sleep was not cancelled")
            except errors.QueryCanceled:
                pass
            canceller.join()
            elapsed = time.monotonic() - started
            check(f"{method} ends pg_sleep", elapsed < 30, f"{elapsed:.1f}s")
            check(f"usable after {method}", conn.execute("SELECT 1").fetchone() == (1,))


def refused(conninfo, users):
    for user in users:
        try:
            psycopg.connect(conninfo, user=user, password="not-the-password").close()
        except psycopg.OperationalError as error:
            text = str(error)
            # libpq prefixes the address ("connection to server at ..., port N failed: "),
            # which differs between the endpoints; the server's words follow "FATAL:".
            words = text[text.find("FATAL:"):] if "FATAL:" in text else text
            print(f"refused {user}: {words.strip()}", flush=True)
        else:
            raise AssertionError(f"{user} logged in with a wrong password")


if __name__ == "__main__":
    print(f"psycopg {psycopg.__version__}, libpq {psycopg.pq.version()}", flush=True)
    session(sys.argv[1])
    refused(sys.argv[1], sys.argv[2:])
