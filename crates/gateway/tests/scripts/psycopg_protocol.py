"""psycopg 3 on libpq 18 with max_protocol_version=latest against one endpoint, run by
protocol_3_2.rs: the protocol libpq negotiated, libpq's pid against the server's, and a cancel
of a running pg_sleep by each of libpq's two APIs (cancel_safe: PQcancelBlocking, over TLS like
the session; cancel: PQcancel), each with the session's key (32 bytes on 3.2).

    python3 psycopg_protocol.py CONNINFO        (the password in PGPASSWORD)
"""

import sys
import threading
import time

import psycopg
from psycopg import errors

print(f"libpq {psycopg.pq.version()}", flush=True)
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    print(f"protocol {conn.pgconn.full_protocol_version}", flush=True)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    print("pid ok" if pid == conn.info.backend_pid else f"pid {pid} != {conn.info.backend_pid}")
    for method in ("cancel_safe", "cancel"):
        timer = threading.Timer(1.0, getattr(conn, method))
        timer.start()
        started = time.monotonic()
        try:
            conn.execute("SELECT pg_sleep(60)")
            print(f"{method} did not cancel", flush=True)
        except errors.QueryCanceled:
            elapsed = time.monotonic() - started
            print(f"{method} cancelled" if elapsed < 30 else f"{method} took {elapsed:.0f}s", flush=True)
        timer.join()
    print(f"after cancels {conn.execute('SELECT 42').fetchone()[0]}", flush=True)
