"""`kubectl vulcan report ENGINE -o bundle.tar.gz`: a support bundle to attach to a ticket.

In it: the engine and every child, its backups, restores and problems (with their statuses),
the Events about them, the backend's and the operator's pod logs, the objects the operator
renders for the engine's spec now, and the `status` screen. Nothing secret: every Secret is
kept with its keys only; every value of every Secret of the namespace that could be read
(plain and base64, and the password of a URL held in one) is replaced wherever it appears;
passwords in URLs and the values of secret-looking environment variables are replaced
everywhere, whoever wrote them; `last-applied-configuration` annotations are dropped.
"""

from __future__ import annotations

import base64
import datetime
import io
import re
import tarfile
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from vulcan_operator import kinds, names
from vulcan_operator.builders import engine_children
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.keys import ensure_keys
from vulcan_operator.config import Settings
from vulcan_operator.ctl import view
from vulcan_operator.ctl.kube import Kube, KubeError, ours, path

REDACTED = "<redacted>"
LOG_TAIL = 2000
OPERATOR_SELECTOR = {"app.kubernetes.io/name": "vulcan-operator"}
#: Environment variables whose literal values are secret by their name.
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_KEY$|^KEY$|DSN|_URL$|CREDENTIAL)", re.I)
#: user:password@ in any URL.
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@\"']*:)[^\s@/\"']+@")
DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without managedFields and last-applied annotations; Secrets keys only."""
    obj = dict(obj)
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k not in DROPPED_ANNOTATIONS
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    obj["metadata"] = meta
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if obj.get(field):
                obj[field] = dict.fromkeys(obj[field], REDACTED)
    cleaned: dict[str, Any] = _redact_env(obj)
    return cleaned


def _redact_env(node: Any) -> Any:
    """Literal `value`s of env entries with secret-looking names, anywhere in an object."""
    if isinstance(node, list):
        return [_redact_env(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _redact_env(v) for k, v in node.items()}
    if isinstance(out.get("name"), str) and "value" in out and SECRET_NAME.search(out["name"]):
        out["value"] = REDACTED
    return out


def secret_values(secrets: Iterable[dict[str, Any]]) -> set[str]:
    """Every value held in these Secrets, plain and base64, and URL passwords in them."""
    found: set[str] = set()
    for secret in secrets:
        for encoded in (secret.get("data") or {}).values():
            found.add(str(encoded))
            try:
                plain = base64.b64decode(str(encoded)).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
            found.add(plain)
            for line in plain.splitlines():
                found.add(line.strip())
                try:
                    password = urlsplit(line.strip()).password
                except ValueError:
                    password = None
                if password:
                    found |= {password, unquote(password)}
                    found.add(base64.b64encode(password.encode()).decode())
    return {v for v in found if len(v) >= MIN_SECRET_LENGTH}


class Redactor:
    def __init__(self, values: set[str]) -> None:
        # Longest first: a URL goes before the password inside it.
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        return URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + "@", text)


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, width=120)


def _list_or_note(
    kube: Kube,
    resource_path: str,
    notes: list[str],
    what: str,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    try:
        return kube.list(resource_path, labels)
    except KubeError as exc:
        notes.append(f"{what}: not collected ({exc})")
        return []


def _logs(
    kube: Kube, namespace: str, pods: list[dict[str, Any]], notes: list[str]
) -> dict[str, str]:
    out = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        try:
            out[f"{namespace}/{name}"] = kube.log(namespace, name, tail=LOG_TAIL)
        except KubeError as exc:
            notes.append(f"logs of pod {namespace}/{name}: not collected ({exc})")
    return out


def _rendered(engine: dict[str, Any]) -> str:
    """The objects the operator renders for the engine's spec now (generated keys included,
    then redacted with every other Secret)."""
    try:
        probe = EngineInputs.from_resource(engine, settings=Settings())
        inputs = EngineInputs.from_resource(
            engine, keys=ensure_keys(probe.spec, None), settings=Settings(), monitoring=True
        )
        return yaml.safe_dump_all([_clean(o) for o in engine_children(inputs)], sort_keys=False)
    except Exception as exc:  # an invalid spec is itself worth reporting
        return f"# the spec cannot be rendered: {type(exc).__name__}: {str(exc)[:2000]}\n"


def bundle(kube: Kube, name: str, operator_namespace: str, now: datetime.datetime) -> bytes:
    """The support bundle of engine `name`, as a gzipped tar; raises nothing for what it
    cannot read (a note in NOTES.txt instead), but the engine itself must exist."""
    ns = kube.namespace
    engine = kube.get(ours(kinds.ENGINE, ns, name))
    if engine is None:
        raise LookupError(name)
    notes: list[str] = []
    files: dict[str, str] = {}
    snap = view.collect(kube, ns, name)
    files["status.txt"] = view.render(snap or {}, now) if snap else ""
    files["engine.yaml"] = _dump(_clean(engine))
    for child in view.children(kube, ns, name):
        files[f"children/{child['kind']}-{child['metadata']['name']}.yaml"] = _dump(_clean(child))
    secrets = _list_or_note(kube, path("v1", "secrets", ns), notes, "Secrets")
    for secret in secrets:
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(names.LABEL_ENGINE) == names.label_value(name):
            files[f"children/Secret-{secret['metadata']['name']}.yaml"] = _dump(
                _clean({"apiVersion": "v1", "kind": "Secret", **secret})
            )
    related = []
    for kind in (kinds.BACKUP, kinds.RESTORE, kinds.PROBLEM):
        for obj in view.related(kube, kind, ns, name):
            related.append(obj)
            files[f"{kind.plural}/{obj['metadata']['name']}.yaml"] = _dump(_clean(obj))
    events = _list_or_note(kube, path("v1", "events", ns), notes, "Events")
    files["events.yaml"] = _dump([_clean(e) for e in events])
    backend = _list_or_note(
        kube,
        path("v1", "pods", ns),
        notes,
        "backend pods",
        names.selector(name, names.COMPONENT_BACKEND),
    )
    for pod in backend:
        files[f"pods/{pod['metadata']['name']}.yaml"] = _dump(_clean(pod))
    for where, text in _logs(kube, ns, backend, notes).items():
        files[f"logs/backend/{where.split('/', 1)[1]}.log"] = text
    operators = _list_or_note(
        kube, path("v1", "pods", operator_namespace), notes, "operator pods", OPERATOR_SELECTOR
    )
    if not operators:
        notes.append(
            f"no operator pods found in namespace {operator_namespace} (--operator-namespace)"
        )
    for where, text in _logs(kube, operator_namespace, operators, notes).items():
        files[f"logs/operator/{where.split('/', 1)[1]}.log"] = text
    files["rendered.yaml"] = _rendered(engine)
    files["NOTES.txt"] = (
        f"Support bundle of VulcanEngine {ns}/{name}, taken {now:%Y-%m-%dT%H:%M:%SZ}.\n"
        "Secret values and passwords are replaced by <redacted>.\n"
        + "".join(f"- {n}\n" for n in notes)
    )
    redact = Redactor(secret_values(secrets))
    buffer = io.BytesIO()
    stamp = int(now.timestamp())
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for file_name, text in sorted(files.items()):
            data = redact(text).encode("utf-8")
            info = tarfile.TarInfo(f"{name}-report/{file_name}")
            info.size, info.mtime, info.mode = len(data), stamp, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
