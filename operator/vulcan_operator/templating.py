"""Jinja2 templates → manifests (dicts).

Templates hold the shape of an object only; builders compute every value and decide which
templates to render. Every scalar goes through `|tojson`: JSON is valid YAML, so a value such
as `yes`, `on`, `1e3` or `a: b` stays the string it was. `StrictUndefined` turns a variable a
builder forgot into an error in the unit tests instead of a broken object in a cluster.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from vulcan_operator.config import templates_dir

__all__ = ["environment", "render", "render_text", "tojson"]


def tojson(value: Any) -> str:
    """`value` as one line of JSON that YAML (1.1, as PyYAML reads it) loads back unchanged.

    Non-ASCII is escaped; floats always carry a '.' (PyYAML reads `1e+30` as a string).
    An undefined variable raises `jinja2.UndefinedError` naming it.
    """
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError with the variable's name
        raise jinja2.UndefinedError("an undefined value cannot be rendered")
    if isinstance(value, float):
        return _float(value)
    return json.dumps(value, ensure_ascii=True, allow_nan=False, default=_unknown)


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot render the non-finite number {value!r}")
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _unknown(value: Any) -> Any:
    raise TypeError(f"cannot render {type(value).__name__} {value!r} as JSON")


@lru_cache(maxsize=8)
def environment(folder: Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment over `folder` (default: `config.templates_dir()`)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder or templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson"] = tojson
    return env


def render_text(template: str, *, folder: Path | None = None, **context: Any) -> str:
    """The rendered text of `template` (a file name in the templates folder)."""
    return environment(folder).get_template(template).render(**context)


#: libyaml's safe loader when PyYAML has it (the same documents, ~15x faster: every reconcile
#: renders all of an engine's children on Kopf's event loop), else the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def render(template: str, *, folder: Path | None = None, **context: Any) -> list[dict[str, Any]]:
    """Render `template` and load it as YAML: one dict per non-empty document."""
    text = render_text(template, folder=folder, **context)
    documents: list[dict[str, Any]] = []
    for doc in yaml.load_all(text, Loader=_SAFE_LOADER):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"{template}: a document is a {type(doc).__name__}, not a mapping")
        documents.append(doc)
    return documents


def render_one(template: str, **context: Any) -> dict[str, Any]:
    """Render a template that holds exactly one object (most children), and return it."""
    docs = render(template, **context)
    if len(docs) != 1:
        raise ValueError(f"{template} rendered {len(docs)} documents, expected 1")
    return docs[0]
