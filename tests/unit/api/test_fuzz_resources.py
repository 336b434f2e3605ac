"""Bad input, property-based: our four kinds, valid and mutated (tests/support/fuzzdocs.py).

- `vulcan-operator validate` (in-process) never raises; exit 0 and no output for a valid
  document, which the CRD (schema and CEL rules) accepts too; exit 1 for a mutated one, every
  line '<file>: <Kind>/<name>: <field path>: <what>' and one of them naming the broken field.
- `render` of a valid engine or problem gives manifests that all pass strict validation
  (kubernetes-validate) and the API server's own checks kubernetes-validate leaves out
  (container requests <= limits, DNS names and label values).
- The engine reconcile (`reconcile.engine.reconcile`, no Kopf) never raises on a spec that got
  past the CRD: phase Failed, Ready=False InvalidSpec, the message naming the field, and no
  API call at all.

Reproducible in CI: derandomized, fixed example counts (`settings` below). The count of inputs
tried and refused per kind is printed at the end of the module (and written to
$VULCAN_FUZZ_SUMMARY as JSON lines when set).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.crds import root_schema, rule_failures, schema_errors
from tests.support.fuzzdocs import KINDS, Broken, invalid_doc, related, report, valid_doc
from tests.support.manifests import manifest_errors
from vulcan_operator import cli
from vulcan_operator.cli.preview import RenderError, render
from vulcan_operator.config import Settings
from vulcan_operator.reconcile import engine as engine_reconcile

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # Shrinking these nested documents can take minutes: a failure shows the input as drawn
    # (a Broken says what was mutated where). VULCAN_FUZZ_SHRINK=1 shrinks it.
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("VULCAN_FUZZ_SHRINK") else []),
)


def fuzz(examples: int) -> settings:
    """Derandomized (the same inputs on every run), no deadline, `examples` inputs."""
    return settings(FUZZ, max_examples=examples)


# '<file>: <Kind>/<name>: <field path>[ (where)]: <what>' (as tests/unit/cli/test_validate.py)
LINE = re.compile(
    r"^(?P<file>\S+): (?P<resource>[A-Za-z]+/\S+): "
    r"(?P<field>[A-Za-z][\w-]*(\[\d+\])*(\.[\w-]+(\[\d+\])*)*)( \([^)]*\))?: (?P<what>\S.*)$"
)

TALLY: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = []
    for kind in KINDS:
        hows = sorted(
            (k[1][4:], n) for k, n in TALLY.items() if k[0] == kind and k[1][:4] == "how:"
        )
        lines.append(
            f"fuzz {kind}: validate accepted {TALLY[(kind, 'valid')]} valid; refused "
            f"{TALLY[(kind, 'refused')]}/{TALLY[(kind, 'invalid')]} invalid "
            f"({', '.join(f'{h} {n}' for h, n in hows)}); rendered {TALLY[(kind, 'rendered')]} "
            f"({TALLY[(kind, 'manifests')]} manifests, all valid)"
            + (
                f"; reconcile InvalidSpec {TALLY[(kind, 'reconcile-invalid')]}"
                if kind == "VulcanEngine"
                else ""
            )
        )
    report(request.config, lines)


def run_validate(doc: Any) -> tuple[int, str, str, str]:
    """`vulcan-operator validate FILE` in-process: (exit code, stdout, stderr, file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resource.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["validate", str(path)])
        return code, out.getvalue(), err.getvalue(), str(path)


# --- validate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@fuzz(40)
@given(data=st.data())
def test_validate_accepts_valid_documents(kind: str, data: Any) -> None:
    doc = data.draw(valid_doc(kind), label="doc")
    code, out, err, _ = run_validate(doc)
    assert (code, out) == (0, ""), out
    assert ": valid" in err
    # ... and the CRD accepts it too: schema (defaults applied) and CEL rules.
    assert schema_errors(doc, kind) == []
    assert rule_failures(doc, root_schema(kind)) == []
    TALLY[(kind, "valid")] += 1


