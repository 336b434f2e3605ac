"""The solver pod: solve one SchedulingProblem and report back to the cluster.

The solver Job runs `python -m vulcan_operator.solverpod` (builders/problem.py):

- `__main__`  arguments and `main`: read the problem, `solver.api.run` it, store, report
- `reporter`  `StatusReporter`, the thread that patches `status.progress` while it solves
- `store`     where the schedule goes: the schedule ConfigMap and the engine's PostgreSQL
- `status`    a solver summary as `status.result` / `status.progress`; the operator reads the
              pod's termination message with the same mapping (reconcile/solverjob.py)

This file and `status` import no Kubernetes client, so the operator can use `status`.
"""
