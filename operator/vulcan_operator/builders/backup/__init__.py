"""Backup, maintenance and restore children: pure builders, no I/O, no clock.

- `storage`: where an engine's backups are kept (StoragePlan, plan_storage), the backup files a
  restore may read (BackupLocation, restore_source_problem), one store per engine
  (storage_conflicts).
- `pods`: the pods of every backup, maintenance and restore Job (env, containers, volumes,
  security contexts).
- `cronjobs`: what an engine has: the backup claim and the backup and maintenance CronJobs.
- `jobs`: the one-off Jobs of a VulcanBackup and of a VulcanRestore.

Names come from `names` (`backup_cronjob`, `backup_pvc`, `backup_job`, ...); what the pods
report is read by `reconcile.jobs` (`parse_backup_result`, `parse_restore_result`); the
programs themselves are `jobscripts`.
"""

from vulcan_operator.builders.backup.cronjobs import (
    EngineRef,
    build_backup_cronjob,
    build_backup_pvc,
    build_engine_backup_children,
    build_maintenance_cronjob,
)
from vulcan_operator.builders.backup.jobs import (
    build_backup_job,
    build_restore_job,
)
from vulcan_operator.builders.backup.storage import (
    BackupLocation,
    StoragePlan,
    plan_storage,
    restore_source_problem,
    storage_conflicts,
)

__all__ = [
    "BackupLocation",
    "EngineRef",
    "StoragePlan",
    "build_backup_cronjob",
    "build_backup_job",
    "build_backup_pvc",
    "build_engine_backup_children",
    "build_maintenance_cronjob",
    "build_restore_job",
    "plan_storage",
    "restore_source_problem",
    "storage_conflicts",
]
