"""Where an engine's backups are kept: the storage plan of each kind (scheduled, on-demand),
the backup locations a restore may read, and the rule that two engines never share a store.

Layout: every backup of an engine lives under `<namespace>/<engine>/` of the store, the
on-demand ones under `<namespace>/<engine>/on-demand/` (out of reach of retention: a
pre-upgrade backup stays until someone deletes it). Files are `vulcan_YYYYmmdd_HHMMSS.dump`
(PostgreSQL custom format) with `.sha256` and `.json` sidecars.
PVC (mounted at /backups): `pvc://<claim>/<namespace>/<engine>/[on-demand/]<file>`.
S3: `s3://<bucket>/<prefix><namespace>/<engine>/[on-demand/]<file>`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from vulcan_operator import names
from vulcan_operator.api.engine import BackupStorage, PvcStorage, S3Storage

__all__ = [
    "BACKUP_FILE",
    "BACKUP_MOUNT",
    "ON_DEMAND_DIR",
    "BackupLocation",
    "StoragePlan",
    "plan_storage",
    "restore_source_problem",
    "storage_conflicts",
]

BACKUP_MOUNT = "/backups"  # the backup claim
ON_DEMAND_DIR = "on-demand"


@dataclass(frozen=True)
class StoragePlan:
    """Where one engine's backups of one kind (scheduled or on-demand) are kept."""

    kind: Literal["pvc", "s3"]
    #: pvc: the claim to mount (the operator's own when `managed`).
    claim: str = ""
    managed: bool = False
    #: pvc: the folder inside the claim, e.g. "vulcan/prod" or "vulcan/prod/on-demand".
    folder: str = ""
    #: s3: the settings, and the key prefix ("database/vulcan/prod/" or
    #: "database/vulcan/prod/on-demand/").
    s3: S3Storage | None = None
    prefix: str = ""

    @property
    def location(self) -> str:
        """The location prefix of the backup files: pvc://claim/folder or s3://bucket/prefix."""
        if self.kind == "pvc":
            return f"pvc://{self.claim}/{self.folder}"
        assert self.s3 is not None
        return f"s3://{self.s3.bucket}/{self.prefix}".rstrip("/")

    @property
    def backup_dir(self) -> str:
        """pvc: the folder as the pod sees it."""
        return posixpath.join(BACKUP_MOUNT, self.folder)


def _s3_prefix(prefix: str) -> str:
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def plan_storage(
    engine: str, namespace: str, storage: BackupStorage, *, on_demand: bool = False
) -> StoragePlan:
    """Where the backups of engine `namespace`/`engine` go: its own folder of its store (see
    the module docstring for the layout); `on_demand`: the on-demand folder."""
    folder = posixpath.join(namespace, engine, *([ON_DEMAND_DIR] if on_demand else []))
    if storage.pvc is not None:
        managed = not storage.pvc.claimName
        claim = names.backup_pvc(engine) if managed else storage.pvc.claimName
        return StoragePlan(kind="pvc", claim=claim, managed=managed, folder=folder)
    assert storage.s3 is not None  # BackupStorage guarantees exactly one
    prefix = f"{_s3_prefix(storage.s3.prefix)}{folder}/"
    return StoragePlan(kind="s3", s3=storage.s3, prefix=prefix)


#: The name of a backup file the programs write: vulcan_<YYYYmmdd_HHMMSS>.dump.
BACKUP_FILE = re.compile(r"^vulcan_[0-9A-Za-z_-]+\.dump$")


def restore_source_problem(
    engine: str, namespace: str, storage: BackupStorage, location: str
) -> str | None:
    """None when `location` is a backup file of engine `namespace`/`engine`'s own store (its
    scheduled or on-demand folder, a `vulcan_*.dump` file), else one line naming
    spec.location, what is wrong and what is allowed."""
    plans = [plan_storage(engine, namespace, storage, on_demand=d) for d in (False, True)]
    allowed = " or ".join(f"{p.location}/vulcan_<time>.dump" for p in plans)
    try:
        where = BackupLocation.parse(location)
    except ValueError as exc:
        return f"spec.location: {exc}; allowed: {allowed}"
    plan = plans[0]
    folder, _, file_name = where.path.rpartition("/")
    if where.scheme != plan.kind:
        store = "a volume claim" if plan.kind == "pvc" else "S3"
        problem = f"VulcanEngine '{engine}' keeps its backups in {store} (spec.backup.storage)"
    elif where.root != (plan.s3.bucket if plan.s3 is not None else plan.claim):
        what = "claim" if plan.kind == "pvc" else "bucket"
        problem = f"{what} '{where.root}' is not the {what} of VulcanEngine '{engine}'"
    elif not any((p.folder if p.kind == "pvc" else p.prefix.rstrip("/")) == folder for p in plans):
        problem = f"not in a backup folder of VulcanEngine '{engine}' ({namespace}/{engine}/)"
    elif not BACKUP_FILE.match(file_name):
        problem = (
            f"'{file_name}' is not a backup file of this operator (vulcan_<time>.dump; an "
            "older .sql.gz backup must be restored by hand)"
        )
    else:
        return None
    return f"spec.location: {problem}; allowed: {allowed}"


