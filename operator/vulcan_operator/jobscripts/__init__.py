"""The shell programs of backup, restore, retention and maintenance pods (package data).

Each program is POSIX sh assembled from the `*.sh` files here: the shared `lib.sh`, the parts
it needs, and a last line calling its entry function. The builders put the assembled text in
the container command (`sh -c <program> <name>`), so a Job carries exactly the script it runs
and its name hash covers it; the database tests run the very same text.

| program     | image            | does                                                     |
|-------------|------------------|----------------------------------------------------------|
| backup      | postgres (psql)  | pg_dump -Fc, pg_restore --list, sha256, link, retention   |
| restore     | postgres (psql)  | checksum, then pg_restore | psql in one transaction       |
| maintenance | postgres (psql)  | VACUUM ANALYZE (REINDEX on request), table sizes          |
| retention   | either           | retention alone, on a folder or an S3 prefix              |
| s3-upload   | aws CLI          | upload the dump written by `backup` (never over a key)    |
| s3-download | aws CLI          | fetch a backup (and its file parts) for `restore`         |
| s3-drill-download | aws CLI    | fetch the newest backup and its manifest for `drill`      |
| redis-snapshot | redis (redis-cli) | `redis-cli --rdb` of the engine's Redis, for `backup`  |
| drill       | postgres (psql)  | the newest backup into a scratch database, checked, dropped |

Every program ends by printing one JSON line (also written to /dev/termination-log): see
`vulcan_operator.reconcile.jobs.parse_backup_result`. Exit codes: 0 done, 1 failed,
2 bad settings, 3 backup file refused (database untouched).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "PROGRAMS", "program", "source"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_REFUSED = 3

#: program name → (the parts it is made of, its entry function)
PROGRAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "backup": (("lib.sh", "retention.sh", "rowcounts.sh", "backup.sh"), "backup_main"),
    "restore": (("lib.sh", "restore.sh"), "restore_main"),
    "maintenance": (("lib.sh", "maintenance.sh"), "maintenance_main"),
    "retention": (("lib.sh", "retention.sh", "s3.sh"), "retention_main"),
    "s3-upload": (("lib.sh", "retention.sh", "s3.sh"), "s3_upload_main"),
    "s3-download": (("lib.sh", "s3.sh"), "s3_download_main"),
    "s3-drill-download": (("lib.sh", "s3.sh"), "s3_drill_download_main"),
    "redis-snapshot": (("lib.sh", "redis.sh"), "redis_snapshot_main"),
    "drill": (("lib.sh", "restore.sh", "rowcounts.sh", "drill.sh"), "drill_main"),
}


@cache
def source(part: str) -> str:
    """The text of one part, e.g. `source("lib.sh")`."""
    return resources.files(__name__).joinpath(part).read_text(encoding="utf-8")


def _compact(text: str) -> str:
    """`text` without comment-only and blank lines (the documented source is the package's;
    a pod spec stays readable). No part has a heredoc or multi-line string with such lines."""
    kept = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return "\n".join(kept)


@cache
def program(name: str) -> str:
    """The complete text of a program, as a pod runs it: `sh -c "$(program)" <name>`."""
    try:
        parts, entry = PROGRAMS[name]
    except KeyError:
        raise ValueError(f"no program {name!r}; known: {', '.join(sorted(PROGRAMS))}") from None
    body = "\n".join(_compact(source(part)) for part in parts)
    header = f"# vulcan-operator {name}: {' + '.join(parts)} from vulcan_operator/jobscripts"
    return f'{header}\n{body}\n{entry} "$@"\n'
