"""Curves of bench/scale.py against the number of engines: convergence time, writes and reads
per engine, operator peak RSS (issue 19). Not part of the test suite; needs matplotlib
(`.venv/bin/pip install matplotlib`, not a dependency of the project).

    .venv/bin/python bench/curves.py                        # 50, 100, 200 engines, no problems
    .venv/bin/python bench/curves.py --sizes 50 100 200 500 1000 --problems-per-engine 10
    .venv/bin/python bench/curves.py --plot-only            # redraw from bench/curves.json

Each size is one run of bench/scale.py (its own emulator and operator process); the figures
go to bench/curves.json (merged by size with earlier runs) and the plot to bench/scale-curves.png.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "curves.json"
PLOT = HERE / "scale-curves.png"

PANELS = (
    ("converged_s", "convergence (s)", None),
    ("writes_per_engine", "API writes per engine (Events apart)", "min_writes_per_engine"),
    ("reads_per_resync", "GET/LIST per engine resync (idle)", None),
    ("peak_rss_mib", "operator peak RSS (MiB)", None),
)


def run(size: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            str(HERE / "scale.py"),
            "--engines",
            str(size),
            "--problems-per-engine",
            str(args.problems_per_engine),
            "--resync",
            str(args.resync),
            "--json",
            out.name,
        ]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
        figures: dict[str, Any] = json.loads(Path(out.name).read_text())
    figures["resync_s"] = args.resync
    return figures


def plot(rows: list[dict[str, Any]], note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["engines"])
    engines = [r["engines"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, title, minimum) in zip(axes.flat, PANELS, strict=True):
        ax.plot(engines, [r.get(key, math.nan) for r in rows], marker="o", label="measured")
        if minimum:
            ax.plot(engines, [r[minimum] for r in rows], linestyle="--", label="minimum")
            ax.legend()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("engines")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"bench/scale.py on the API emulator: {note}", fontsize=10)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    print(f"wrote {PLOT.relative_to(HERE.parent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--problems-per-engine", type=int, default=0)
    parser.add_argument("--resync", type=int, default=20, help="VULCAN_RESYNC_SECONDS")
    parser.add_argument("--note", default="2 shared cores, busy with other work")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    known = {r["engines"]: r for r in json.loads(RESULTS.read_text())} if RESULTS.exists() else {}
    if not args.plot_only:
        for size in args.sizes:
            known[size] = run(size, args)
            RESULTS.write_text(
                json.dumps(sorted(known.values(), key=lambda r: r["engines"]), indent=1) + "\n"
            )
    plot(list(known.values()), args.note)


if __name__ == "__main__":
    main()