def _store(namespace: str, engine: str, storage: BackupStorage) -> tuple[str, str, str]:
    """(kind, where, key prefix) of an engine's store: a claim is namespaced, a bucket is not."""
    plan = plan_storage(engine, namespace, storage)
    if plan.kind == "pvc":
        return "pvc", f"{namespace}/{plan.claim}", ""
    assert plan.s3 is not None
    endpoint = plan.s3.endpoint.rstrip("/").lower()
    return "s3", f"{endpoint} {plan.s3.bucket}", _s3_prefix(plan.s3.prefix)


def storage_conflicts(
    namespace: str,
    engine: str,
    created: str,
    storage: BackupStorage,
    engines: Iterable[Mapping[str, Any]],
) -> list[str]:
    """Why engine `namespace`/`engine` (created at `created`, an RFC 3339 time) may not use
    `storage`: one line per engine of `engines` (VulcanEngine objects, e.g. a list of every
    namespace) created before it that uses the same store: the same claim of the same
    namespace, or the same S3 endpoint and bucket with a prefix that is the same or contains
    the other. [] when there is none. The engine created first keeps its store; ties go by
    namespace and name."""
    kind, where, prefix = _store(namespace, engine, storage)
    me = (created, namespace, engine)
    found = []
    for other in engines:
        meta = other.get("metadata") or {}
        other_ns, other_name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if meta.get("deletionTimestamp") or (other_ns, other_name) == (namespace, engine):
            continue
        if (str(meta.get("creationTimestamp") or ""), other_ns, other_name) >= me:
            continue  # the later one is refused, not this one
        raw = ((other.get("spec") or {}).get("backup") or {}).get("storage")
        try:
            theirs = BackupStorage.model_validate(raw) if raw else BackupStorage(pvc=PvcStorage())
        except ValidationError:
            continue  # an invalid engine runs no backups
        other_kind, other_where, other_prefix = _store(other_ns, other_name, theirs)
        if (other_kind, other_where) != (kind, where):
            continue
        if kind == "pvc":
            claim = where.split("/", 1)[1]
            found.append(
                f"spec.backup.storage: claim '{claim}' is already the backup store of "
                f"VulcanEngine '{other_name}' (created earlier): give each engine its own claim"
            )
        elif prefix.startswith(other_prefix) or other_prefix.startswith(prefix):
            found.append(
                f"spec.backup.storage: S3 bucket '{where.split(' ', 1)[1]}' with prefix "
                f"'{prefix}' shares keys with prefix '{other_prefix}' of VulcanEngine "
                f"'{other_ns}/{other_name}' (created earlier): give each engine its own "
                "bucket or prefix"
            )
    return found


_LOCATION = re.compile(r"^(?P<scheme>s3|pvc)://(?P<root>[a-z0-9][-a-z0-9.]*)/(?P<path>\S+)$")


@dataclass(frozen=True)
class BackupLocation:
    """A backup file: `s3://bucket/key` or `pvc://claim/path` (path inside the claim)."""

    scheme: Literal["pvc", "s3"]
    root: str  # bucket or claim
    path: str  # key or path inside the claim

    @classmethod
    def parse(cls, location: str) -> BackupLocation:
        """Parse and check a location; ValueError says what is wrong with it."""
        found = _LOCATION.match(location)
        if found is None:
            raise ValueError(
                f"backup location {location!r}: expected s3://bucket/key or pvc://claim/path"
            )
        path = found["path"]
        parts = path.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(
                f"backup location {location!r}: the path may not contain empty, '.' or '..' parts"
            )
        scheme: Literal["pvc", "s3"] = "s3" if found["scheme"] == "s3" else "pvc"
        return cls(scheme=scheme, root=found["root"], path=path)

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.root}/{self.path}"
