"""A throw-away PostgreSQL cluster on 127.0.0.1 for the portal's database tests.

Debian's `postgresql` binaries (initdb, pg_ctl) make a fresh cluster in a temporary
folder, on a free port, trusted for local connections only, and remove it after.
PostgreSQL refuses to run as root, so as root the cluster is run as the `postgres`
user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> bool:
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster; yields its SQLAlchemy URL base (add a database name)."""
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="costloop-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, log = folder / "data", folder / "log"
    port = _free_port()
    try:
        subprocess.run(
            [
                *as_user,
                _binary("initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "costloop",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [
                *as_user,
                _binary("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://costloop@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def new_database(base: str) -> str:
    """A fresh, empty database in the cluster; its URL."""
    import psycopg

    name = f"portal_{uuid.uuid4().hex[:12]}"
    port = base.rsplit(":", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=costloop dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"
