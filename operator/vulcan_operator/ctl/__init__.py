"""`kubectl vulcan`: day-two operations on Vulcan engines, as a kubectl plugin.

The console script `kubectl-vulcan` (kubectl finds it on PATH), also `vulcan-operator ctl`.
kubectl's conventions: `-n/--namespace`, `--context`, `--kubeconfig` and `KUBECONFIG`.

Exit codes: 0 done; 1 failed (the operation, or the API); 2 usage; 3 not found; 4 not
confirmed; 5 timed out waiting.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from vulcan_operator.ctl import actions, problems, report, view
from vulcan_operator.ctl.actions import FAILED, NOT_FOUND, OK, CtlError
from vulcan_operator.ctl.kube import Kube, KubeError
from vulcan_operator.ctl.kube import path as kube_path

PROG = "kubectl vulcan"
ENGINE_COMMANDS = (
    "status",
    "backup",
    "restore",
    "hibernate",
    "pause",
    "resume",
    "retry-upgrade",
    "rotate-secrets",
    "report",
)
PROBLEM_COMMANDS = ("gantt", "compare")
COMMANDS = (*ENGINE_COMMANDS, "logs", "problems", *PROBLEM_COMMANDS, "completion")


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given before or after the command, whichever was given counts.
    s = argparse.SUPPRESS
    parser.add_argument("-n", "--namespace", default=s, help="namespace (default: the context's)")
    parser.add_argument("--context", default=s, help="kubeconfig context (default: current)")
    parser.add_argument("--kubeconfig", default=s, help="kubeconfig file (default: $KUBECONFIG)")


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")


def build_parser(
    subcommands: dict[str, argparse.ArgumentParser] | None = None,
) -> argparse.ArgumentParser:
    """The command line; `subcommands` (when given) gets each command's parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        _common(p)
        if subcommands is not None:
            subcommands[name] = p
        return p

    p = command("status", "one screen about an engine")
    p.add_argument("engine")
    _output(p)
    p = command("backup", "take a backup now (a VulcanBackup)")
    p.add_argument("engine")
    p.add_argument("--name", help="the VulcanBackup's name (default: <engine>-manual-<time>)")
    p.add_argument("--wait", action="store_true", help="wait until it has succeeded or failed")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits")
    p = command("restore", "restore a backup (a VulcanRestore)")
    p.add_argument("engine")
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        help="a VulcanBackup of the engine, or an s3:// or pvc:// location of its store",
    )
    p.add_argument("--checksum", help="sha256 of a location no VulcanBackup records")
    p.add_argument(
        "--target-database",
        default="",
        help="restore into this database of the same server; the engine keeps serving",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not run the migration after")
    p.add_argument("--wait", action="store_true", help="wait until it has succeeded or failed")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask before replacing the engine's own database",
    )
    p = command("hibernate", "scale an engine to nothing and back (spec.hibernate)")
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("engine")
    for name, help_ in (
        ("pause", "stop reconciling an engine (spec.paused: true)"),
        ("resume", "reconcile it again (spec.paused: false)"),
        ("retry-upgrade", "try a failed version again"),
        ("rotate-secrets", "new SECRET_KEY and JWT_SECRET_KEY; the pods roll"),
    ):
        command(name, help_).add_argument("engine")
    p = command(
        "logs", "logs of an engine's backend pods, or of a problem's (backup's, restore's) Job pod"
    )
    p.add_argument("target", help="ENGINE, PROBLEM, or sp/NAME, vb/NAME, vr/NAME, ve/NAME")
    p.add_argument("--tail", type=int, default=None, help="lines from the end of each log")
    p.add_argument("-p", "--previous", action="store_true", help="the previous container's log")
    p.add_argument(
        "-f", "--follow", action="store_true", help="stream the logs until the containers end"
    )
    p.add_argument(
        "--max-log-requests",
        type=int,
        default=actions.MAX_LOG_REQUESTS,
        help="most pods to follow at once (default 5)",
    )
    p = command("problems", "SchedulingProblems: objective, gap, makespan, phase")
    p.add_argument("engine", nargs="?", help="only this engine's")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    _output(p)
    p = command("gantt", "a Gantt chart of a problem's stored schedule")
    p.add_argument("problem")
    p.add_argument("-o", "--output", required=True, help="plan.svg or plan.html")
    p = command("compare", "the latest result of a problem against the previous one")
    p.add_argument("problem")
    _output(p)
    p = command("report", "a support bundle, secrets redacted")
    p.add_argument("engine")
    p.add_argument("-o", "--output", required=True, help="bundle.tar.gz")
    p.add_argument(
        "--operator-namespace",
        default="vulcan-system",
        help="where the operator runs (its logs go in the bundle)",
    )
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    p.add_argument("shell", choices=["bash", "zsh"])
    return parser


