"""The backup and restore pods the operator builds for an engine with spec.persistence and
spec.backup.redis, run container by container as the kubelet would: their env (Secret
references resolved), their mounts (each a real folder), their programs, against a real
PostgreSQL and a real redis-server. What the backup pod writes, the restore pod built from the
VulcanBackup's recorded parts puts back exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.db.test_backup_parts import _fill, _runner, _tree
from tests.support.dbharness import Runner, create_seeded_template, fake_aws, fingerprint
from tests.support.pg import PgDatabase, PgServer
from tests.support.redisserver import RedisServer
from vulcan_operator.builders import engine_children
from vulcan_operator.builders.backup.jobs import build_restore_job
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.keys import ensure_keys
from vulcan_operator.config import Settings
from vulcan_operator.reconcile.jobs import parse_backup_result

ENGINE: dict[str, Any] = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": "shop", "uid": "uid-1"},
    "spec": {
        "version": "1.0",
        "redis": {"urlSecretRef": {"name": "prod-redis", "key": "url"}},
        "backup": {"redis": {"enabled": True}},
        "persistence": {"data": {"enabled": True}, "uploads": {"enabled": True}},
    },
}


@pytest.fixture
def database(pg_server: PgServer) -> Iterator[PgDatabase]:
    template = create_seeded_template(pg_server, "seed_pods")
    db = pg_server.create_database(label="pods", template=template)
    yield db
    pg_server.drop_database(db.dbname)
    pg_server.drop_database(template)


S3 = {"s3": {"bucket": "vulcan-backups", "credentialsSecretRef": {"name": "prod-s3"}}}


def _engine(store: str) -> dict[str, Any]:
    if store == "pvc":
        return ENGINE
    spec = {**ENGINE["spec"], "backup": {**ENGINE["spec"]["backup"], "storage": S3}}
    return {**ENGINE, "spec": spec}


def _backup_pod(engine: dict[str, Any]) -> dict[str, Any]:
    inputs = EngineInputs.from_resource(engine)
    inputs = EngineInputs.from_resource(engine, keys=ensure_keys(inputs.spec, None))
    children = engine_children(inputs)
    (cronjob,) = [c for c in children if c["metadata"]["name"] == "prod-backup"]
    return dict(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def _local(value: str, mounts: dict[str, Path]) -> str:
    """A path in the container as the folder that stands for its mount."""
    for path, folder in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if value == path or value.startswith(path + "/"):
            return str(folder) + value[len(path) :]
    return value


def _run_pod(
    runner: Runner, pod: dict[str, Any], folders: dict[str, Path], secrets: dict[str, str]
) -> list[Any]:
    """Run the pod's init containers, then its containers, in order; each container sees its
    mounts as the folders given for their mount paths; `secrets` by env name (and
    FAKE_S3_ROOT, for the fake aws CLI)."""
    claims = {
        v["name"]: v["persistentVolumeClaim"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    runs = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        mounts = {
            m["mountPath"]: folders[m["mountPath"]]
            for m in container["volumeMounts"]
            if m["mountPath"] != "/tmp"
        }
        for m in container["volumeMounts"]:  # read-only stays read-only
            if m.get("readOnly") or claims.get(m["name"], {}).get("readOnly"):
                assert m.get("readOnly"), f"{container['name']}: {m['name']} is a read-only claim"

        env = {}
        for var in container["env"]:
            if "value" in var:
                env[var["name"]] = _local(var["value"], mounts)
            elif var["name"] in secrets:
                env[var["name"]] = secrets[var["name"]]
        env.pop("HOME"), env.pop("TMPDIR")  # the runner's own /tmp
        program = container["command"][-1].removeprefix("vulcan-")
        run = runner(program, {"FAKE_S3_ROOT": secrets.get("FAKE_S3_ROOT", ""), **env})
        assert run.code == 0, f"{container['name']}: {run.explain()}"
        runs.append(run)
    return runs


@pytest.mark.parametrize("store", ["pvc", "s3"])
def test_the_pods_the_operator_builds_back_up_and_restore_the_whole_set(
    database: PgDatabase, redis_server: RedisServer, pg_bin_dir: Path, tmp_path: Path, store: str
) -> None:
    runner = _runner(pg_bin_dir, tmp_path, "dash")
    runner.extra_path.append(fake_aws(tmp_path / "aws").parent)
    (tmp_path / "s3" / "vulcan-backups").mkdir(parents=True)
    engine = _engine(store)
    folders = {
        path: tmp_path / name
        for path, name in (
            ("/backups", "claim"),
            ("/work", "work"),
            ("/vulcan/data", "data"),
            ("/vulcan/uploads", "uploads"),
        )
    }
    for folder in folders.values():
        folder.mkdir()
    _fill(folders["/vulcan/data"], folders["/vulcan/uploads"])
    redis_server.cli("SET", "vulcan:cache:k", "v")
    secrets = {
        "DATABASE_URL": database.dsn,
        "REDIS_URL": redis_server.url,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-key-do-not-print",
        "FAKE_S3_ROOT": str(tmp_path / "s3"),
    }
    pod = _backup_pod(engine)
    init = ["redis"] if store == "pvc" else ["redis", "dump"]
    assert [c["name"] for c in pod["initContainers"]] == init
    assert 10001 in pod["securityContext"]["supplementalGroups"]  # the backend's files
    before = {
        "data": _tree(folders["/vulcan/data"]),
        "uploads": _tree(folders["/vulcan/uploads"]),
        "db": fingerprint(database.dsn),
    }

    redis, *_, backup = _run_pod(runner, pod, folders, secrets)

    assert redis.result["kind"] == "vulcan-redis-snapshot"
    result = parse_backup_result(backup.termination)  # what the operator reads
    assert result["outcome"] == "Succeeded"
    assert set(result["parts"]) == {"data", "uploads", "redis"}
    where = "pvc://prod-backups/" if store == "pvc" else "s3://vulcan-backups/database/"
    assert result["location"].startswith(f"{where}shop/prod/")
    assert redis_server.password not in backup.everything + redis.everything

    # The volumes change; a VulcanRestore of that backup (its recorded status) puts them back.
    (folders["/vulcan/data"] / "later.bin").write_bytes(b"after the backup")
    (folders["/vulcan/uploads"] / "plant a.csv").unlink()
    spec = EngineInputs.from_resource(engine).spec
    (job,) = build_restore_job(
        Owner(kind="VulcanRestore", name="back", namespace="shop", uid="uid-2"),
        "prod",
        spec,
        Settings(),
        location=result["location"],
        checksum=result["checksum"],
        parts=result["parts"],
    )
    restore_pod = job["spec"]["template"]["spec"]
    (tmp_path / "restore-work").mkdir()
    folders["/work"] = tmp_path / "restore-work"  # a new pod, a new emptyDir
    *_, restore = _run_pod(runner, restore_pod, folders, secrets)

    assert restore.result["parts"] == ["database", "data", "uploads"]
    assert _tree(folders["/vulcan/data"]) == before["data"]
    assert _tree(folders["/vulcan/uploads"]) == before["uploads"]
    assert fingerprint(database.dsn) == before["db"]


def test_a_side_restore_pod_never_mounts_the_volumes() -> None:
    spec = EngineInputs.from_resource(ENGINE).spec
    part = {"file": "vulcan_20260101_020000.data.tar.gz", "checksum": "ab" * 32}
    (job,) = build_restore_job(
        Owner(kind="VulcanRestore", name="side", namespace="shop", uid="uid-3"),
        "prod",
        spec,
        Settings(),
        location="pvc://prod-backups/shop/prod/vulcan_20260101_020000.dump",
        checksum="cd" * 32,
        target_database="scratch",
        parts={"data": part},
    )
    pod = job["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "backups"]
    assert not [e for e in pod["containers"][0]["env"] if e["name"].startswith("PART_")]
