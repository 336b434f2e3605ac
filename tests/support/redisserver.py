"""A throwaway Redis server for tests (pytest plugin, registered by ``tests/conftest.py``;
Debian's `redis-server`, which `bash scripts/setup.sh` installs).

``redis_server`` (session): :class:`RedisServer`, password-protected, on 127.0.0.1 and a free
port, persistence off, stopped at the end of the session. ``RedisServer.start_from(rdb)`` starts
another one from an RDB file (to check what a snapshot holds).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HINT = "redis-server is not installed: run `bash scripts/setup.sh` (apt-get install redis-server)"
TIMEOUT = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    directory: Path
    rdb: str = "dump.rdb"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(HINT, pytrace=False)
        self.port = _free_port()
        argv = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass",
            self.password, "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            "--dbfilename", self.rdb, "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + TIMEOUT
        while self.cli("PING") != "PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}", pytrace=False)
            time.sleep(0.05)

    def cli(self, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--no-auth-warning", *command],
            env={"REDISCLI_AUTH": self.password, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        return done.stdout.strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @classmethod
    def start_from(cls, rdb: Path) -> RedisServer:
        """A new server loading `rdb` (stop it when done)."""
        server = cls(directory=rdb.parent, rdb=rdb.name)
        server.start()
        return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="vulcan-redis-") as directory:
        server = RedisServer(directory=Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()