def _print(data: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, width=120))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _status(kube: Kube, a: argparse.Namespace) -> int:
    snap = view.collect(kube, kube.namespace, a.engine)
    if snap is None:
        raise CtlError(
            f'vulcanengine "{a.engine}" not found in namespace "{kube.namespace}"', NOT_FOUND
        )
    if a.output == "text":
        sys.stdout.write(view.render(snap, _now()))
    else:
        _print(snap, a.output)
    return OK


def _problems(kube: Kube, a: argparse.Namespace) -> int:
    items = problems.rows(kube, a.engine, a.all_namespaces)
    if a.output == "text":
        sys.stdout.write(problems.table(items, a.all_namespaces))
    else:
        _print(items, a.output)
    return OK


def _compare(kube: Kube, a: argparse.Namespace) -> int:
    result = problems.compare(kube, a.problem)
    if a.output == "text":
        sys.stdout.write(problems.compare_text(result))
    else:
        _print(result, a.output)
    return OK


def _report(kube: Kube, a: argparse.Namespace) -> int:
    try:
        data = report.bundle(kube, a.engine, a.operator_namespace, _now())
    except LookupError:
        raise CtlError(
            f'vulcanengine "{a.engine}" not found in namespace "{kube.namespace}"', NOT_FOUND
        ) from None
    Path(a.output).write_bytes(data)
    print(f"wrote {a.output} ({len(data)} bytes)")
    return OK


BASH = """# kubectl vulcan: completion for `kubectl-vulcan` run directly. For `kubectl vulcan`,
# kubectl's own completion (source <(kubectl completion bash)) calls kubectl_complete-vulcan.
_kubectl_vulcan() {
  local out directive
  out=$(kubectl_complete-vulcan "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
  directive=${out##*:}
  COMPREPLY=($(compgen -W "$(printf '%s\\n' "$out" | sed '$d')" -- "${COMP_WORDS[COMP_CWORD]}"))
  [[ $directive == 4 || ${#COMPREPLY[@]} -gt 0 ]] || compopt -o default
}
complete -F _kubectl_vulcan kubectl-vulcan
"""
ZSH = "autoload -U +X bashcompinit && bashcompinit\n" + BASH


def _completion(a: argparse.Namespace) -> int:
    sys.stdout.write(BASH if a.shell == "bash" else ZSH)
    return OK


HANDLERS: dict[str, Callable[[Kube, argparse.Namespace], int]] = {
    "status": _status,
    "backup": lambda k, a: actions.backup(
        k, a.engine, wait=a.wait, timeout=a.timeout, name=a.name, out=sys.stdout
    ),
    "restore": lambda k, a: actions.restore(
        k,
        a.engine,
        source=a.source,
        checksum=a.checksum,
        target_database=a.target_database,
        migrate=not a.no_migrate,
        wait=a.wait,
        timeout=a.timeout,
        yes=a.yes,
        out=sys.stdout,
    ),
    "hibernate": lambda k, a: actions.set_spec(
        k, a.engine, "hibernate", a.state == "on", sys.stdout
    ),
    "pause": lambda k, a: actions.set_spec(k, a.engine, "paused", True, sys.stdout),
    "resume": lambda k, a: actions.set_spec(k, a.engine, "paused", False, sys.stdout),
    "retry-upgrade": lambda k, a: actions.annotate(k, a.engine, actions.RETRY_UPGRADE, sys.stdout),
    "rotate-secrets": lambda k, a: actions.annotate(
        k, a.engine, "vulcan-engine.com/rotate-secrets", sys.stdout
    ),
    "logs": lambda k, a: actions.logs(
        k,
        a.target,
        tail=a.tail,
        previous=a.previous,
        out=sys.stdout,
        follow=a.follow,
        max_requests=a.max_log_requests,
    ),
    "problems": _problems,
    "gantt": lambda k, a: problems.write_gantt(k, a.problem, a.output, sys.stdout),
    "compare": _compare,
    "report": _report,
}