@pytest.mark.parametrize(
    ("kind", "examples"),
    [
        ("VulcanEngine", 120),
        ("SchedulingProblem", 120),
        ("VulcanBackup", 60),
        ("VulcanRestore", 60),
    ],
)
def test_validate_refuses_mutated_documents(kind: str, examples: int) -> None:
    fuzz(examples)(given(data=st.data())(_refuses))(kind=kind)


def _refuses(kind: str, data: Any) -> None:
    broken = data.draw(invalid_doc(kind), label="broken")
    TALLY[(kind, "invalid")] += 1
    TALLY[(kind, f"how:{broken.how}")] += 1
    code, out, err, path = run_validate(broken.doc)
    assert code == 1, f"{broken.how} at {broken.path} accepted:\n{err}"
    assert "Traceback" not in out + err
    lines = out.splitlines()
    assert lines and len(lines) == len(set(lines)), out
    if broken.path == "":  # the document is not a mapping at all
        assert lines == [f"{path}: ?: not a mapping (expected a Kubernetes resource)"]
        TALLY[(kind, "refused")] += 1
        return
    fields = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"not '<file>: <Kind>/<name>: <field path>: <what>': {line!r}"
        assert match["file"] == path
        fields.append(match["field"])
    assert any(related(f, broken.path) for f in fields), (
        f"{broken.how}: no line names {broken.path}:\n{out}"
    )
    TALLY[(kind, "refused")] += 1


