"""The emulator and operator fixtures of the integration suite, for the attack tests."""

from tests.integration.conftest import (  # noqa: F401 (fixtures)
    emulator,
    http,
    kube_config,
    operator,
    pytest_configure,
    run_operator,
)