def kube_of(a: argparse.Namespace) -> Kube:
    return Kube(
        getattr(a, "kubeconfig", None), getattr(a, "context", None), getattr(a, "namespace", None)
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        a = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    if a.command == "completion":
        return _completion(a)
    try:
        return HANDLERS[a.command](kube_of(a), a)
    except CtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return NOT_FOUND if exc.status == 404 else FAILED
    except KeyboardInterrupt:
        return FAILED


def run() -> None:
    """The `kubectl-vulcan` console script."""
    sys.exit(main())


# --- completion ---------------------------------------------------------------------------


def _names(words: list[str], plural: str) -> list[str]:
    options: dict[str, str] = {}
    for flag, key in (
        ("-n", "namespace"),
        ("--namespace", "namespace"),
        ("--context", "context"),
        ("--kubeconfig", "kubeconfig"),
    ):
        if flag in words[:-1]:
            options[key] = words[words.index(flag) + 1]
    try:
        kube = Kube(options.get("kubeconfig"), options.get("context"), options.get("namespace"))
        if plural == "namespaces":
            found = kube.list(kube_path("v1", "namespaces"))
        else:
            found = kube.list(kube_path("vulcan-engine.com/v1alpha1", plural, kube.namespace))
    except (KubeError, OSError, ValueError):
        return []
    return [str(o["metadata"]["name"]) for o in found]


def completions(words: list[str]) -> tuple[list[str], int]:
    """(candidates, cobra directive) for the words after `vulcan`, the last being completed.
    Directive 4: no file completion; 0: the shell's default (file names)."""
    partial, before = (words[-1] if words else ""), words[:-1]
    if before and before[-1] in ("-n", "--namespace"):
        return _names(words, "namespaces"), 4
    if before and before[-1] == "--context":
        return [], 0
    positional = [
        w
        for i, w in enumerate(before)
        if not w.startswith("-")
        and (
            i == 0
            or before[i - 1]
            not in (
                "-n",
                "--namespace",
                "--context",
                "--kubeconfig",
                "-o",
                "--output",
                "--from",
                "--tail",
                "--max-log-requests",
            )
        )
    ]
    if not positional:
        return [c for c in COMMANDS if c.startswith(partial)], 4
    cmd, args = positional[0], positional[1:]
    if before and before[-1] in ("-o", "--output"):
        if cmd in ("gantt", "report"):
            return [], 0
        return ["text", "json", "yaml"], 4
    if partial.startswith("-"):
        subcommands: dict[str, argparse.ArgumentParser] = {}
        build_parser(subcommands)
        sub = subcommands.get(cmd)
        flags = [o for act in (sub._actions if sub else []) for o in act.option_strings]
        return [f for f in flags if f.startswith(partial)], 4
    if cmd == "hibernate":
        if not args:
            return [c for c in ("on", "off") if c.startswith(partial)], 4
        args = args[1:]
    if cmd == "completion":
        return [c for c in ("bash", "zsh") if c.startswith(partial) and not args], 4
    sources = {
        **dict.fromkeys((*ENGINE_COMMANDS, "problems"), ("vulcanengines",)),
        **dict.fromkeys(PROBLEM_COMMANDS, ("schedulingproblems",)),
        "logs": ("vulcanengines", "schedulingproblems"),
    }
    if args or cmd not in sources:
        return [], 4
    found = [n for plural in sources[cmd] for n in _names(words, plural)]
    return [n for n in found if n.startswith(partial)], 4


def complete() -> None:
    """The `kubectl_complete-vulcan` console script: kubectl calls it to complete
    `kubectl vulcan ...` (kubectl 1.26+), with the words after `vulcan`."""
    candidates, directive = completions(sys.argv[1:])
    for c in candidates:
        print(c)
    print(f":{directive}")
