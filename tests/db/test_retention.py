"""Retention: the scheduled backups older than RETENTION_DAYS go, and nothing else.

Runs the `retention` program (the same retention code `backup` and `s3-upload` run after a
backup) over a folder of fake dated backups whose mtimes are set with os.utime, and over a fake
S3 bucket with the same layout.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.dbharness import Runner, fake_aws, shells

DAY = 86400
DAYS = 30

# (name, age in days) of the scheduled backups in the folder.
SCHEDULED = [
    ("vulcan_20261128_020000.dump", 1),
    ("vulcan_20261119_020000.dump", 10),
    ("vulcan_20261031_020000.dump", 29.9),
    ("vulcan_20261029_020000.dump", 30.1),
    ("vulcan_20261015_020000.dump", 45),
    ("vulcan_20251025_020000.dump", 400),
]
EXPIRED = {
    "vulcan_20261029_020000.dump",
    "vulcan_20261015_020000.dump",
    "vulcan_20251025_020000.dump",
}
# Old files retention must never touch: other names, partial files, old plain dumps,
# another tool's files, a sub-folder of on-demand backups, dumps without a manifest.
FOREIGN = [
    "vulcan_manual.dump",
    "vulcan_20240101_000000.dump.partial",
    "vulcan_20240101_000000.sql.gz",
    "vulcan_20240101_000000.dump.bak",
    "db_20240101_000000.dump",
    "notes.txt",
    "on-demand/vulcan_20240101_000000.dump",
    "on-demand/vulcan_20240101_000000.dump.sha256",
    "vulcan_20240102_000000.dump",
    "vulcan_20240102_000000.dump.sha256",
]
IDENT = {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"}


@pytest.fixture(params=shells())
def runner(request: pytest.FixtureRequest, pg_bin_dir: Path, tmp_path: Path) -> Runner:
    return Runner(pg_bin_dir, tmp_path / "run", shell=request.param)


def _touch(path: Path, age_days: float, now: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    stamp = now - age_days * DAY
    os.utime(path, (stamp, stamp))


def _manifest(namespace: str, engine: str, name: str) -> bytes:
    fields = {"namespace": namespace, "engine": engine, "file": name}
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def _layout(folder: Path, scheduled: Sequence[tuple[str, float]], now: float) -> None:
    for name, age in scheduled:
        for suffix in ("", ".sha256", ".json"):
            _touch(folder / f"{name}{suffix}", age, now)
        (folder / f"{name}.json").write_bytes(_manifest("shop", "prod", name))
        stamp = now - age * DAY
        os.utime(folder / f"{name}.json", (stamp, stamp))
    for name in FOREIGN:
        _touch(folder / name, 1000, now)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _with_sidecars(names: set[str]) -> set[str]:
    return {f"{n}{suffix}" for n in names for suffix in ("", ".sha256", ".json")}


def test_removes_exactly_the_expired_backups_and_their_sidecars(
    runner: Runner, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    now = time.time()
    _layout(folder, SCHEDULED, now)
    before = _files(folder)

    run = runner("retention", IDENT, BACKUP_DIR=str(folder), RETENTION_DAYS=str(DAYS))

    assert run.code == 0, run.explain()
    assert _files(folder) == before - _with_sidecars(EXPIRED)
    result = run.result
    assert result["outcome"] == "Succeeded"
    assert set(result["deleted"]) == EXPIRED
    assert result["kept"] == len(SCHEDULED) - len(EXPIRED)
    assert json.loads(run.termination) == result


def test_keeps_the_newest_backup_even_when_all_have_expired(runner: Runner, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    now = time.time()
    old = [
        ("vulcan_20250101_020000.dump", 300),
        ("vulcan_20250301_020000.dump", 240),
        ("vulcan_20250201_020000.dump", 270),
    ]
    _layout(folder, old, now)
    before = _files(folder)

    run = runner("retention", IDENT, BACKUP_DIR=str(folder), RETENTION_DAYS="7")

    assert run.code == 0, run.explain()
    gone = {"vulcan_20250101_020000.dump", "vulcan_20250201_020000.dump"}
    assert _files(folder) == before - _with_sidecars(gone)
    assert "vulcan_20250301_020000.dump" in _files(folder)
    assert run.result["kept"] == 1


def test_newest_means_most_recently_written(runner: Runner, tmp_path: Path) -> None:
    # Ages are mtimes: a file whose name says 2020 but that was written last is the newest.
    folder = tmp_path / "backups"
    now = time.time()
    _layout(folder, [("vulcan_20200101_000000.dump", 50), ("vulcan_20261001_000000.dump", 60)], now)
    run = runner("retention", IDENT, BACKUP_DIR=str(folder), RETENTION_DAYS="30")
    assert run.code == 0, run.explain()
    assert run.result["deleted"] == ["vulcan_20261001_000000.dump"]


def test_an_empty_folder_is_fine(runner: Runner, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    run = runner("retention", IDENT, BACKUP_DIR=str(folder), RETENTION_DAYS="30")
    assert run.code == 0, run.explain()
    assert run.result["deleted"] == [] and run.result["kept"] == 0


@pytest.mark.parametrize("days", ["0", "-3", "30d", "1.5", ""])
def test_bad_retention_days_are_refused(pg_bin_dir: Path, tmp_path: Path, days: str) -> None:
    folder = tmp_path / "backups"
    _layout(folder, SCHEDULED, time.time())
    before = _files(folder)
    run = Runner(pg_bin_dir, tmp_path / "run")(
        "retention", IDENT, BACKUP_DIR=str(folder), RETENTION_DAYS=days
    )
    assert run.code == 2, run.explain()
    assert run.result["outcome"] == "Failed"
    assert "RETENTION_DAYS" in run.result["message"]
    assert _files(folder) == before


def test_s3_retention_removes_the_same_objects(pg_bin_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "s3"
    bucket = root / "vulcan-backups" / "database"
    now = time.time()
    _layout(bucket, SCHEDULED, now)
    before = _files(bucket)
    runner = Runner(
        pg_bin_dir, tmp_path / "run", extra_path=[fake_aws(tmp_path / "aws-bin").parent]
    )

    run = runner(
        "retention",
        IDENT,
        FAKE_S3_ROOT=str(root),
        S3_BUCKET="vulcan-backups",
        S3_PREFIX="/database",
        RETENTION_DAYS=str(DAYS),
    )

    assert run.code == 0, run.explain()
    assert _files(bucket) == before - _with_sidecars(EXPIRED)
    assert set(run.result["deleted"]) == EXPIRED
