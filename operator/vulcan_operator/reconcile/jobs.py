"""What a Job did: its state, why it failed, and what its pod said (the termination messages).

One reader for every Job the operator follows: migrations (`reconcile.upgrade`), on-demand
backups and restores (`reconcile.backup`, `reconcile.restore`) and the Jobs the backup
CronJob makes (the engine's `lastBackup`). The backup and restore programs put their JSON
result line in the termination message; `parse_backup_result` and `parse_restore_result`
read it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vulcan_operator.k8s import Api, Ref

__all__ = [
    "JobRun",
    "failure",
    "finished_at",
    "job_run",
    "owned_jobs",
    "parse_backup_result",
    "parse_restore_result",
    "parse_result",
    "plain_text",
    "read_job",
    "read_job_object",
    "running_jobs",
    "safe_database",
    "safe_parts",
    "safe_revision",
    "safe_row_counts",
]

MESSAGE_TAIL = 500  # characters of a termination message quoted in a failure message

# What a pod reports about the database it worked on is derived from that database (table
# names, the alembic revision): whoever wrote the dump chose it. Only these shapes ever reach a
# status or an Event (the programs filter the same way; this is the second line).
TABLE_KEY = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")
REVISION = re.compile(r"^[A-Za-z0-9_,]{1,128}$")
DATABASE = re.compile(r"^[A-Za-z0-9_]{1,63}$")
VERSION = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,6}){0,2}$")  # a PostgreSQL version, 17.6
MAX_TABLES = 100  # rowCounts keys kept; the rest are summed under "other"


def safe_row_counts(counts: Any) -> dict[str, int]:
    """`counts` ({table: rows}) with only plain table names (schema.table at most) and integer
    counts; anything else, and tables beyond MAX_TABLES, is summed under "other"."""
    if not isinstance(counts, Mapping):
        return {}
    kept: dict[str, int] = {}
    other = 0
    for key, value in sorted(counts.items(), key=lambda kv: str(kv[0])):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            continue
        plain = isinstance(key, str) and TABLE_KEY.fullmatch(key) and key != "other"
        if plain and len(kept) < MAX_TABLES:
            kept[str(key)] = value
            continue
        other += value
    if other or "other" in counts:
        kept["other"] = other
    return kept


def safe_revision(value: Any) -> str | None:
    """An alembic revision (heads joined by ','), or None for anything else."""
    return value if isinstance(value, str) and REVISION.fullmatch(value) else None


def plain_text(value: Any, limit: int = 2 * MESSAGE_TAIL) -> str:
    """`value` as one line of printable text (control and formatting characters, e.g. bidi
    overrides a table name may carry into an error message, become '?'), at most `limit`."""
    text = "".join(
        " " if c in "\t\n\r" else "?" if unicodedata.category(c) in ("Cc", "Cf") else c
        for c in str(value)
    )
    return text[:limit]


def safe_database(value: Any) -> str | None:
    """A database name as a restore reports it (a plain identifier), or None."""
    return value if isinstance(value, str) and DATABASE.fullmatch(value) else None


@dataclass(frozen=True)
class JobRun:
    """One Job, as far as the operator cares."""

    #: Missing, Running, Succeeded or Failed.
    state: str
    #: Plain words: why it failed (the Job's reason, the pod's exit code and last words), or
    #: why it is not running yet (e.g. a Secret it needs is missing); "" otherwise.
    message: str = ""
    #: The termination messages of the newest pod: init containers first, then the main ones,
    #: so the last result line of a kind is the main container's when it wrote one.
    termination: str = ""
    #: When it started and when it finished (the Job's own timestamps), or None.
    started_at: str | None = None
    finished_at: str | None = None
    #: The main container's exit code and reason (e.g. 137, OOMKilled), when it terminated.
    exit_code: int | None = None
    reason: str | None = None


def finished_at(job: dict[str, Any]) -> str | None:
    """When a Job finished (completionTime, or the time of its Failed condition), or None."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return (
                str(
                    status.get("completionTime")
                    or cond.get("lastTransitionTime")
                    or cond.get("lastProbeTime")
                    or ""
                )
                or None
            )
    return None


def _state(job: dict[str, Any]) -> tuple[str, str]:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "Succeeded", ""
        if cond.get("type") == "Failed":
            return "Failed", str(cond.get("message") or cond.get("reason") or "failed")
    return "Running", ""


