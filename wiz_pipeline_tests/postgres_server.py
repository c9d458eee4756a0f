"""A throwaway PostgreSQL server on 127.0.0.1, for tests and benchmarks that need a real one.

Debian's ``postgresql`` package provides the binaries (scripts/_system_deps.sh installs it when
missing). ``initdb`` and ``pg_ctl`` refuse to run as root, and pytest-postgresql has no way to run them
as another user, so this small module does it: as root, the server runs as the ``postgres`` system user
with its data directory, socket and log in a private temporary directory owned by that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2

# The owner of the databases Dagster uses; a superuser is kept for creating them.
ROLE = "wiz_dagster"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed, or can't be run by this user."""


def find_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    directory: Path
    port: int
    password: str  # of ROLE, and of the superuser
    run_as: str | None  # the system user the server runs as when we are root

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _run(self, *command: str) -> None:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(command[:2])} failed: {done.stderr.strip()}\n{tail}")

    def start(self) -> None:
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            for path in (self.directory, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        data = str(self.directory / "data")
        self._run(
            "initdb", "-D", data, "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=md5",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        # Loopback only, the socket in the private directory; no fsync: the data is thrown away. Passwords
        # are checked with md5 rather than SCRAM: dagster-postgres opens a connection per query, and
        # SCRAM's deliberate key stretching doubles what each one costs the tests.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c password_encryption=md5 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "start", "-D", data, "-w", "-t", "60", "-l", str(self.directory / "server.log"),
                  "-o", options)  # fmt: skip
        with self._connect("postgres") as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD %s", (self.password,))

    def stop(self) -> None:
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w")

    def _connect(self, database: str):
        conn = psycopg2.connect(
            host=self.host, port=self.port, user=SUPERUSER, password=self.password, dbname=database
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> str:
        """A new empty database owned by ROLE; returns its name."""
        conn = self._connect("postgres")
        try:
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        finally:
            conn.close()
        return name

    def env(self, database: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/dagster-postgres.yaml reads, for ``database``."""
        return {
            "DAGSTER_PG_USERNAME": ROLE,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
        }


def start_server() -> PostgresServer:
    """Start a fresh server; raises PostgresUnavailable with what to do when it can't."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin): "
            "run scripts/test as root to install it, or `apt-get install postgresql`"
        )
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root, and there is no `postgres` system user to run the server as "
                "(Debian's postgresql package creates it)"
            ) from None
        run_as = "postgres"
    # Not under pytest's tmp_path: its parents are private to root, and the server's user must reach it.
    directory = Path(tempfile.mkdtemp(prefix="wiz-pg-"))
    server = PostgresServer(bin_dir, directory, _free_port(), secrets.token_urlsafe(16), run_as)
    try:
        server.start()
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.directory, ignore_errors=True)
