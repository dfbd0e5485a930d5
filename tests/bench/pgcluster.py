"""A throwaway PostgreSQL cluster at the server's durable defaults, for the benchmarks.

The test server of ``.ci/pg`` runs with ``fsync=off``; a latency target "at the durable
default" needs a server that flushes its WAL at every commit: ``initdb`` in a temporary
folder, started on a free loopback port with no durability setting changed (fsync on,
synchronous_commit on, full_page_writes on), stopped and deleted after. As root the
server runs as the ``postgres`` account (PostgreSQL refuses root).

Usage::

    with durable_cluster() as url:      # postgresql+psycopg://postgres@127.0.0.1:PORT/bench
        ...
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _bin() -> str:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    found = shutil.which("pg_ctl")
    if found is None:
        raise RuntimeError("no PostgreSQL server binaries (pg_ctl) here")
    return os.path.dirname(found)


def _as_pg(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def durable_cluster(max_connections: int = 300) -> Iterator[str]:
    """A fresh cluster at durable defaults; yields the URL of its database ``bench``."""
    b = _bin()
    top = tempfile.mkdtemp(prefix="paytoken-pgdurable-")
    data = os.path.join(top, "data")
    if os.getuid() == 0:
        shutil.chown(top, "postgres", "postgres")
    port = _free_port()
    started = False
    try:
        subprocess.run(_as_pg([f"{b}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        # only the port, the socket folder and the connection count are set: durability as shipped
        subprocess.run(_as_pg([f"{b}/pg_ctl", "-D", data, "-l", os.path.join(top, "server.log"), "-w", "-t", "60",
                               "-o", f"-p {port} -k {top} -c listen_addresses=127.0.0.1 "
                                     f"-c max_connections={max_connections}", "start"]),
                       check=True, capture_output=True)
        started = True
        subprocess.run([f"{b}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "bench"],
                       check=True, capture_output=True)
        out = subprocess.run([f"{b}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAc",
                              "SELECT current_setting('fsync') || ' ' || current_setting('synchronous_commit')",
                              "bench"], check=True, capture_output=True, text=True).stdout.split()
        if out != ["on", "on"]:
            raise RuntimeError(f"the throwaway cluster is not at durable defaults: fsync, synchronous_commit = {out}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench"
    finally:
        if started:
            subprocess.run(_as_pg([f"{b}/pg_ctl", "-D", data, "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
