"""Root conftest: makes the helper modules in tests/ importable and registers shared fixtures.

Helpers import either way from any test: ``from manifests import validate_manifests`` or
``from tests.manifests import validate_manifests`` (the same module object).
The PostgreSQL fixtures (``pg_server``, ``pg_database``, ``pg_dsn``, ``pg_bin_dir``) live in
``tests/pg.py``; the server starts only when a test asks for one of them.
"""

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

pytest_plugins = ["pg"]


def pytest_configure() -> None:
    # One module object per helper, whether imported as `pg` or as `tests.pg`.
    import manifests
    import pg

    package = sys.modules.get("tests")  # present when tests/ is a package (tests/__init__.py)
    for module in (pg, manifests):
        sys.modules.setdefault(f"tests.{module.__name__}", module)
        if package is not None and not hasattr(package, module.__name__):
            setattr(package, module.__name__, module)
