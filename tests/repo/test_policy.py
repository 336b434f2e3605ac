"""Policy: checkov on every manifest the operator renders and on the install (manifests/).

One checkov run (module-scoped, ~10 s) over a folder holding: every engine variant
(tests/data/engines/*.yaml and examples/vulcanengine.yaml, rendered as `vulcan-operator render`
does, backup and maintenance CronJobs included), the solver Jobs of the example problems
(rendered with `--engine`, inline and problemRef), the migration Job, the backup Jobs (volume
and S3), the restore Jobs (volume and S3) and `kubectl apply -k manifests/`.

Zero failures, except those policy/checkov-skips.yaml lists with a reason; an entry that no
longer matches a failure fails too (delete it). checkov lives in its own virtualenv,
.venv-checkov (scripts/setup.sh; see policy/requirements.txt for why).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import chart
from tests.support.manifests import kustomize
from vulcan_operator.api.engine import BackupStorage
from vulcan_operator.builders import backup as backup_builder
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import migration_job
from vulcan_operator.cli.preview import render
from vulcan_operator.cli.validate import load_documents
from vulcan_operator.config import Settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SKIPS = REPO / "policy" / "checkov-skips.yaml"
ENGINE_FILES = [*sorted((REPO / "tests" / "data" / "engines").glob("*.yaml"))]
EXAMPLE_ENGINE = REPO / "examples" / "vulcanengine.yaml"
PROBLEMS = [
    REPO / "examples" / "ft06.yaml",
    REPO / "examples" / "plant.yaml",
    REPO / "tests" / "data" / "valid" / "problem-ref-configmap.yaml",
]
CHECKOV_TIMEOUT = 180

Obj = dict[str, Any]


def checkov_binary() -> str | None:
    local = REPO / ".venv-checkov" / "bin" / "checkov"
    if local.exists():
        return str(local)
    return shutil.which("checkov")


def _docs(path: Path) -> list[Any]:
    return list(load_documents(path))


def _engine(namespace: str) -> Obj:
    (doc,) = _docs(EXAMPLE_ENGINE)
    return {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}


def one_off_jobs(settings: Settings) -> dict[str, list[Obj]]:
    """The Jobs an engine's reconcile and the backup/restore controllers make on demand."""
    engine = _engine("vulcan")
    engine["metadata"]["uid"] = "11111111-1111-1111-1111-111111111111"
    inputs = EngineInputs.from_resource(
        engine, keys={"SECRET_KEY": "k", "JWT_SECRET_KEY": "j"}, settings=settings
    )
    spec = inputs.spec
    s3 = BackupStorage.model_validate(
        {
            "s3": {
                "bucket": "vulcan-backups",
                "prefix": "database",
                "credentialsSecretRef": {"name": "s3-creds"},
            }
        }
    )
    s3_spec = spec.model_copy(update={"backup": spec.backup.model_copy(update={"storage": s3})})
    backup = Owner(kind="VulcanBackup", name="prod-manual-1", namespace="vulcan", uid="b-uid")
    restore = Owner(kind="VulcanRestore", name="prod-restore-1", namespace="vulcan", uid="r-uid")
    return {
        "migration-job": [
            migration_job(inputs, "2.1.0", list(spec.upgrade.migrationCommand), "migrate")
        ],
        "backup-job-pvc": backup_builder.build_backup_job(backup, "prod", spec, settings),
        "backup-job-s3": backup_builder.build_backup_job(backup, "prod", s3_spec, settings),
        "restore-job-pvc": backup_builder.build_restore_job(
            restore,
            "prod",
            spec,
            settings,
            location="pvc://prod-backups/vulcan/prod/vulcan_20261129_020000.dump",
            checksum="9f" * 32,
        ),
        "restore-job-s3": backup_builder.build_restore_job(
            restore,
            "prod",
            s3_spec,
            settings,
            location="s3://vulcan-backups/database/vulcan/prod/vulcan_20261129_020000.dump",
            checksum="9f" * 32,
        ),
    }


def policy_manifests() -> dict[str, list[Obj]]:
    """file stem → the objects checked in it."""
    settings = Settings(operator_image="ghcr.io/vulcan-engine/vulcan-operator:0.1.0")
    out: dict[str, list[Obj]] = {}
    for path in [*ENGINE_FILES, EXAMPLE_ENGINE]:
        out[f"engine-{path.stem}"] = render(_docs(path), settings=settings)
    for path in PROBLEMS:
        docs = _docs(path)
        problem = next(d for d in docs if d.get("kind") == "SchedulingProblem")
        namespace = problem["metadata"].get("namespace") or "vulcan"
        # The engine lives where the problem's engineRef says (examples/plant.yaml: another
        # namespace's engine, which admits plant-a by spec.solver.acceptFrom).
        engine_namespace = (problem["spec"].get("engineRef") or {}).get("namespace") or namespace
        out[f"solver-{path.stem}"] = render(
            docs, engines=[_engine(engine_namespace)], settings=settings, namespace=namespace
        )
    out.update(one_off_jobs(settings))
    out["install"] = kustomize(MANIFESTS)
    # The Helm chart, rendered by real Helm for each value set of its tests (CRDs left out:
    # they are the install's, checked above).
    for name, values in chart.VALUE_SETS.items():
        objs = chart.render(values)
        out[f"chart-{name}"] = [o for o in objs if o["kind"] != "CustomResourceDefinition"]
    return out


