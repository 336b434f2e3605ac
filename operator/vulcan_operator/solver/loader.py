"""Read a problem file: a SchedulingProblem resource (optionally with its ConfigMap) or a bare
problem mapping. Every problem with the file becomes one message naming the field path.

Every problem document is read here (the operator's check of a problemRef ConfigMap, the
solver pod, `vulcan-operator solve`), and reading is bounded by the size of the text:

- the text has a size cap: `MAX_PROBLEM_BYTES` (1 MiB, what a ConfigMap can hold) for a
  problemRef value, `MAX_FILE_BYTES` for a whole problem file;
- YAML aliases (`*name`, and so `<<: *name` merges) are refused before anything is built:
  a few KB of nested aliases ("billion laughs") would otherwise expand, through validation,
  into millions of entries; anchors without an alias are harmless and allowed;
- nesting deeper than `MAX_DEPTH` levels is refused (our own check: libyaml's limit depends
  on the build PyYAML ships); JSON text takes json.loads (no aliases exist in JSON, and it is
  ~50x faster than YAML for a 1 MiB problem);
- the lists of the problem have `maxItems` (see `solver.problem`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vulcan_operator import kinds
from vulcan_operator.solver.problem import ProblemData, ProblemSettings, SolverSettings

API_VERSION = "vulcan-engine.com/v1alpha1"
KIND = kinds.PROBLEM.kind
NON_PROBLEM_KEYS = ("engineRef", "solver", "problemRef")
"""Spec keys that are not part of the problem itself."""
INLINE_ONLY = ("machines", "operators", "jobs")
#: The most a problemRef ConfigMap value may hold (bytes of UTF-8): a ConfigMap holds at most
#: 1 MiB in all, so nothing larger can come from the cluster.
MAX_PROBLEM_BYTES = 1_048_576
#: The deepest nesting a document may have (a problem needs about 10 levels, a resource 15).
MAX_DEPTH = 64
#: The most a problem file may hold (a SchedulingProblem, its ConfigMap as a second document,
#: or a bare problem; the solver pod's file is the resource plus the ConfigMap's text).
MAX_FILE_BYTES = 8 * 1_048_576
#: libyaml's C loader when PyYAML has it (the pure-Python one is ~5x slower).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ProblemFileError(Exception):
    """The file is not a valid problem; `messages` has one line per problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class LoadedProblem:
    name: str
    problem: ProblemData
    settings: SolverSettings
    #: How the problem runs (a SchedulingProblem's spec.solver), beside the solve's settings.
    parallelism: int = 1
    log_search: bool = False


def error_lines(error: ValidationError, prefix: str) -> list[str]:
    """One '<path>: <message>' line per pydantic error, paths like jobs[0].tasks[1].duration."""
    lines = []
    for item in error.errors():
        path = prefix
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(item["msg"])
        if item["type"] == "value_error" and message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        for line in message.splitlines():
            # Reference checks already name their own path: "jobs[0].tasks[1].skill: ...".
            if not item["loc"] and ": " in line and not line.startswith(" "):
                lines.append(f"{prefix}.{line}" if prefix else line)
            else:
                lines.append(f"{path or '(top level)'}: {line}")
    return lines


def load_file(path: str | Path) -> LoadedProblem:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProblemFileError(
                [f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} bytes a problem may have"]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProblemFileError([f"{path}: cannot read: {error.strerror or error}"]) from error
    except UnicodeDecodeError as error:
        raise ProblemFileError([f"{path}: not UTF-8 text ({error.reason})"]) from error
    return load_text(text, str(path), default_name=path.stem)


def _refuse_aliases(node: yaml.Node, where: str) -> None:
    """Raise when a node is reached twice (the composer shares the anchored node with every
    alias of it, and a merge key needs an alias) or lies deeper than `MAX_DEPTH`. Iterative:
    no recursion limit to hit."""
    seen: set[int] = set()
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_DEPTH:
            mark = current.start_mark
            raise ProblemFileError(
                [
                    f"{where}: not valid YAML: nested deeper than {MAX_DEPTH} levels "
                    f"(line {mark.line + 1}, column {mark.column + 1})"
                ]
            )
        if id(current) in seen:
            mark = current.start_mark
            raise ProblemFileError(
                [
                    f"{where}: YAML aliases (*name) are not accepted in a problem: the value "
                    f"at line {mark.line + 1}, column {mark.column + 1} is repeated through an "
                    "alias; write the values out (or use JSON)"
                ]
            )
        seen.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))


