"""Helpers of the backup and restore tests on the emulator.

- Result lines in the exact shape the packaged programs print them (scripts/backup.sh,
  restore.sh, lib.sh `fail`), to hand to `JobOutcome.succeed/fail(message=...)`.
- `run_cronjob`: a Job made from a CronJob's jobTemplate, as the CronJob controller makes it
  (the emulator does not schedule CronJobs).
- `LocalPods`: runs the real programs of backup and restore pods on this machine, the kubelet's
  part: env with the Secrets' values, volumes as folders, the termination message file. With a
  real PostgreSQL, a VulcanBackup and a VulcanRestore then do exactly what they do in a
  cluster, and the operator reads the programs' own result lines.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.emulator import Emulator, JobOutcome

API = "vulcan-engine.com/v1alpha1"
ENGINES = "vulcanengines"
BACKUPS = "vulcanbackups"
RESTORES = "vulcanrestores"
COMPONENT = "app.kubernetes.io/component"
CHECKSUM = "9f" * 32
STARTED = "2026-11-29T02:00:00Z"
FINISHED = "2026-11-29T02:00:07Z"


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def backup_result(
    location: str,
    *,
    size: int = 123456,
    checksum: str = CHECKSUM,
    revision: str = "4f2a9c1d7e3b",
    engine: str = "prod",
    namespace: str = "default",
) -> str:
    """A successful backup's result line (backup.sh's manifest plus retention)."""
    return _line(
        {
            "kind": "vulcan-backup",
            "outcome": "Succeeded",
            "engine": engine,
            "namespace": namespace,
            "database": "vulcan",
            "location": location,
            "file": location.rsplit("/", 1)[-1],
            "sizeBytes": size,
            "checksum": checksum,
            "checksumAlgorithm": "sha256",
            "databaseRevision": revision,
            "format": "custom",
            "startedAt": STARTED,
            "finishedAt": FINISHED,
        }
    )


def failure(kind: str, step: str, message: str, exit_code: int = 1, **extra: Any) -> str:
    """A failed program's result line (lib.sh `fail`)."""
    return _line(
        {
            "kind": kind,
            "outcome": "Failed",
            "exitCode": exit_code,
            "step": step,
            "message": message,
            "startedAt": STARTED,
            "finishedAt": FINISHED,
            **extra,
        }
    )


def restore_result(
    location: str,
    *,
    database: str = "vulcan",
    rows: dict[str, int] | None = None,
    revision: str = "4f2a9c1d7e3b",
    rows_json: str | None = None,
) -> str:
    """A successful restore's result line (restore.sh); `rows_json` replaces rowCounts with
    raw JSON text (keys a hostile dump could choose)."""
    line = _line(
        {
            "kind": "vulcan-restore",
            "outcome": "Succeeded",
            "database": database,
            "location": location,
            "sizeBytes": 123456,
            "checksum": CHECKSUM,
            "databaseRevision": revision,
            "created": False,
            "startedAt": STARTED,
            "finishedAt": FINISHED,
            "rowCounts": rows if rows is not None else {"jobs": 500, "tasks": 2500},
        }
    )
    if rows_json is not None:
        line = line[: line.rindex('"rowCounts":')] + f'"rowCounts":{rows_json}}}'
    return line


# --- resources and their status -------------------------------------------------------------
def engine(name: str = "prod", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"version": "2.0.0", **spec},
    }


def db_secret(
    url: str = "postgresql://vulcan:pw@db:5432/vulcan",
    engine: str = "prod",
    namespace: str = "default",
) -> dict[str, Any]:
    """The Secret `<engine>-database` an engine reads its DATABASE_URL from by default."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{engine}-database", "namespace": namespace},
        "stringData": {"database-url": url},
    }


def custom(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    """A VulcanBackup or VulcanRestore of the engine `prod`."""
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"engineRef": {"name": "prod"}, **spec},
    }


def status(emulator: Emulator, resource: str = ENGINES, name: str = "prod") -> dict[str, Any]:
    return emulator.get(resource, "default", name)["status"]  # type: ignore[index,no-any-return]


def cond(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in st.get("conditions") or [] if c["type"] == type_)


def events_of(emulator: Emulator, name: str) -> list[str]:
    """Reasons of the Events about `name`, oldest first."""
    found = [
        e
        for e in emulator.list("events", "default")
        if (e.get("involvedObject") or {}).get("name") == name
    ]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [e["reason"] for e in found]


async def installed(emulator: Emulator, url: str | None = None, **spec: Any) -> None:
    """Create the database Secret and the engine; wait until it is installed and Ready."""
    emulator.create(db_secret(url) if url else db_secret())
    emulator.create(engine(**spec))
    await emulator.wait_for(
        lambda: status(emulator)["phase"] == "Ready" and status(emulator)["currentVersion"],
        timeout=60,
    )


def component_is(component: str, outcome: JobOutcome) -> Any:
    """An `outcome_for` giving `outcome` to the Jobs of one component (None for the rest)."""

    def choose(job: dict[str, Any]) -> JobOutcome | None:
        labels = job["metadata"].get("labels") or {}
        return outcome if labels.get(COMPONENT) == component else None

    return choose


def run_cronjob(emulator: Emulator, name: str, suffix: str, namespace: str = "default") -> str:
    """Start a run of CronJob `name` as the CronJob controller would: a Job named
    `<cronjob>-<suffix>` from its jobTemplate, owned by it. Returns the Job's name."""
    cronjob = emulator.get("cronjobs", namespace, name)
    assert cronjob is not None, f"no CronJob {name}"
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    job_name = f"{name}-{suffix}"
    meta = template.get("metadata") or {}
    emulator.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name,
                "namespace": namespace,
                "labels": meta.get("labels") or {},
                "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": STARTED},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": name,
                        "uid": cronjob["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
    )
    return job_name