# --- the skip list --------------------------------------------------------------------------
def load_skips() -> list[dict[str, Any]]:
    return list(yaml.safe_load(SKIPS.read_text())["skips"])


def covering(failure: dict[str, Any], skips: list[dict[str, Any]]) -> dict[str, Any] | None:
    for skip in skips:
        if skip["check"] != failure["check_id"]:
            continue
        patterns = skip.get("resources")
        if not patterns or any(fnmatch.fnmatchcase(failure["resource"], p) for p in patterns):
            return skip
    return None


def describe(failure: dict[str, Any]) -> str:
    lines = failure.get("file_line_range") or []
    where = f"{failure['file_path'].lstrip('/')}" + (f":{lines[0]}" if lines else "")
    return f"{failure['check_id']} {failure['check_name']}\n    {failure['resource']}  ({where})"


def test_every_skip_has_a_check_and_a_reason() -> None:
    skips = load_skips()
    assert skips
    for skip in skips:
        assert set(skip) <= {"check", "name", "resources", "reason"}, skip
        assert skip["check"].startswith(("CKV_K8S_", "CKV2_K8S_")), skip
        assert len(skip.get("reason", "").split()) >= 10, f"{skip['check']}: say why"
    checks = [s["check"] for s in skips]
    assert len(checks) == len(set(checks)), "one entry per check"


# --- the checkov run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    binary = checkov_binary()
    if binary is None:
        message = "checkov not installed: run scripts/setup.sh (it makes .venv-checkov)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("policy")
    objects = policy_manifests()
    for stem, objs in objects.items():
        (folder / f"{stem}.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",  # no download of the platform's check mappings
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "LOG_LEVEL": "ERROR",
    }
    done = subprocess.run(
        [
            binary,
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
            "--skip-results-upload",
        ],
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1), f"checkov failed ({done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    if isinstance(report, list):  # one entry per framework when there are several
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    report["objects"] = sum(len(v) for v in objects.values())
    report["files"] = sorted(objects)
    return report  # type: ignore[no-any-return]


def test_checkov_read_every_manifest(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 1000, summary
    # checkov counts each object once (a CronJob or Job also yields its pod template).
    assert summary["resource_count"] >= checkov_report["objects"] - 10, summary


def test_no_failed_checks_but_the_justified_skips(checkov_report: dict[str, Any]) -> None:
    skips = load_skips()
    failed = checkov_report["results"]["failed_checks"]
    uncovered = [f for f in failed if covering(f, skips) is None]
    used = Counter(covering(f, skips)["check"] for f in failed if covering(f, skips))  # type: ignore[index]
    summary = checkov_report["summary"]
    print(
        f"\ncheckov {summary['checkov_version']}: {summary['passed']} passed, "
        f"{summary['failed']} failed ({len(failed) - len(uncovered)} covered by "
        f"policy/checkov-skips.yaml: {dict(sorted(used.items()))}), "
        f"{summary['resource_count']} resources in {len(checkov_report['files'])} files",
        file=sys.stderr,
    )
    assert not uncovered, (
        f"{len(uncovered)} failed checkov check(s); fix the manifest, or add the check to "
        "policy/checkov-skips.yaml with the reason:\n"
        + "\n".join(describe(f) for f in sorted(uncovered, key=lambda f: f["check_id"]))
    )
    stale = [s["check"] for s in skips if s["check"] not in used]
    assert not stale, f"policy/checkov-skips.yaml: no longer needed, delete: {stale}"


def test_a_planted_failure_is_reported(checkov_report: dict[str, Any]) -> None:
    """The negative control: the skip matching is not so loose that it hides real findings."""
    skips = load_skips()
    planted = {
        "check_id": "CKV_K8S_16",
        "check_name": "Container should not be privileged",
        "resource": "Deployment.vulcan.prod",
        "file_path": "/engine-vulcanengine.yaml",
    }
    assert covering(planted, skips) is None
    scoped = {**planted, "check_id": "CKV_K8S_40", "resource": "Deployment.vulcan.prod"}
    assert covering(scoped, skips) is None  # CKV_K8S_40 is skipped for backup pods only
