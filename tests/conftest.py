"""Root conftest: the shared fixtures, as plugins, and the golden-file option.

- `tests.support.pg`: real PostgreSQL (`pg_server`, `pg_database`, `pg_dsn`, `pg_bin_dir`);
  the server starts only when a test asks for one of them.
- `tests.emulator.plugin`: the Kubernetes API emulator (`emulator`, `http`).
- `tests.support.operator`: the real Kopf operator against it (`kube_config`, `run_operator`,
  `operator`), with the RBAC check of every request it made.
- `tests.support.solverpod_bridge`: `bridge`, every Job's pod run for real (the solver pod's
  own code) instead of simulated.
- `tests.support.pgversions`: PostgreSQL 16, 17 and 18 beside the Debian 15 (`pg_bin_dirs`,
  `pg_servers`), fetched once per machine; `tests.support.redisserver`: `redis_server`.

`pytest --update-golden` (or `UPDATE_GOLDEN=1`) rewrites golden files instead of comparing.

A test skipped because a tool "is not installed" (kubectl, Lua, ...) fails instead under CI
(`CI` set): setup.sh installs every tool, so there a skip could only hide a broken setup.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

pytest_plugins = [
    "tests.support.pg",
    "tests.emulator.plugin",
    "tests.support.operator",
    "tests.support.solverpod_bridge",
    "tests.support.pgversions",
    "tests.support.redisserver",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files from the current output instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when golden files are to be rewritten."""
    option = bool(request.config.getoption("--update-golden", default=False))
    return option or os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and os.environ.get("CI") and "is not installed" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"under CI every tool must be installed: {report.longrepr}"
    return report
