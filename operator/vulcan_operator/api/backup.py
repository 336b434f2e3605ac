"""VulcanBackup and VulcanRestore: on-demand database backups and restores."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vulcan_operator.api.common import (
    LocalObjectReference,
    ObjectMeta,
    Status,
    Strict,
    cel,
)

#: Why spec.storage of a VulcanBackup is refused (a backup may not choose where the engine's
#: database goes: only the engine's spec.backup.storage says that).
STORAGE_NOT_ALLOWED = (
    "not allowed: a VulcanBackup writes only where its VulcanEngine's spec.backup.storage says"
)
#: Why a VulcanBackup's or VulcanRestore's spec may not change (a CEL transition rule).
IMMUTABLE = "cannot change once created"
#: Why a VulcanRestore with a location and no checksum is refused.
CHECKSUM_REQUIRED = (
    "required with spec.location: the sha256 of the backup file (64 lowercase hex characters, "
    "as in its VulcanBackup's status.checksum or its .sha256 file)"
)


class VulcanBackupSpec(Strict):
    """One database backup of an engine, taken once, to the engine's own backup storage."""

    model_config = cel(
        ("!has(self.storage)", f"spec.storage is {STORAGE_NOT_ALLOWED}"),
        ("self == oldSelf", f"spec {IMMUTABLE}: a VulcanBackup is one backup; create another"),
    )

    engineRef: LocalObjectReference = Field(description="The VulcanEngine to back up.")
    storage: dict[str, Any] | None = Field(
        None,
        description="Not allowed (refused when set): a VulcanBackup is written to its "
        "VulcanEngine's spec.backup.storage, on-demand folder, and nowhere else.",
    )

    @field_validator("storage")
    @classmethod
    def _no_storage(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError(STORAGE_NOT_ALLOWED)


class BackupPart(BaseModel):
    """A file of the backup set beside the dump: a volume's tar.gz or the Redis snapshot."""

    file: str = Field(description="File name, beside the dump (vulcan_<time>.data.tar.gz).")
    sizeBytes: int | None = Field(None, description="Size.")
    checksum: str = Field(description="sha256, checked before a restore uses it.")


class VulcanBackupStatus(Status):
    """Outcome of the backup."""

    jobName: str | None = Field(None, description="Backup Job.")
    location: str | None = Field(None, description="Where the backup file is.")
    sizeBytes: int | None = Field(None, description="Size of the compressed dump.")
    checksum: str | None = Field(None, description="sha256 of the compressed dump.")
    databaseRevision: str | None = Field(None, description="Alembic revision at backup time.")
    parts: dict[str, BackupPart] = Field(
        default_factory=dict,
        description="The rest of the backup set: data and uploads (the engine's volumes) and "
        "redis (its snapshot), as written and checksummed.",
    )
    startedAt: str | None = Field(None, description="When the backup started.")
    finishedAt: str | None = Field(None, description="When it finished.")


class VulcanBackup(BaseModel):
    """An on-demand (or pre-upgrade) backup."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["vulcan-engine.com/v1alpha1"]
    kind: Literal["VulcanBackup"]
    metadata: ObjectMeta
    spec: VulcanBackupSpec
    status: VulcanBackupStatus | None = None


LOCATION = r"^(s3://[a-z0-9][a-z0-9.-]*[a-z0-9]/\S+|pvc://[a-z0-9][-a-z0-9.]*/\S+)$"


class VulcanRestoreSpec(Strict):
    """Restore an engine's database from a backup."""

    model_config = cel(
        (
            "has(self.backupRef) != (has(self.location) && self.location != '')",
            "set exactly one of backupRef or location",
        ),
        (
            "!has(self.location) || self.location == '' || "
            "(has(self.checksum) && self.checksum != '')",
            f"spec.checksum is {CHECKSUM_REQUIRED}",
        ),
        ("self == oldSelf", f"spec {IMMUTABLE}: a VulcanRestore is one restore; create another"),
    )

    engineRef: LocalObjectReference = Field(description="The VulcanEngine to restore.")
    backupRef: LocalObjectReference | None = Field(None, description="A VulcanBackup to restore.")
    location: str = Field(
        "",
        max_length=2048,
        pattern=f"^({LOCATION[1:-1]})?$",
        description="Or a backup file of the engine's own backup storage: "
        "s3://<bucket>/<prefix><namespace>/<engine>/[on-demand/]vulcan_<time>.dump or "
        "pvc://<claim>/<namespace>/<engine>/[on-demand/]vulcan_<time>.dump.",
    )
    checksum: str = Field(
        "",
        max_length=64,
        pattern=r"^([0-9a-f]{64})?$",
        description="sha256 of the backup file (64 lowercase hex). Required with location; "
        "with backupRef, if given, it must equal the VulcanBackup's status.checksum.",
    )
    targetDatabase: str = Field(
        "",
        max_length=63,
        pattern=r"^([a-z_][a-z0-9_]*)?$",
        description="Restore into this database name instead of the engine's.",
    )
    migrate: bool = Field(True, description="Run the migration command after restoring.")

    @model_validator(mode="after")
    def _one_source(self) -> VulcanRestoreSpec:
        if (self.backupRef is None) == (not self.location):
            raise ValueError("set exactly one of backupRef or location")
        if self.location and not self.checksum:
            raise ValueError(f"checksum: {CHECKSUM_REQUIRED}")
        return self


class RestoreStep(BaseModel):
    """One step of a restore, as it went."""

    name: str = Field(description="ScaleDown, Restore, Migrate or ScaleUp.")
    startedAt: str | None = Field(None, description="When it started.")
    finishedAt: str | None = Field(None, description="When it ended.")
    outcome: str | None = Field(None, description="Succeeded, Failed or Skipped.")
    message: str | None = Field(None, description="What happened.")


class RestoreFailure(BaseModel):
    """Where a restore stopped, and why."""

    step: str = Field(description="The step that failed.")
    message: str = Field(description="Why, in plain words.")
    databaseChanged: bool | None = Field(
        None, description="Whether the engine's database may have been changed."
    )


class VulcanRestoreStatus(Status):
    """Progress and outcome of the restore."""

    step: str | None = Field(None, description="Current step, or the step that failed.")
    steps: list[RestoreStep] = Field(
        default_factory=list, description="Every step so far, in order."
    )
    failure: RestoreFailure | None = Field(None, description="Where and why it failed.")
    jobName: str | None = Field(None, description="Restore Job.")
    migrationJobName: str | None = Field(None, description="Migration Job.")
    location: str | None = Field(None, description="Backup file restored.")
    checksum: str | None = Field(None, description="sha256 the backup file was checked against.")
    database: str | None = Field(None, description="Database restored into.")
    databaseRevision: str | None = Field(None, description="Alembic revision of the backup.")
    replicasBefore: int | None = Field(None, description="Engine replicas to scale back to.")
    rowCounts: dict[str, int] = Field(
        default_factory=dict, description="Rows per main table after the restore."
    )
    parts: dict[str, BackupPart] = Field(
        default_factory=dict,
        description="The volumes this restore puts back, as the VulcanBackup (backupRef) "
        "recorded them; none for a location or a side restore.",
    )
    restoredParts: list[str] = Field(
        default_factory=list,
        description="What was restored: database, and data and uploads when their archives "
        "were put back. A Redis snapshot is kept in the backup set, never restored.",
    )
    startedAt: str | None = Field(None, description="When the restore started.")
    finishedAt: str | None = Field(None, description="When it finished.")


class VulcanRestore(BaseModel):
    """A restore of an engine's database."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["vulcan-engine.com/v1alpha1"]
    kind: Literal["VulcanRestore"]
    metadata: ObjectMeta
    spec: VulcanRestoreSpec
    status: VulcanRestoreStatus | None = None
