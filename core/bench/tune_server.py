"""A throwaway PostgreSQL server for `bench tune-shared` and the tests of shared studies.

Debian's PostgreSQL (`/usr/lib/postgresql/<version>/bin`, installed by `make test` when missing)
runs a fresh cluster in a temporary folder: `initdb` as the `postgres` user when this process is
root (initdb refuses root), else as the current user; a free loopback port; trust authentication,
except for one role with a password (`PASSWORD_ROLE`), so a wrong password can be tried; fsync off.
The cluster is stopped and its folder removed at the end. `find_bin()` says in one sentence why a
server cannot be had here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import TransferLabError

PASSWORD_ROLE, PASSWORD = "tl_pw", "right-password"
_HBA = f"""local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


def find_bin() -> Path:
    """The folder of PostgreSQL's server programs; TransferLabError when there is none or it cannot be run here."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise TransferLabError("PostgreSQL's server is not installed (Debian: apt-get install postgresql).")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise TransferLabError("PostgreSQL refuses to run as root and 'runuser' is missing to run it as 'postgres'.")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running throwaway cluster."""

    bin: Path
    data: Path
    port: int

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> str:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
        if proc.returncode != 0:
            raise TransferLabError(f"PostgreSQL's {args[0]} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        return proc.stdout

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql as the superuser (CREATE DATABASE cannot run in a transaction)."""
        return self._run("psql", "-h", str(self.data), "-p", str(self.port), "-U", "postgres", "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-qAt", "-c", statement)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL (trust auth)."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def throwaway_server() -> Iterator[Server]:
    """A fresh cluster for the block; stopped and removed afterwards."""
    bin_dir = find_bin()
    data = Path(tempfile.mkdtemp(prefix="tl-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        server = Server(bin_dir, data, _free_port())
        server._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8",
                    "--no-sync")
        (data / "pg_hba.conf").write_text(_HBA)
        if os.geteuid() == 0:
            shutil.chown(data / "pg_hba.conf", "postgres", "postgres")
        server.start()
        try:
            server.sql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            yield server
        finally:
            with contextlib.suppress(TransferLabError, subprocess.TimeoutExpired):
                server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
