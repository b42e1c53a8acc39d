"""A throwaway PostgreSQL cluster for the tests: Debian's ``postgresql`` binaries (``make deb-packages``),
``initdb`` in a temporary folder, ``pg_ctl`` on a free loopback port, removed at the end.

PostgreSQL refuses to run as root: under root the cluster belongs to the ``postgres`` user the Debian
package creates, and every server command runs through ``runuser``. The folder must then be reachable by
that user, so it is made under a world-traversable temporary folder (never pytest's root-only
``/tmp/pytest-of-root``).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

ROLE = "otklik"
DATABASE = "otklik"
SERVER_USER = "postgres"  # the system user of Debian's package, when the tests run as root


class PostgresError(RuntimeError):
    """The cluster could not be made, started or used; the message carries the server log's tail."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (/usr/lib/postgresql/<major>/bin)."""
    found = glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise PostgresError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make deb-packages`"
        )

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    return Path(max(found, key=major)).parent


def _traversable_by_others(path: Path) -> bool:
    """Whether every folder from / down to ``path`` lets another user pass through (o+x)."""
    for folder in [path, *path.parents]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return True


def cluster_parent() -> Path:
    """Where to make the cluster folder: the temporary folder, or /tmp when that one is closed to others."""
    for candidate in (Path(tempfile.gettempdir()), Path("/tmp")):
        if candidate.is_dir() and _traversable_by_others(candidate.resolve()):
            return candidate
    raise PostgresError("no temporary folder the postgres user can reach (TMPDIR and /tmp are closed to others)")


@dataclass
class LocalPostgres:
    """One cluster: a superuser reached by the unix socket in the cluster folder (trust, local only), and
    the role ``otklik`` with a password over TCP on 127.0.0.1 (scram-sha-256), owner of database ``otklik``.

    Tuned for tests (no fsync): a crash of the machine loses the cluster, which is thrown away anyway.
    """

    root: Path
    port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    bin: Path = field(default_factory=bin_dir)

    @classmethod
    def create(cls, port: int) -> LocalPostgres:
        root = Path(tempfile.mkdtemp(prefix="otklik-pg-", dir=cluster_parent()))
        return cls(root=root, port=port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL of ``database`` as the role ``otklik`` over TCP."""
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (FileNotFoundError, PermissionError):
            return "(no log)"

    # ---- the server ------------------------------------------------------------------------------

    def _run(self, *argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """A server command, as the postgres user under root; its output goes to the log (never a pipe
        the postmaster could inherit and hold open)."""
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        with open(self.root / "commands.log", "a", encoding="utf-8") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            result = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, text=True
            )
        if result.returncode != 0:
            raise PostgresError(
                f"{argv[0]} exited with {result.returncode}:\n{self._commands_tail()}\n--- server log ---\n"
                f"{self.log_tail()}"
            )
        return result

    def _commands_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.root / "commands.log").read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no output)"

    def start(self) -> None:
        """initdb, start on the port, and create the role and its database."""
        if self.as_root:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        (self.root / "commands.log").touch()
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",  # the unix socket lives in the cluster folder, not /run/postgresql
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", "-o", options, "start")
        self.admin(
            f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self.password}'",
            f"CREATE DATABASE {DATABASE} OWNER {ROLE}",
        )

    def stop(self) -> None:
        """Stop the server (fast: connections are cut) and remove the cluster folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def admin(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser over the unix socket, each in its own autocommit transaction
        (CREATE DATABASE cannot run inside one)."""
        import psycopg

        with psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname=database, autocommit=True
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]  # our own literal SQL

    # ---- databases for single tests --------------------------------------------------------------

    def create_database(self) -> str:
        """A fresh empty database owned by ``otklik``; returns its name."""
        name = f"test_{uuid.uuid4().hex}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test's engine that was not disposed must not keep the database alive.
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
