"""Root conftest: makes the helper modules in tests/ importable and registers shared fixtures.

Helpers import as top-level modules from any test: ``from manifests import validate_manifests``.
The PostgreSQL fixtures (``pg_server``, ``pg_database``, ``pg_dsn``, ``pg_bin_dir``) live in
``tests/pg.py``; the server starts only when a test asks for one of them.
"""

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

pytest_plugins = ["pg"]