_NOT_JSON = object()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: let YAML read it as YAML does


def _json(text: str) -> Any:
    """The one JSON document of `text`, if it is one (else `_NOT_JSON`: read it as YAML)."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            pass
    return _NOT_JSON


def safe_documents(text: str, where: str, limit: int = MAX_FILE_BYTES) -> list[Any]:
    """The non-empty documents of a YAML (or JSON) text, read with the limits above; any
    problem is a ProblemFileError whose message starts with `where`."""
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ProblemFileError(
            [f"{where}: {size} bytes, more than the {limit} bytes a problem may have"]
        )
    document = _json(text)
    if document is not _NOT_JSON:
        return [document]
    loader = _LOADER(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _refuse_aliases(node, where)
            document = loader.construct_document(node)
            if document is not None:
                documents.append(document)
        return documents
    except yaml.YAMLError as error:
        raise ProblemFileError([f"{where}: not valid YAML: {_one_line(error)}"]) from error
    except (ValueError, RecursionError) as error:  # e.g. an integer of 5000 digits
        raise ProblemFileError([f"{where}: cannot be read: {_one_line(error)}"]) from error
    finally:
        loader.dispose()


def _one_line(error: Exception) -> str:
    """An error on one line; a YAML error as `line L, column C: what`."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    return " ".join(str(error).split())[:500]


def load_text(text: str, source: str = "<problem>", default_name: str = "problem") -> LoadedProblem:
    documents = safe_documents(text, source)
    problems = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == KIND]
    if len(problems) > 1:
        raise ProblemFileError(
            [f"{source}: holds {len(problems)} SchedulingProblem documents; give one per file"]
        )
    if not problems:
        bare = [d for d in documents if isinstance(d, Mapping) and "kind" not in d]
        if len(bare) == 1 and len(documents) == 1:
            return _bare(dict(bare[0]), default_name)
        raise ProblemFileError(
            [
                f"{source}: no SchedulingProblem found (expected a document with kind: {KIND} "
                "or a bare problem mapping with machines and jobs)"
            ]
        )
    return _resource(dict(problems[0]), documents, source, default_name)


def _bare(data: dict[str, Any], name: str) -> LoadedProblem:
    solver = data.pop("solver", None) or {}
    return _both(name, lambda: _problem(data, ""), solver, "solver")


def _both(
    name: str, problem: Callable[[], ProblemData], solver: Any, solver_path: str
) -> LoadedProblem:
    """Validate the problem and the solver settings, reporting the errors of both."""
    messages: list[str] = []
    settings: ProblemSettings | None = None
    data: ProblemData | None = None
    try:
        data = problem()
    except ProblemFileError as error:
        messages += error.messages
    try:
        settings = _settings(solver, solver_path)
    except ProblemFileError as error:
        messages += error.messages
    if messages or data is None or settings is None:
        raise ProblemFileError(messages)
    solve = SolverSettings.model_validate(
        settings.model_dump(include=set(SolverSettings.model_fields))
    )
    return LoadedProblem(name, data, solve, settings.parallelism, settings.logSearch)


