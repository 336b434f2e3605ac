"""`vulcan-operator solve`: solve a SchedulingProblem file locally."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="SchedulingProblem YAML")


def run(args: argparse.Namespace) -> int:
    print("vulcan-operator solve: not implemented yet", file=sys.stderr)
    return 2
