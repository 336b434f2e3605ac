"""A portfolio: how member k of N solver pods racing on one problem searches.

Every member solves the same problem with the same limits; they differ by seed (the seed of
the problem plus k) and, for the first few, by search strategy, so that a cluster running them
side by side explores different parts of the search and the best schedule wins:

| member | exact model (small and medium problems)                          |
|--------|------------------------------------------------------------------|
| 0      | the default (by size: `solve.phases_for`)                         |
| 1      | CP-SAT's portfolio for a fifth of the time, then LNS             |
| 2      | CP-SAT's own portfolio for the whole time (no LNS-only phase)    |
| 3      | CP-SAT's portfolio for half the time, then LNS                    |
| 4+     | the default, own seed                                             |

Large problems (time-window LNS, see `lns`) differ by seed only: it draws the windows.
Member 0 is exactly what a single pod does, so one pod and member 0 of N are the same run.
"""

from __future__ import annotations

from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import DEFAULT_PHASES, Phase, Tuning

STRATEGIES: tuple[tuple[str, Tuning], ...] = (
    ("default", Tuning()),
    ("portfolio-then-lns", Tuning(phases=DEFAULT_PHASES)),
    ("portfolio", Tuning(phases=(Phase(1.0),))),
    ("half-portfolio", Tuning(phases=(Phase(0.5), Phase(1.0, {"use_lns_only": True})))),
)


def member(settings: SolverSettings, index: int) -> tuple[SolverSettings, Tuning, str]:
    """(settings, tuning, strategy name) of member `index` (0-based)."""
    name, tuning = STRATEGIES[index] if index < len(STRATEGIES) else STRATEGIES[0]
    seed = (settings.seed + index) % (2**31)
    return settings.model_copy(update={"seed": seed}), tuning, name
