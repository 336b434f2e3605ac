"""Check resources against our models: one line per problem, naming the field and the rule."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vulcan_operator import GROUP, checks
from vulcan_operator.checks import MODELS, Named
from vulcan_operator.config import Settings
from vulcan_operator.solver.loader import MAX_FILE_BYTES, ProblemFileError, safe_documents

__all__ = ["MODELS", "load_documents", "resource_name", "validate_files", "validate_resource"]


def resource_name(doc: dict[str, Any]) -> str:
    """'Kind/name'; '?' for a part that is missing or no plain word (a name given as a mapping,
    an empty one), so every problem line keeps its '<Kind>/<name>: <field path>' shape."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    kind, name = doc.get("kind"), (meta or {}).get("name")
    return f"{_word(kind)}/{_word(name)}"


def _word(value: Any) -> str:
    plain = isinstance(value, str) and value and not any(c.isspace() for c in value)
    return str(value) if plain else "?"


def validate_resource(doc: Any, named: Named | None = None) -> list[str]:
    """Problems of one resource ([] when valid): the checks of the admission webhook and the
    reconcile, with the operator's settings from this environment (VULCAN_ALLOWED_IMAGES).
    `named` holds the ConfigMaps and engines the files give."""
    return checks.check(doc, named, Settings.from_env().allowed_images)


def load_documents(path: Path) -> list[Any]:
    """The documents of a file, read as every problem document is (no YAML aliases, a size
    cap): a resource file is user input like any other."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ProblemFileError([f"{path}: more than the {MAX_FILE_BYTES} bytes a file may have"])
    return safe_documents(path.read_text(), str(path))


def validate_files(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    """(problems, notes) over every document of every file."""
    problems: list[str] = []
    notes: list[str] = []
    docs: list[tuple[Path, Any]] = []
    for path in paths:
        try:
            docs.extend((path, d) for d in load_documents(path))
        except ProblemFileError as exc:
            problems.extend(exc.messages)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {' '.join(str(exc).split())}")
    configmaps = [
        (path, d["metadata"].get("namespace"), str(d["metadata"].get("name")), d)
        for path, d in docs
        if isinstance(d, dict)
        and d.get("kind") == "ConfigMap"
        and d.get("apiVersion") == "v1"
        and isinstance(d.get("metadata"), dict)
    ]
    # The engines of each file, by (namespace, name): a problem's caps and a restore's store
    # are checked against an engine of the same file (other files may be other overlays).
    engines: dict[Path, dict[tuple[str, str], dict[str, Any]]] = {}
    for path, d in docs:
        if isinstance(d, dict) and d.get("kind") == "VulcanEngine":
            meta = d["metadata"] if isinstance(d.get("metadata"), dict) else {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name")))
            engines.setdefault(path, {})[key] = d
    for path, doc in docs:
        name = resource_name(doc) if isinstance(doc, dict) else "?"
        api_version = str(doc.get("apiVersion", "")) if isinstance(doc, dict) else ""
        ours = isinstance(doc, dict) and doc.get("kind") in MODELS
        if api_version and not api_version.startswith(f"{GROUP}/") and not ours:
            notes.append(f"{path}: {name}: skipped (not a {GROUP} resource)")
            continue
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        # ConfigMaps of the same namespace (or of none given); the same file's win.
        same_namespace = [c for c in configmaps if None in (c[1], namespace) or c[1] == namespace]
        visible = {n: cm for p, _, n, cm in same_namespace if p != path}
        visible.update({n: cm for p, _, n, cm in same_namespace if p == path})
        found = validate_resource(doc, Named(visible, engines.get(path, {})))
        problems.extend(f"{path}: {name}: {line}" for line in found)
        if not found:
            notes.append(f"{path}: {name}: valid")
    return problems, notes
