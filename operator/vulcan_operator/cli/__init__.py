"""`vulcan-operator`: run, render, validate, solve, crds, ctl."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vulcan_operator.sharding import UNSHARDED, Shard
from vulcan_operator.solver import cli as solver_cli


def _validate(args: argparse.Namespace) -> int:
    from vulcan_operator.cli.validate import validate_files

    problems, notes = validate_files(Path(p) for p in args.files)
    if not args.quiet:
        for note in notes:
            print(note, file=sys.stderr)
    for line in problems:
        print(line)
    return 1 if problems else 0


def _render(args: argparse.Namespace) -> int:
    import yaml

    from vulcan_operator.cli.preview import RenderError, render
    from vulcan_operator.cli.validate import load_documents

    try:
        docs = list(load_documents(Path(args.file)))
        engines = list(load_documents(Path(args.engine))) if args.engine else []
        objects = render(docs, engines=engines, namespace=args.namespace)
    except (OSError, yaml.YAMLError) as exc:
        print(f"vulcan-operator render: cannot read input: {exc}", file=sys.stderr)
        return 1
    except RenderError as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, width=100))
    return 0


def _crds(args: argparse.Namespace) -> int:
    from vulcan_operator import crdgen

    for path in crdgen.write(Path(args.output_dir)):
        print(path)
    return 0


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _run(args: argparse.Namespace) -> int:
    from vulcan_operator import main as operator_main

    operator_main.run(
        namespaces=args.namespaces,
        all_namespaces=args.all_namespaces,
        standalone=args.standalone,
        peering=args.peering,
        liveness=args.liveness or None,
        log_format=args.log_format,
        verbose=args.verbose,
        admission_port=args.admission_port,
        admission_cert_dir=args.admission_cert_dir,
        shard=args.shard,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["ctl"]:  # `vulcan-operator ctl ...` is `kubectl vulcan ...`
        from vulcan_operator import ctl

        return ctl.main(args_in[1:])
    parser = argparse.ArgumentParser(prog="vulcan-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the current cluster")
    # Kopf's own spellings: -n/--namespace (repeatable) or -A/--all-namespaces (the default).
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default, unless VULCAN_NAMESPACES names some; as "
        "kopf run -A)",
    )
    run.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: do not coordinate with other replicas",
    )
    run.add_argument(
        "--peering",
        default="vulcan-operator",
        help="peering object shared by the replicas (one is active)",
    )
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL (empty: none)",
    )
    run.add_argument("--log-format", choices=["json", "plain", "full"], default="json")
    run.add_argument(
        "--admission-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve the validating admission webhook over HTTPS on this port, at "
        "/validate/<plural> (default: no webhook)",
    )
    run.add_argument(
        "--admission-cert-dir",
        default="",
        metavar="DIR",
        help="the webhook's tls.crt, tls.key and ca.crt (e.g. cert-manager's Secret, mounted); "
        "default: a certificate from a CA the operator keeps in a Secret",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        default=UNSHARDED,
        metavar="K/N",
        help="reconcile only the namespaces whose name hashes to shard K of N (K from 0; run N "
        "Deployments, --shard 0/N .. N-1/N); the peering object gets a -shard-K-of-N suffix",
    )
    run.add_argument("-v", "--verbose", action="store_true")
    render = sub.add_parser("render", help="print every object a first reconcile creates")
    render.add_argument(
        "file", help="VulcanEngine, SchedulingProblem, VulcanBackup or VulcanRestore"
    )
    render.add_argument("--engine", help="the VulcanEngine a problem, backup or restore refers to")
    render.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of resources that name none (default: default)",
    )
    validate = sub.add_parser("validate", help="check resources against the schemas and rules")
    validate.add_argument("files", nargs="+", help="YAML files (multi-document streams too)")
    validate.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    solver_cli.add_arguments(sub.add_parser("solve", help="solve a SchedulingProblem locally"))
    sub.add_parser("ctl", help="the kubectl plugin: `vulcan-operator ctl --help`")
    crds = sub.add_parser("crds", help="write the CRDs generated from the models")
    crds.add_argument("--output-dir", default="crds", help="where to write them (default: crds)")
    args = parser.parse_args(argv)
    # Every command has its function: the subcommand is required, so there is no other case.
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "render": _render,
        "validate": _validate,
        "solve": solver_cli.run,
        "crds": _crds,
    }
    return commands[args.command](args)
