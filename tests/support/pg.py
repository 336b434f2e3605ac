"""A throwaway PostgreSQL server for tests (pytest plugin, registered by ``tests/conftest.py``).

Fixtures (usable from every test under ``tests/``):

``pg_bin_dir`` (session)
    ``Path`` of the server's bin dir: ``pg_ctl``, ``initdb``, ``pg_dump``, ``pg_restore``, ``psql``.
``pg_server`` (session)
    :class:`PgServer`, started on first use (initdb + start take about 1-2 s) and stopped at the
    end of the session. It listens on 127.0.0.1 on a free port; every connection, even the
    superuser's, needs a password (scram-sha-256).
``pg_database`` (function)
    :class:`PgDatabase`: a fresh database for this test, owned by the password-protected,
    non-superuser role ``vulcan`` (LOGIN CREATEDB), dropped after the test.
``pg_dsn`` (function)
    ``str``: ``pg_database.dsn``, ``postgresql://vulcan:<password>@127.0.0.1:<port>/<dbname>``.

PostgreSQL refuses to run as root. As root, initdb and postgres run as the ``postgres`` user (the
Debian package creates it; ``nobody`` otherwise) in a temp dir owned by that user; client programs
(``psql``, ``pg_dump`` ...) run as the test process's own user and connect over TCP with the
password. Missing server binaries are a test failure that says to run ``bash scripts/setup.sh``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

SETUP_HINT = (
    "run `bash scripts/setup.sh` from the repository root (as root it installs the Debian "
    "`postgresql` package; otherwise install it yourself: `sudo apt-get install postgresql`)"
)
# Points the fixtures at another server bin dir (one holding initdb, pg_ctl and postgres).
BIN_DIR_ENV = "VULCAN_TEST_PG_BIN_DIR"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
HOST = "127.0.0.1"
ADMIN_USER = "postgres"
APP_USER = "vulcan"
START_ATTEMPTS = 3
COMMAND_TIMEOUT = 60
DIR_PREFIX = "vulcan-pg-"
OWNER_FILE = "owner.pid"  # pid of the test process that made the dir

# A throwaway cluster: durability off, small footprint, quick start and stop.
SERVER_CONF = """
# --- vulcan test bed ---
listen_addresses = '{host}'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
log_min_messages = warning
log_connections = off
"""


class PgSetupError(RuntimeError):
    """The test server could not be found, prepared or started."""


def _has_server_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in SERVER_PROGRAMS)


def _version_key(directory: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name)) or (0,)


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server bin dir, or None when no server is installed.

    Looks at ``$VULCAN_TEST_PG_BIN_DIR``, then ``/usr/lib/postgresql/*/bin`` (newest version
    first), then ``pg_config --bindir``, then the ``PATH``.
    """
    override = os.environ.get(BIN_DIR_ENV)
    if override:
        path = Path(override)
        if not _has_server_programs(path):
            raise PgSetupError(f"${BIN_DIR_ENV}={override} holds no {'/'.join(SERVER_PROGRAMS)}")
        return path
    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    for path in sorted(debian, key=_version_key, reverse=True):
        if _has_server_programs(path):
            return path
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _has_server_programs(Path(out)):
                return Path(out)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and _has_server_programs(Path(pg_ctl).parent):
        return Path(pg_ctl).parent
    return None


