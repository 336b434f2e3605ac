"""A Kubernetes API server emulator (built on kmock) and helpers to run the real operator."""

from tests.emulator.api import ApiError
from tests.emulator.controllers import JobOutcome, RolloutOutcome
from tests.emulator.registry import make_crd
from tests.emulator.server import Emulator, RequestRecord

__all__ = ["ApiError", "Emulator", "JobOutcome", "RequestRecord", "RolloutOutcome", "make_crd"]
