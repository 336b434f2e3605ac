"""A Kubernetes API server emulator (built on kmock); its fixtures are in `plugin.py`."""

from tests.emulator.api import ApiError
from tests.emulator.controllers import JobOutcome, RolloutOutcome
from tests.emulator.faults import Fault, FaultPolicy, FaultyEmulator
from tests.emulator.registry import make_crd
from tests.emulator.server import Emulator, RequestRecord

__all__ = [
    "ApiError",
    "Emulator",
    "Fault",
    "FaultPolicy",
    "FaultyEmulator",
    "JobOutcome",
    "RequestRecord",
    "RolloutOutcome",
    "make_crd",
]
