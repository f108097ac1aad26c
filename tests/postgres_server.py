"""A real PostgreSQL 15 for tests: ``initdb`` into a temporary directory with ``wal_level=logical``, run as the
``postgres`` user (the server refuses root), on a free loopback port, stopped at the end."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from ripple._aio import free_port

__all__ = ["PostgresServer", "pg_bin_dir", "postgres_server"]


def pg_bin_dir() -> Path | None:
    """Debian's PostgreSQL binaries (the newest installed version), or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    port: int
    data_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def create_database(self) -> str:
        name = f"t_{secrets.token_hex(4)}"
        conn = psycopg2.connect(self.dsn(), connect_timeout=10)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return name

    def execute(self, database: str, *statements: str) -> None:
        with psycopg2.connect(self.dsn(database), connect_timeout=10) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.close()


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (hack/test.sh installs Debian's postgresql package)")
    root = Path(tempfile.mkdtemp(prefix="ripple-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    subprocess.run(_as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                "--no-sync", "-E", "UTF8"), check=True, capture_output=True, timeout=120)
    port = free_port()
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c wal_level=logical -c fsync=off "
               "-c max_replication_slots=20 -c max_wal_senders=20")
    subprocess.run(_as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                                "-w", "start"), check=True, capture_output=True, timeout=120)
    server = PostgresServer(port, data)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(server.dsn(), connect_timeout=2).close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run(_as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
