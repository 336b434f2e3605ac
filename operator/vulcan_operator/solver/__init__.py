"""The scheduling solver: flexible job shop with operators, on OR-Tools CP-SAT.

Stands alone (no Kopf, no Kubernetes client, nothing else from vulcan_operator). This package
file imports nothing, so `from vulcan_operator.solver.problem import ProblemData` stays cheap
for the API layer; OR-Tools loads only with the modules that solve.

- `problem`   the public problem format (ProblemData, SolverSettings) with reference checks
- `loader`    a SchedulingProblem file (or a bare problem, or a ConfigMap reference) -> problem
- `api`       `run(problem, settings, callbacks) -> SolveResult`: what every entrypoint calls
              (signals stop the search, the schedule is checked)
- `solve`     `solve(problem, settings, on_progress=..., stop=...) -> SolveResult`;
              `guard`  the wall-clock and memory watchdog of its CP-SAT thread
- `result`    SolveResult / Status / Assignment: the result JSON
- `progress`  Progress events and ready-made callbacks (text lines, JSON lines)
- `instance`, `dispatch`, `model`, `schedule`, `explain`: index form, greedy start, the CP-SAT
  model, compaction, infeasibility explanations
- `lns`       large problems: time-window neighbourhoods re-planned by small CP-SAT models
- `portfolio` member k of N pods racing on one problem: its seed and search strategy
- `check`     an independent schedule checker;  `gantt`  SVG/HTML charts
- `cli`       `vulcan-operator solve`;  `runner`  the JSON-lines solver process and the helpers
              the command lines share (the solver pod is `vulcan_operator.solverpod`)
"""