class LocalPods:
    """Runs the program of a backup or restore pod here, as its containers would run it.

    `sh -c <program> <name>` becomes `dash -c ...` (or busybox sh); env values come from the
    pod spec, `secretKeyRef`s from the emulator's Secrets; each volume is a folder under `root`
    (a claim is `root/claims/<claim>`, shared between pods, an emptyDir is the pod's own), and
    paths in env values are moved along with their mounts; /dev/termination-log is a file.
    Init containers run first; the first failing container fails the pod.
    """

    def __init__(self, emulator: Emulator, root: Path, pg_bin_dir: Path) -> None:
        self.emulator = emulator
        self.root = root
        self.pg_bin_dir = pg_bin_dir
        self.shell = shutil.which("dash") or shutil.which("sh") or "/bin/sh"
        self.ran: list[tuple[str, int]] = []  # (container, exit code)
        # More programs (e.g. tests.support.dbharness.fake_aws's folder) and env for every
        # container (e.g. FAKE_S3_ROOT), as an image and its environment would bring them.
        self.extra_path: list[Path] = []
        self.extra_env: dict[str, str] = {}

    def outcome_for(self, job: dict[str, Any]) -> JobOutcome | None:
        labels = job["metadata"].get("labels") or {}
        if labels.get(COMPONENT) in ("backup", "restore"):
            return JobOutcome.run(self.run)
        return None

    async def run(self, job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        return await asyncio.to_thread(self._run, pod)

    def claim(self, name: str) -> Path:
        return self.root / "claims" / name

    def _volumes(self, pod: dict[str, Any]) -> dict[str, Path]:
        found = {}
        for volume in pod["spec"].get("volumes") or []:
            if "persistentVolumeClaim" in volume:
                path = self.claim(volume["persistentVolumeClaim"]["claimName"])
            else:
                path = self.root / "pods" / pod["metadata"]["name"] / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            found[volume["name"]] = path
        return found

    def _env(
        self, namespace: str, container: dict[str, Any], mounts: dict[str, Path]
    ) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            secret = self.emulator.get("secrets", namespace, ref["name"]) or {}
            data = secret.get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise LookupError(f"Secret {ref['name']} has no key {ref['key']}")
            env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
        by_length = sorted(mounts, key=len, reverse=True)
        for key, value in env.items():
            for mount in by_length:
                if value == mount or value.startswith(mount + "/"):
                    env[key] = str(mounts[mount]) + value[len(mount) :]
                    break
        return env

    def _run(self, pod: dict[str, Any]) -> JobOutcome:
        volumes = self._volumes(pod)
        namespace = pod["metadata"]["namespace"]
        containers = [*(pod["spec"].get("initContainers") or []), *pod["spec"]["containers"]]
        message = ""
        for container in containers:
            mounts = {
                m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts") or []
            }
            try:
                env = self._env(namespace, container, mounts)
            except LookupError as exc:
                return JobOutcome.fail(reason="CreateContainerConfigError", message=str(exc))
            termination = self.root / "pods" / pod["metadata"]["name"] / f"{container['name']}.log"
            termination.parent.mkdir(parents=True, exist_ok=True)
            termination.write_text("")
            front = "".join(f"{p}:" for p in self.extra_path)
            env.update(
                self.extra_env,
                PATH=f"{front}{self.pg_bin_dir}:/usr/local/bin:/usr/bin:/bin",
                TERMINATION_LOG=str(termination),
            )
            sh, flag, program, name = container["command"]
            assert (sh, flag) == ("sh", "-c"), container["command"]
            done = subprocess.run(
                [self.shell, "-c", program, name],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            self.ran.append((container["name"], done.returncode))
            message = termination.read_text().strip() or done.stdout.strip()[-4000:]
            if done.returncode != 0:
                return JobOutcome.fail(exit_code=done.returncode, message=message)
        return JobOutcome.succeed(message=message)
