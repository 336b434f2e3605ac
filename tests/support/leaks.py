"""The leak scanner: everything the operator said or wrote, by channel (logs, Events, every
stored object version, request bodies, subprocess output, metrics), and the search of it for
every form a secret takes (plain, base64, URL-encoded, a prefix of it)."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import generate_latest

from tests.emulator import Emulator
from vulcan_operator.metrics import METRICS

PREFIX = 12  # the shortest prefix of a secret that counts as a leak
PASSWORD = "Leak-Canary-7f3a9c-Pw"
# Nothing listens on port 9 here: every connection is refused at once, so the operator's and
# the solver pod's database error paths (the likeliest to print a URL) run too.
DB_URL = f"postgresql://vulcan_app:{PASSWORD}@127.0.0.1:9/vulcan"
OTHER_URL = f"postgresql://other_app:{PASSWORD}@127.0.0.1:9/other"


# --- the corpus and the scanner ------------------------------------------------------------------
@dataclass
class Corpus:
    """Everything the operator said or wrote, by channel."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, channel: str, text: Any) -> None:
        if not isinstance(text, str):
            text = json.dumps(text, default=str, sort_keys=True)
        self.texts.setdefault(channel, []).append(text)

    def size(self) -> dict[str, int]:
        return {channel: len(items) for channel, items in sorted(self.texts.items())}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def needles(keys: list[str]) -> dict[str, str]:
    """What must never appear, by a name that says which secret it is."""
    found = {
        "database password": PASSWORD,
        "database URL": DB_URL,
        "database URL (base64)": b64(DB_URL),
        "other database URL": OTHER_URL,
        "other database URL (base64)": b64(OTHER_URL),
        "database password (base64)": b64(PASSWORD),
    }
    for i, key in enumerate(keys):
        found[f"key #{i}"] = key
        found[f"key #{i} (base64)"] = b64(key)
        found[f"key #{i} (first {PREFIX} characters)"] = key[:PREFIX]
    return found


def scan(corpus: Corpus, wanted: dict[str, str]) -> list[str]:
    """Every (channel, secret) hit, with a little context."""
    hits = []
    for channel, texts in corpus.texts.items():
        for text in texts:
            for name, value in wanted.items():
                at = text.find(value)
                if at >= 0:
                    context = text[max(0, at - 60) : at + len(value) + 20].replace("\n", " ")
                    hits.append(f"{channel}: {name}: ...{context}...")
    return hits


def format_record(record: logging.LogRecord) -> str:
    """Message, arguments, exception and stack text, and every extra field of a record."""
    parts = [record.name, record.levelname, str(record.msg), repr(record.args)]
    try:
        parts.append(record.getMessage())
    except Exception as exc:  # a broken format string is itself worth seeing
        parts.append(f"<unformattable: {exc!r}>")
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    standard = set(vars(logging.makeLogRecord({})))
    extras = {k: v for k, v in vars(record).items() if k not in standard}
    parts.append(repr(extras))
    return "\n".join(parts)


def collect(
    emulator: Emulator,
    records: list[logging.LogRecord],
    output: str,
    processes: list[tuple[str, str]],
) -> Corpus:
    corpus = Corpus()
    for record in records:
        corpus.add("log", format_record(record))
    corpus.add("stdout/stderr", output)
    for ref in ("events", "events.k8s.io/v1/events"):
        for event in emulator.list(ref):
            corpus.add("event", event)
    for key in list(emulator.objects.keys()):
        resource = key[0]
        for version in list(emulator.objects[key].history):
            if version is None:
                continue
            obj = dict(version)
            if resource.plural == "secrets":
                obj = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
            corpus.add("status" if "status" in obj else "object", obj.get("status"))
            corpus.add(f"object {resource.plural}", obj)
    for request in emulator.log:
        corpus.add("request", f"{request.method} {request.path}?{request.query}")
        if request.resource != "secrets":
            corpus.add("request body", request.body)
    for name, text in processes:
        corpus.add(f"subprocess {name}", text)
    corpus.add("metrics", generate_latest(METRICS.registry).decode())
    corpus.add("emulator failures", repr(list(emulator.failures)))
    return corpus


def all_keys(emulator: Emulator) -> list[str]:
    """Every value SECRET_KEY and JWT_SECRET_KEY ever had, in every keys Secret."""
    values = set()
    for key in list(emulator.objects.keys()):
        if key[0].plural != "secrets" or not str(key[2]).endswith("-keys"):
            continue
        for version in emulator.objects[key].history:
            for encoded in ((version or {}).get("data") or {}).values():
                values.add(base64.b64decode(encoded).decode())
    return sorted(values)
