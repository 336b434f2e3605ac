"""`vulcan-operator`: run, render, validate, solve, crds."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vulcan_operator.solver import cli as solver_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vulcan-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the operator (extra arguments go to kopf run)")
    sub.add_parser("render", help="print every object a first reconcile creates")
    sub.add_parser("validate", help="check resources against the schemas and rules")
    solver_cli.add_arguments(sub.add_parser("solve", help="solve a SchedulingProblem locally"))
    sub.add_parser("crds", help="write the CRDs generated from the models")
    args = parser.parse_args(argv)
    if args.command == "solve":
        return solver_cli.run(args)
    print(f"vulcan-operator {args.command}: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