def _free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """The process environment without libpq/PG* variables that could redirect a client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class PgDatabase:
    """Connection facts of one test database (all connections go over TCP with a password)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    bin_dir: Path

    @property
    def dsn(self) -> str:
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.dbname, safe='')}"
        )

    def bin(self, program: str) -> str:
        """Full path of a client program from the server's bin dir, e.g. ``bin("pg_dump")``."""
        return str(self.bin_dir / program)

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for client programs: PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE set."""
        return _clean_env(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGPASSWORD=self.password,
            PGDATABASE=self.dbname,
            PGCONNECT_TIMEOUT="10",
            **extra,
        )


@dataclass
class PgServer:
    """One throwaway cluster. Use through the ``pg_server`` fixture."""

    bin_dir: Path
    host: str = HOST
    port: int = 0
    admin_user: str = ADMIN_USER
    admin_password: str = field(default_factory=lambda: secrets.token_hex(12))
    app_user: str = APP_USER
    app_password: str = field(default_factory=lambda: secrets.token_hex(12))
    base_dir: Path | None = None
    _run_as: pwd.struct_passwd | None = None
    _db_counter: int = 0
    _proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "server.log"

    def bin(self, program: str) -> str:
        return str(self.bin_dir / program)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if os.geteuid() == 0:
            self._run_as = _unprivileged_user()
        _remove_abandoned_dirs()
        self.base_dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        (self.base_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        try:
            self._initdb()
            self._start_server()
            self._create_app_role()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, exits in ms
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _server_env(self) -> tuple[dict[str, str], dict[str, Any]]:
        """Environment and Popen arguments to run a server program (unprivileged when root)."""
        assert self.base_dir is not None
        kwargs: dict[str, Any] = {}
        env = _clean_env(LC_ALL="C", LANG="C")
        if self._run_as is not None:
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
            env.update(
                HOME=str(self.base_dir), USER=self._run_as.pw_name, LOGNAME=self._run_as.pw_name
            )
        return env, kwargs

    def _server_cmd(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a server program to completion, as the unprivileged user when we are root."""
        env, kwargs = self._server_env()
        return subprocess.run(
            argv,
            cwd=self.base_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            **kwargs,
        )

    def _initdb(self) -> None:
        assert self.base_dir is not None
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if self._run_as is not None:
            for path in (self.base_dir, pwfile):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        result = self._server_cmd(
            [
                self.bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.admin_user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        if result.returncode != 0:
            hint = ""
            if self._run_as is not None:
                hint = (
                    f"\n(initdb ran as user {self._run_as.pw_name!r}: it must be able to reach "
                    f"{self.base_dir}; set TMPDIR to a directory it can traverse, such as /tmp)"
                )
            raise PgSetupError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}{hint}"
            )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_CONF.format(host=self.host, socket_dir=self.base_dir))

    def _start_server(self) -> None:
        """Run ``postgres`` as our child (not daemonized by pg_ctl).

        With util-linux ``setpriv --pdeathsig`` the server gets SIGINT ("fast" shutdown) when
        the test process dies, even by SIGKILL or a ``timeout``; without it, the next session
        removes what a killed run left (see :func:`_remove_abandoned_dirs`).
        """
        errors = []
        for _ in range(START_ATTEMPTS):
            self.port = _free_port(self.host)
            argv = [self.bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
            setpriv = shutil.which("setpriv")
            if setpriv and sys.platform.startswith("linux"):
                argv = [setpriv, "--pdeathsig", "INT", "--", *argv]
            env, kwargs = self._server_env()
            with self.log_file.open("ab") as log:
                self._proc = subprocess.Popen(
                    argv,
                    cwd=self.base_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C meant for pytest does not reach it
                    **kwargs,
                )
            if self._wait_ready():
                return
            # Another process may have taken the port between probe and start: try another.
            errors.append(f"port {self.port}:\n{self.log_tail()}")
            self._proc = None
        raise PgSetupError("the server did not start:\n" + "\n".join(errors))

    def _wait_ready(self) -> bool:
        import psycopg

        assert self._proc is not None
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with psycopg.connect(self.admin_dsn(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self._proc.kill()
        self._proc.wait()
        return False

    def _create_app_role(self) -> None:
        from psycopg import sql

        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(self.app_user), sql.Literal(self.app_password)
                )
            )

    # -- connections and databases -----------------------------------------------------------
    def admin_dsn(self, dbname: str = "postgres") -> str:
        """DSN of the superuser (for tests that need one; prefer ``pg_database``)."""
        return (
            f"postgresql://{quote(self.admin_user, safe='')}:"
            f"{quote(self.admin_password, safe='')}@{self.host}:{self.port}/{quote(dbname)}"
        )

    def admin_connect(self, dbname: str = "postgres") -> Any:
        """An autocommit psycopg connection as the superuser (use as a context manager)."""
        import psycopg

        return psycopg.connect(self.admin_dsn(dbname), autocommit=True, connect_timeout=10)

    def create_database(
        self,
        name: str | None = None,
        *,
        label: str = "",
        owner: str | None = None,
        template: str = "template0",
    ) -> PgDatabase:
        """Create a database owned by ``owner`` (default: the app role) and describe it.

        Without a ``name`` it gets a unique one, ``t<pid>_<n>_<label>``. Drop it with
        :meth:`drop_database` (the ``pg_database`` fixture does that for you). The default
        template, ``template0``, accepts no connections, so no test can pollute it, and copying
        it does not fail while someone is connected to ``template1``.
        """
        from psycopg import sql

        if name is None:
            self._db_counter += 1
            slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
            name = f"t{os.getpid()}_{self._db_counter}_{slug}"[:63].rstrip("_")
        owner = owner or self.app_user
        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(owner), sql.Identifier(template)
                )
            )
        password = self.app_password if owner == self.app_user else self.admin_password
        return PgDatabase(self.host, self.port, owner, password, name, self.bin_dir)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection a test left open."""
        from psycopg import sql

        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned_dirs() -> None:
    """Remove server dirs whose test process is gone (a run killed before its teardown)."""
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((path / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or its owner has not written the file yet
        try:
            postmaster = (path / "data" / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            postmaster = ""
        if _pid_alive(owner) or (postmaster.isdigit() and _pid_alive(int(postmaster))):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgSetupError(
        "running as root, and PostgreSQL refuses to run as root: no 'postgres' (or 'nobody') "
        f"user to run it as; {SETUP_HINT}"
    )


@pytest.fixture(scope="session")
def pg_bin_dir() -> Path:
    """The PostgreSQL bin dir (server and client programs); fails when none is installed."""
    try:
        bin_dir = find_bin_dir()
    except PgSetupError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        pytest.fail(error, pytrace=False)
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL server binaries not found (looked for initdb/pg_ctl/postgres in "
            f"${BIN_DIR_ENV}, /usr/lib/postgresql/*/bin, `pg_config --bindir` and PATH): "
            + SETUP_HINT,
            pytrace=False,
        )
    return bin_dir


@pytest.fixture(scope="session")
def pg_server(pg_bin_dir: Path) -> Iterator[PgServer]:
    """A running throwaway PostgreSQL server, shared by the whole test session."""
    server = PgServer(bin_dir=pg_bin_dir)
    atexit.register(server.stop)  # in case the session dies before its teardown
    try:
        server.start()
    except PgSetupError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        pytest.fail(f"could not start the test PostgreSQL server: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture
def pg_database(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    """A fresh, empty database for this test, owned by the password-protected role ``vulcan``."""
    db = pg_server.create_database(label=request.node.name)
    try:
        yield db
    finally:
        pg_server.drop_database(db.dbname)


@pytest.fixture
def pg_dsn(pg_database: PgDatabase) -> str:
    """``postgresql://vulcan:<password>@127.0.0.1:<port>/<fresh dbname>``."""
    return pg_database.dsn