def _resource(
    resource: dict[str, Any], documents: list[Any], source: str, default_name: str
) -> LoadedProblem:
    messages = []
    if resource.get("apiVersion") != API_VERSION:
        messages.append(f"apiVersion: expected '{API_VERSION}', got {resource.get('apiVersion')!r}")
    metadata = resource.get("metadata") or {}
    name = str(metadata.get("name") or default_name) if isinstance(metadata, Mapping) else ""
    spec = resource.get("spec")
    if not isinstance(spec, Mapping):
        messages.append("spec: missing or not a mapping")
        raise ProblemFileError(messages)
    if messages:
        raise ProblemFileError(messages)
    spec = dict(spec)
    solver = spec.get("solver") or {}
    ref = spec.get("problemRef")
    data = {k: v for k, v in spec.items() if k not in NON_PROBLEM_KEYS}
    if ref is None:
        return _both(name, lambda: _problem(data, "spec"), solver, "spec.solver")
    return _both(name, lambda: _referenced(ref, data, documents, source), solver, "spec.solver")


def _referenced(ref: Any, inline: dict[str, Any], documents: list[Any], source: str) -> ProblemData:
    if not isinstance(ref, Mapping) or not ref.get("configMapName") or not ref.get("key"):
        raise ProblemFileError(["spec.problemRef: needs configMapName and key"])
    # An empty list is no inline problem: the API server fills in `machines: []` and friends
    # (CRD defaults), so a resource read back from a cluster has them.
    inline = {k: v for k, v in inline.items() if not (k in INLINE_ONLY and not v)}
    both = [k for k in INLINE_ONLY if k in inline]
    if both:
        raise ProblemFileError(
            [f"spec.{both[0]}: give the problem inline or through spec.problemRef, not both"]
        )
    cm_name, key = str(ref["configMapName"]), str(ref["key"])
    maps = [
        d
        for d in documents
        if isinstance(d, Mapping)
        and d.get("kind") == "ConfigMap"
        and isinstance(d.get("metadata"), Mapping)
        and d["metadata"].get("name") == cm_name
    ]
    if not maps:
        raise ProblemFileError(
            [
                f"spec.problemRef.configMapName: ConfigMap '{cm_name}' is not in {source}; for a "
                "local solve put it in the same file, as another YAML document after '---'"
            ]
        )
    data = maps[0].get("data") or {}
    if key not in data:
        raise ProblemFileError(
            [
                f"spec.problemRef.key: ConfigMap '{cm_name}' has no key '{key}' "
                f"(keys: {', '.join(sorted(map(str, data))) or 'none'})"
            ]
        )
    return referenced_problem(str(data[key]), inline, cm_name, key)


def referenced_problem(text: str, inline: Mapping[str, Any], cm_name: str, key: str) -> ProblemData:
    """The problem of a problemRef ConfigMap's value `text`, with the spec's own `inline`
    fields (objective, horizon) over its own. Raises ProblemFileError naming the ConfigMap."""
    where = f"configmap/{cm_name}[{key}]"
    documents = safe_documents(text, where, MAX_PROBLEM_BYTES)
    if len(documents) > 1:
        raise ProblemFileError([f"{where}: holds {len(documents)} YAML documents; give one"])
    content = documents[0] if documents else None
    if isinstance(content, Mapping) and content.get("kind") == KIND:
        content = content.get("spec")
    if not isinstance(content, Mapping):
        raise ProblemFileError([f"{where}: expected a problem mapping with machines and jobs"])
    merged = {k: v for k, v in dict(content).items() if k not in NON_PROBLEM_KEYS}
    merged.update(inline)  # objective / horizon in the spec override the ConfigMap's
    return _problem(merged, where)


def _problem(data: dict[str, Any], prefix: str) -> ProblemData:
    try:
        return ProblemData.model_validate(data)
    except ValidationError as error:
        raise ProblemFileError(error_lines(error, prefix)) from error


def _settings(data: Any, prefix: str) -> ProblemSettings:
    try:
        return ProblemSettings.model_validate(data)
    except ValidationError as error:
        raise ProblemFileError(error_lines(error, prefix)) from error