def _newest(pods: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    ordered = sorted(
        pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
    )
    return ordered[-1] if ordered else None


def _terminated(statuses: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for cs in statuses:
        state = cs.get("state") or {}
        term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term:
            found.append(term)
    return found


def _waiting(statuses: Iterable[dict[str, Any]]) -> str:
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            detail = waiting.get("message") or ""
            return f"{cs.get('name')}: {reason}" + (f": {detail}" if detail else "")
    return ""


def job_run(job: dict[str, Any] | None, pods: Iterable[dict[str, Any]] = ()) -> JobRun:
    """What `job` did, read from it and its pods (pure: the caller lists them)."""
    if job is None:
        return JobRun("Missing")
    state, message = _state(job)
    status = job.get("status") or {}
    pod = _newest(pods)
    pod_status = (pod or {}).get("status") or {}
    init = _terminated(pod_status.get("initContainerStatuses") or [])
    main = _terminated(pod_status.get("containerStatuses") or [])
    termination = "\n".join(str(t.get("message") or "").strip() for t in [*init, *main])
    exit_code = reason = None
    if main:
        exit_code, reason = main[-1].get("exitCode"), main[-1].get("reason")
    if state == "Failed":
        failed = [t for t in [*init, *main] if t.get("exitCode")]
        if failed:
            term = failed[0]
            detail = str(term.get("message") or "").strip()[-MESSAGE_TAIL:]
            message = f"exit code {term['exitCode']}"
            if term.get("reason") and term.get("reason") != "Error":
                message += f" ({term['reason']})"
            if detail:
                message += f": {detail}"
            exit_code, reason = term.get("exitCode"), term.get("reason")
    elif state == "Running":
        message = _waiting(
            [
                *(pod_status.get("initContainerStatuses") or []),
                *(pod_status.get("containerStatuses") or []),
            ]
        )
    return JobRun(
        state=state,
        message=message,
        termination=termination.strip(),
        started_at=status.get("startTime"),
        finished_at=finished_at(job),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        reason=reason,
    )


#: A program's step name (it becomes part of a condition reason).
STEP = re.compile(r"[a-z][a-z_-]{0,40}")


def _camel(step: str) -> str:
    return "".join(part.capitalize() for part in step.replace("_", "-").split("-") if part)


def failure(result: dict[str, Any], run: JobRun, what: str = "backup") -> tuple[str, str]:
    """(reason, message) of a failed backup or restore Job: which step failed and why, from
    the program's result line, else from the Job and its pod (OOM, deadline, eviction...)."""
    server, client = _version(result.get("serverVersion")), _version(result.get("clientVersion"))
    if result.get("outcome") == "Failed" and result.get("step") == "version" and server and client:
        return "ClientVersionMismatch", (
            f"the {what} client, pg_dump {client}, is older than the server, PostgreSQL "
            f"{server}, and pg_dump refuses a newer server: set spec.backup.clientImage to a "
            f"PostgreSQL {server.split('.')[0]} client image, or leave it empty to follow "
            "the server (status.database.serverVersion)"
        )
    if result.get("outcome") == "Failed":
        step = str(result.get("step") or "?")
        step = step if STEP.fullmatch(step) else "?"
        said = plain_text(result.get("message") or "no message")
        message = f"the {what} failed at step '{step}': {said}"
        if result.get("exitCode") is not None:
            message += f" (exit code {result['exitCode']})"
        return f"{_camel(step)}Failed" if step != "?" else f"{_camel(what)}Failed", message
    if run.reason == "OOMKilled":
        return "OOMKilled", (
            f"the {what} was killed for using too much memory (OOMKilled) before it reported "
            "a result"
        )
    detail = plain_text(run.message or "no reason given")
    if "deadline" in detail.lower():
        return "DeadlineExceeded", f"the {what} ran out of time ({detail})"
    return f"{_camel(what)}Failed", f"the {what} Job failed without reporting a result: {detail}"


async def read_job(api: Api, namespace: str, name: str) -> JobRun:
    """What the Job `name` did, with its pods' words (termination messages, waiting reasons)."""
    job = await api.get(Ref("batch/v1", "Job", namespace, name))
    return await _with_pods(api, job)


async def _with_pods(api: Api, job: dict[str, Any] | None) -> JobRun:
    if job is None:
        return JobRun("Missing")
    meta = job["metadata"]
    pods = await api.list(Ref("v1", "Pod", meta["namespace"]), {"job-name": meta["name"]})
    return job_run(job, pods)


async def read_job_object(api: Api, job: dict[str, Any]) -> JobRun:
    """Like `read_job`, for a Job already read (e.g. from a list)."""
    return await _with_pods(api, job)


async def owned_jobs(
    api: Api, namespace: str, labels: dict[str, str], owner_uid: str
) -> list[dict[str, Any]]:
    """The Jobs with `labels` whose ownerReferences name `owner_uid`, oldest first: finds a
    Job an owner made even when its name would now be built differently."""
    jobs = await api.list(Ref("batch/v1", "Job", namespace), labels)
    mine = [
        j
        for j in jobs
        if any(o.get("uid") == owner_uid for o in j["metadata"].get("ownerReferences") or [])
    ]
    return sorted(
        mine, key=lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"])
    )


async def running_jobs(api: Api, namespace: str, labels: dict[str, str]) -> list[str]:
    """Names of the Jobs with `labels` that have not finished, sorted."""
    jobs = await api.list(Ref("batch/v1", "Job", namespace), labels)
    return sorted(j["metadata"]["name"] for j in jobs if finished_at(j) is None)


# --- results --------------------------------------------------------------------------------
RESULT_KINDS = frozenset(
    {
        "vulcan-backup",
        "vulcan-restore",
        "vulcan-maintenance",
        "vulcan-retention",
        "vulcan-restore-download",
        "vulcan-drill",
    }
)


def parse_result(text: str, kind: str | None = None) -> dict[str, Any] | None:
    """The last result line of a program in `text` (a termination message or logs), or None.

    With `kind` (e.g. "vulcan-backup"), only a line of that kind counts.
    """
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if not isinstance(value, dict) or value.get("kind") not in RESULT_KINDS:
            continue
        if kind is None or value.get("kind") == kind:
            return value
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _common(found: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if found is None:
        return {
            "outcome": "Unknown",
            "message": f"no {what} result in the termination message (killed, OOM, deadline?)",
            "step": None,
            "exitCode": None,
            "location": None,
            "startedAt": None,
            "finishedAt": None,
        }
    outcome = found.get("outcome")
    return {
        "outcome": outcome if outcome in ("Succeeded", "Failed") else "Unknown",
        "message": _str(found.get("message")) or "",
        "step": _str(found.get("step")),
        "exitCode": _int(found.get("exitCode")),
        "location": _str(found.get("location")),
        "startedAt": _str(found.get("startedAt")),
        "finishedAt": _str(found.get("finishedAt")),
    }


def parse_backup_result(termination_message: str) -> dict[str, Any]:
    """What a backup pod reported, shaped for VulcanBackup/engine status. Never raises.

    Keys: outcome ("Succeeded", "Failed" or "Unknown" when no result line was found), message,
    step, exitCode, location, sizeBytes, checksum, databaseRevision, serverVersion,
    clientVersion, startedAt, finishedAt (None when not reported). Read the main container's
    termination message; in an S3 pod whose init (dump) container failed, that container's.
    """
    found = parse_result(termination_message, "vulcan-backup")
    result = _common(found, "backup")
    found = found or {}
    result.update(
        sizeBytes=_int(found.get("sizeBytes")),
        checksum=_str(found.get("checksum")),
        databaseRevision=_str(found.get("databaseRevision")),
        serverVersion=_version(found.get("serverVersion")),
        clientVersion=_version(found.get("clientVersion")),
        parts=safe_parts(found.get("parts")),
    )
    return result


#: The file of a part of a backup set (beside vulcan_<time>.dump), by part.
PART_FILE = re.compile(r"^vulcan_[0-9A-Za-z_-]{1,64}\.(data\.tar\.gz|uploads\.tar\.gz|redis\.rdb)$")
PART_SUFFIX = {"data": "data.tar.gz", "uploads": "uploads.tar.gz", "redis": "redis.rdb"}


def safe_parts(parts: Any) -> dict[str, dict[str, Any]]:
    """The parts of a backup set a pod reported ({"data": {"file", "sizeBytes", "checksum"},
    "uploads": .., "redis": ..}), only well-formed entries: a known part, its file name, a
    sha256 and a size."""
    if not isinstance(parts, Mapping):
        return {}
    kept = {}
    for part, suffix in PART_SUFFIX.items():
        entry = parts.get(part)
        if not isinstance(entry, Mapping):
            continue
        file, checksum, size = (
            entry.get("file"),
            entry.get("checksum"),
            _int(entry.get("sizeBytes")),
        )
        if (
            isinstance(file, str)
            and PART_FILE.fullmatch(file)
            and file.endswith(f".{suffix}")
            and isinstance(checksum, str)
            and re.fullmatch(r"[0-9a-f]{64}", checksum)
            and size is not None
        ):
            kept[part] = {"file": file, "sizeBytes": size, "checksum": checksum}
    return kept


def _version(value: Any) -> str | None:
    return value if isinstance(value, str) and VERSION.fullmatch(value) else None


def parse_restore_result(termination_message: str) -> dict[str, Any]:
    """What a restore pod reported: the common keys (see `parse_backup_result`) plus database,
    databaseRevision and rowCounts ({table: rows}; {} when not reported)."""
    found = parse_result(termination_message, "vulcan-restore")
    if found is None:
        found = parse_result(termination_message, "vulcan-restore-download")
    result = _common(found, "restore")
    found = found or {}
    counts = found.get("rowCounts")
    result.update(
        database=_str(found.get("database")),
        databaseRevision=_str(found.get("databaseRevision")),
        parts=[
            part
            for part in ("database", "data", "uploads")
            if isinstance(found.get("parts"), list) and part in found["parts"]
        ],
        rowCounts=(
            {str(k): v for k, v in counts.items() if _int(v) is not None}
            if isinstance(counts, dict)
            else {}
        ),
    )
    return result
