"""Unit-test options: `pytest --update-golden` rewrites the golden files instead of comparing.

The environment variable `UPDATE_GOLDEN=1` does the same (useful when the option cannot be
registered, e.g. pytest started from a directory whose conftest does not load this one first).
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/unit/golden/* from the current output instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when golden files are to be rewritten."""
    option = bool(request.config.getoption("--update-golden", default=False))
    return option or os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
