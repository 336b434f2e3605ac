"""Convert a benchmark instance into a SchedulingProblem YAML (for examples/ and the CLI).

.venv/bin/python bench/convert.py ../shared/bench/jsp/ft06.txt > examples/ft06.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

import loaders


def to_resource(path: Path, time_limit: float, workers: int) -> dict[str, object]:
    problem = loaders.to_problem(*loaders.read(path))
    spec: dict[str, object] = {"objective": {"type": "makespan"}}
    spec.update(problem.model_dump(exclude_defaults=True))
    spec["solver"] = {"maxTimeSeconds": time_limit, "numWorkers": workers}
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "SchedulingProblem",
        "metadata": {"name": path.stem.lower()},
        "spec": spec,
    }


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, flow style for short lists (machines: [m0])."""


def _list(dumper: yaml.SafeDumper, data: list[object]) -> yaml.Node:
    flow = all(not isinstance(x, dict | list) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _dict(dumper: yaml.SafeDumper, data: dict[str, object]) -> yaml.Node:
    flow = all(
        not isinstance(v, dict | list)
        or (isinstance(v, list) and not any(isinstance(x, dict | list) for x in v))
        for v in data.values()
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("instance", type=Path)
    parser.add_argument("--time-limit", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    resource = to_resource(args.instance, args.time_limit, args.workers)
    bks = loaders.best_known(args.instance)
    source = f"{args.instance.parent.name}/{args.instance.name}"
    header = f"# {source} from the public benchmark set (bench/README.md)"
    if bks is not None:
        header += f"; best-known makespan {bks}"
    sys.stdout.write(header + "\n" + yaml.dump(resource, Dumper=_Dumper, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