# --- render -----------------------------------------------------------------------------------
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_FACTOR = {
    None: 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def quantity(value: Any) -> Decimal:
    match = _QUANTITY.match(str(value))
    assert match, f"not a quantity: {value!r}"
    return Decimal(match[1]) * Decimal(_FACTOR[match[2]])


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template") if obj["kind"] in ("Deployment", "Job", "CronJob") else None
    return [template["spec"]] if template else []


def server_errors(obj: dict[str, Any]) -> list[str]:
    """What the API server refuses that kubernetes-validate does not check."""
    errors = []
    meta = obj["metadata"]
    label = f"{obj['kind']}/{meta['name']}"
    dns_label_kinds = ("Service", "Deployment", "CronJob", "Job", "Namespace")
    if obj["kind"] in dns_label_kinds and not (
        _DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63
    ):
        errors.append(f"{label}: name is not a DNS-1123 label")
    for key, value in (meta.get("labels") or {}).items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(f"{label}: label {key}={value!r} is not a valid label value")
    for pod in pod_specs(obj):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            res = container.get("resources") or {}
            limits, requests = res.get("limits") or {}, res.get("requests") or {}
            for name, limit in limits.items():
                if name in requests and quantity(requests[name]) > quantity(limit):
                    errors.append(
                        f"{label}: container {container['name']}: requests.{name} "
                        f"{requests[name]} > limits.{name} {limit}"
                    )
        names = [c["name"] for c in [*pod.get("initContainers", []), *pod["containers"]]]
        if len(names) != len(set(names)):
            errors.append(f"{label}: duplicate container names")
    return errors


def check_manifests(objs: list[dict[str, Any]], kind: str) -> None:
    assert objs, "rendered nothing"
    errors = [e for obj in objs for e in manifest_errors(obj)]
    errors += [e for obj in objs for e in server_errors(obj)]
    assert errors == [], "\n".join(errors)
    keys = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(keys) == len(set(keys)), "an object rendered twice"
    TALLY[(kind, "rendered")] += 1
    TALLY[(kind, "manifests")] += len(objs)


RENDER_SETTINGS = Settings(operator_image="ghcr.io/vulcan-engine/vulcan-operator:0.1.0")


@fuzz(30)
@given(doc=valid_doc("VulcanEngine"))
def test_render_of_a_valid_engine_passes_strict_validation(doc: dict[str, Any]) -> None:
    check_manifests(render([doc], settings=RENDER_SETTINGS), "VulcanEngine")


@fuzz(30)
@given(doc=valid_doc("SchedulingProblem"), engine=valid_doc("VulcanEngine"))
def test_render_of_a_valid_problem_passes_strict_validation(
    doc: dict[str, Any], engine: dict[str, Any]
) -> None:
    engine["metadata"]["name"] = doc["spec"]["engineRef"]["name"]
    check_manifests(render([doc], engines=[engine], settings=RENDER_SETTINGS), "SchedulingProblem")


@pytest.mark.parametrize("kind", ["VulcanBackup", "VulcanRestore"])
@fuzz(20)
@given(data=st.data())
def test_render_of_a_valid_backup_or_restore(kind: str, data: Any) -> None:
    doc = data.draw(valid_doc(kind), label="doc")
    engine = data.draw(valid_doc("VulcanEngine"), label="engine")
    engine["metadata"]["name"] = doc["spec"]["engineRef"]["name"]
    if str(doc["spec"].get("location", "")).startswith("s3://") and data.draw(st.booleans()):
        engine["spec"]["backup"] = {
            "storage": {"s3": {"bucket": "vulcan-backups", "credentialsSecretRef": {"name": "c"}}}
        }
    try:
        objs = render([doc], engines=[engine], settings=RENDER_SETTINGS)
    except RenderError as exc:
        # What the operator cannot do with this engine (an s3:// restore for an engine with
        # no S3 settings, a backupRef whose VulcanBackup is not in the files): said, not raised.
        message = str(exc)
        assert message.startswith(f"{kind}/{doc['metadata']['name']}: "), message
        assert "Traceback" not in message and "\n" not in message, message
        TALLY[(kind, "render-refused")] += 1
        return
    check_manifests(objs, kind)


# --- the engine reconcile, without Kopf -------------------------------------------------------
LOOP = asyncio.new_event_loop()  # one loop for every example (asyncio.run makes one each)


class NoApi:
    """Any API call fails the test: an invalid spec must be reported without touching the
    cluster."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the reconcile of an invalid spec called the API: {name}")


def past_the_crd(broken: Broken) -> bool:
    """Could this document reach the operator (a cluster without our CRD's validation)?"""
    doc = broken.doc
    return (
        broken.how != "top-level"
        and isinstance(doc, dict)
        and isinstance(doc.get("metadata"), dict)
        and bool(doc["metadata"].get("name"))
        and not broken.path.startswith("metadata")
    )


@fuzz(100)
@given(broken=invalid_doc("VulcanEngine"))
def test_engine_reconcile_reports_an_invalid_spec(broken: Broken) -> None:
    if not past_the_crd(broken):
        return
    body = {**broken.doc, "metadata": {**broken.doc["metadata"], "generation": 3, "uid": "u"}}
    parsed = engine_reconcile.parse(body)
    if not isinstance(parsed, list):
        # The operator's models coerce '3' to 3 and 'true' to True (lax, unlike `validate`):
        # harmless, since the API server's structural schema never lets a wrong type through.
        assert broken.how == "wrong-type", f"{broken.how} at {broken.path} accepted"
        TALLY[("VulcanEngine", "reconcile-coerced")] += 1
        return
    assert parsed
    outcome = LOOP.run_until_complete(engine_reconcile.reconcile(NoApi(), body, Settings()))  # type: ignore[arg-type]
    status = outcome.status
    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 3
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    fields = [p.split(": ", 1)[0] for p in parsed]
    assert any(related(f, broken.path) for f in fields), (broken.path, parsed)
    assert all(f and f in ready["message"] for f in fields), ready["message"]
    assert [e[:2] for e in outcome.events] == [("Warning", "InvalidSpec")]
    json.dumps(status)  # a status the API server can store
    TALLY[("VulcanEngine", "reconcile-invalid")] += 1
