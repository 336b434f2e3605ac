"""Read a problem file: a SchedulingProblem resource (optionally with its ConfigMap) or a bare
problem mapping. Every problem with the file becomes one message naming the field path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vulcan_operator.solver.problem import ProblemData, SolverSettings

API_VERSION = "vulcan-engine.com/v1alpha1"
KIND = "SchedulingProblem"
NON_PROBLEM_KEYS = ("engineRef", "solver", "problemRef")
"""Spec keys that are not part of the problem itself."""
INLINE_ONLY = ("machines", "operators", "jobs")


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
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProblemFileError([f"{path}: cannot read: {error.strerror or error}"]) from error
    except UnicodeDecodeError as error:
        raise ProblemFileError([f"{path}: not UTF-8 text ({error.reason})"]) from error
    return load_text(text, str(path), default_name=path.stem)


def load_text(text: str, source: str = "<problem>", default_name: str = "problem") -> LoadedProblem:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ProblemFileError([f"{source}: not valid YAML: {error}"]) from error
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
    settings: SolverSettings | None = None
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
    return LoadedProblem(name, data, settings)


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
    where = f"configmap/{cm_name}[{key}]"
    try:
        content = yaml.safe_load(str(data[key]))
    except yaml.YAMLError as error:
        raise ProblemFileError([f"{where}: not valid YAML: {error}"]) from error
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


def _settings(data: Any, prefix: str) -> SolverSettings:
    try:
        return SolverSettings.model_validate(data)
    except ValidationError as error:
        raise ProblemFileError(error_lines(error, prefix)) from error
