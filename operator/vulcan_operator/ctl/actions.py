"""The plugin's day-two actions: each is one write the operator already understands (a
VulcanBackup, a VulcanRestore, a spec field, an annotation), so nothing here bypasses it."""

from __future__ import annotations

import datetime
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from vulcan_operator import API_VERSION, kinds, names
from vulcan_operator.ctl.kube import Kube, KubeError, ours, path

#: Exit codes a script can rely on.
OK, FAILED, USAGE, NOT_FOUND, DECLINED, TIMEOUT = 0, 1, 2, 3, 4, 5
TERMINAL = ("Succeeded", "Failed")
#: The annotation that asks for a failed version to be tried again (reconcile/upgrade.py).
RETRY_UPGRADE = "vulcan-engine.com/retry-upgrade"
POLL_SECONDS = 1.0
#: Log streams `logs --follow` opens at most (kubectl's --max-log-requests default).
MAX_LOG_REQUESTS = 5


class CtlError(Exception):
    """A command could not do what it was asked; `code` is its exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")


def need_engine(kube: Kube, name: str) -> dict[str, Any]:
    engine = kube.get(ours(kinds.ENGINE, kube.namespace, name))
    if engine is None:
        raise CtlError(
            f'vulcanengine "{name}" not found in namespace "{kube.namespace}"', NOT_FOUND
        )
    return engine


def wait_for(
    kube: Kube,
    resource_path: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
    say: TextIO,
    what: str,
) -> dict[str, Any]:
    """Poll the object until `done`, saying each new phase/step; CtlError(TIMEOUT) at the end."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        obj = kube.get(resource_path)
        if obj is None:
            raise CtlError(f"{what} disappeared while waiting", FAILED)
        st = obj.get("status") or {}
        now_seen = " ".join(str(x) for x in (st.get("phase"), st.get("step")) if x)
        if now_seen and now_seen != seen:
            print(f"{what}: {now_seen}", file=say, flush=True)
            seen = now_seen
        if done(obj):
            return obj
        if time.monotonic() >= deadline:
            raise CtlError(f"{what}: still {seen or 'not started'} after {timeout:g}s", TIMEOUT)
        time.sleep(POLL_SECONDS)


def _reason(obj: dict[str, Any]) -> str:
    st = obj.get("status") or {}
    failure = st.get("failure") or {}
    if failure:
        return f"{failure.get('step')}: {failure.get('message')}"
    ready: dict[str, Any] = next(
        (c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    return f"{ready.get('reason') or 'Failed'}: {ready.get('message') or ''}".rstrip(": ")


def backup(
    kube: Kube, engine: str, *, wait: bool, timeout: float, name: str | None, out: TextIO
) -> int:
    need_engine(kube, engine)
    name = name or names.dns_name(engine, "manual", stamp())
    body = {
        "apiVersion": API_VERSION,
        "kind": kinds.BACKUP.kind,
        "metadata": {"name": name, "namespace": kube.namespace},
        "spec": {"engineRef": {"name": engine}},
    }
    kube.create(ours(kinds.BACKUP, kube.namespace), body)
    print(f"vulcanbackup/{name} created", file=out)
    if not wait:
        return OK
    obj = wait_for(
        kube,
        ours(kinds.BACKUP, kube.namespace, name),
        lambda o: (o.get("status") or {}).get("phase") in TERMINAL,
        timeout,
        out,
        f"vulcanbackup/{name}",
    )
    st = obj.get("status") or {}
    if st.get("phase") == "Failed":
        raise CtlError(f"vulcanbackup/{name} failed: {_reason(obj)}")
    print(
        f"{st.get('location')} ({st.get('sizeBytes')} bytes, sha256 {st.get('checksum')})", file=out
    )
    return OK


def _source(kube: Kube, engine: str, source: str, checksum: str | None) -> dict[str, Any]:
    """The restore's spec fields for `--from`: a VulcanBackup of the engine, or a location
    whose checksum comes from the engine's VulcanBackup that wrote it (or `--checksum`)."""
    if source.startswith(("s3://", "pvc://")):
        if not checksum:
            for b in kube.list(ours(kinds.BACKUP, kube.namespace)):
                st = b.get("status") or {}
                if ((b.get("spec") or {}).get("engineRef") or {}).get("name") == engine and st.get(
                    "location"
                ) == source:
                    checksum = st.get("checksum")
        if not checksum:
            raise CtlError(
                f"no VulcanBackup of {engine} records {source}: give its sha256 with --checksum "
                "(the .sha256 file beside it)",
                USAGE,
            )
        return {"location": source, "checksum": checksum}
    found = kube.get(ours(kinds.BACKUP, kube.namespace, source))
    if found is None:
        raise CtlError(
            f'vulcanbackup "{source}" not found in namespace "{kube.namespace}" '
            "(--from takes a VulcanBackup name or an s3:// or pvc:// location)",
            NOT_FOUND,
        )
    if ((found.get("spec") or {}).get("engineRef") or {}).get("name") != engine:
        raise CtlError(f"vulcanbackup/{source} is not a backup of {engine}")
    st = found.get("status") or {}
    if st.get("phase") != "Succeeded" or not st.get("checksum"):
        raise CtlError(f"vulcanbackup/{source} has not succeeded (phase {st.get('phase')})")
    if checksum and checksum != st["checksum"]:
        raise CtlError(f"--checksum differs from vulcanbackup/{source}'s status.checksum")
    return {"backupRef": {"name": source}, "checksum": st["checksum"]}


def confirm(question: str, answer: str, stdin: TextIO, out: TextIO) -> bool:
    print(f"{question}\nType the engine's name ({answer}) to go on: ", end="", file=out, flush=True)
    line = stdin.readline()
    return line.strip() == answer


def restore(
    kube: Kube,
    engine: str,
    *,
    source: str,
    checksum: str | None,
    target_database: str,
    migrate: bool,
    wait: bool,
    timeout: float,
    yes: bool,
    stdin: TextIO = sys.stdin,
    out: TextIO,
) -> int:
    need_engine(kube, engine)
    spec: dict[str, Any] = {
        "engineRef": {"name": engine},
        **_source(kube, engine, source, checksum),
    }
    if target_database:
        spec["targetDatabase"] = target_database
    if not migrate:
        spec["migrate"] = False
    if not target_database and not yes:
        question = (
            f"This REPLACES the database of VulcanEngine {kube.namespace}/{engine} with {source}; "
            "the engine is scaled to zero until the restore and the migration are done."
        )
        if not confirm(question, engine, stdin, out):
            print("not confirmed: nothing was changed", file=out)
            return DECLINED
    name = names.dns_name(engine, "restore", stamp())
    kube.create(
        ours(kinds.RESTORE, kube.namespace),
        {
            "apiVersion": API_VERSION,
            "kind": kinds.RESTORE.kind,
            "metadata": {"name": name, "namespace": kube.namespace},
            "spec": spec,
        },
    )
    print(f"vulcanrestore/{name} created", file=out)
    if not wait:
        return OK
    obj = wait_for(
        kube,
        ours(kinds.RESTORE, kube.namespace, name),
        lambda o: (o.get("status") or {}).get("phase") in TERMINAL,
        timeout,
        out,
        f"vulcanrestore/{name}",
    )
    if (obj.get("status") or {}).get("phase") == "Failed":
        raise CtlError(f"vulcanrestore/{name} failed: {_reason(obj)}")
    return OK


def set_spec(kube: Kube, engine: str, field: str, value: bool, out: TextIO) -> int:
    """hibernate on|off, pause, resume: one spec field."""
    current = need_engine(kube, engine)
    if bool((current.get("spec") or {}).get(field)) == value:
        print(f"vulcanengine/{engine}: spec.{field} is already {str(value).lower()}", file=out)
        return OK
    kube.merge(ours(kinds.ENGINE, kube.namespace, engine), {"spec": {field: value}})
    print(f"vulcanengine/{engine}: spec.{field} set to {str(value).lower()}", file=out)
    return OK


def annotate(kube: Kube, engine: str, key: str, out: TextIO) -> int:
    """retry-upgrade, rotate-secrets: a new value of the annotation the operator watches."""
    current = need_engine(kube, engine)
    st = current.get("status") or {}
    if key == RETRY_UPGRADE and not st.get("failedVersion"):
        raise CtlError(
            f"vulcanengine/{engine}: no failed upgrade to retry (status.failedVersion is empty)"
        )
    value = stamp()
    kube.merge(
        ours(kinds.ENGINE, kube.namespace, engine), {"metadata": {"annotations": {key: value}}}
    )
    print(f"vulcanengine/{engine} annotated {key}={value}", file=out)
    return OK


def _pods_of(kube: Kube, target: str) -> tuple[str, list[dict[str, Any]]]:
    """The pods behind `target`: an engine's backend pods, or the Job pod of a problem, backup
    or restore (`sp/NAME`, `vb/NAME`, `vr/NAME`; a bare NAME: an engine, else a problem)."""
    kind_name = target.split("/", 1)
    by_short = {k.short: k for k in kinds.ALL} | {k.kind.lower(): k for k in kinds.ALL}
    by_short |= {k.plural: k for k in kinds.ALL} | {
        "problem": kinds.PROBLEM,
        "engine": kinds.ENGINE,
    }
    if len(kind_name) == 2:
        if kind_name[0].lower() not in by_short:
            raise CtlError(f"{target}: the kind must be one of ve, sp, vb, vr", USAGE)
        candidates = [by_short[kind_name[0].lower()]]
        name = kind_name[1]
    else:
        candidates, name = [kinds.ENGINE, kinds.PROBLEM], target
    ns = kube.namespace
    for kind in candidates:
        obj = kube.get(ours(kind, ns, name))
        if obj is None:
            continue
        if kind is kinds.ENGINE:
            selector = names.selector(name, names.COMPONENT_BACKEND)
            return f"vulcanengine/{name}", kube.list(path("v1", "pods", ns), selector)
        job = (obj.get("status") or {}).get("jobName")
        label = f"{kind.plural[:-1]}/{name}"
        if not job:
            raise CtlError(f"{label} has no Job (yet)")
        return label, kube.list(path("v1", "pods", ns), {"job-name": job})
    raise CtlError(
        f'"{target}" is neither a VulcanEngine nor a SchedulingProblem in "{ns}"', NOT_FOUND
    )


def logs(
    kube: Kube,
    target: str,
    *,
    tail: int | None,
    previous: bool,
    out: TextIO,
    follow: bool = False,
    max_requests: int = MAX_LOG_REQUESTS,
) -> int:
    """Print the logs of `target`'s pods (each line prefixed with its pod when there are
    several); `follow`: stream them as kubectl logs -f does, one stream per pod (at most
    `max_requests`), until every container has ended."""
    label, pods = _pods_of(kube, target)
    if not pods:
        raise CtlError(f"{label}: no pods")
    pod_names = [str(pod["metadata"]["name"]) for pod in pods]
    if follow and len(pod_names) > max_requests:
        raise CtlError(
            f"{label}: you are attempting to follow {len(pod_names)} log streams, but the "
            f"maximum allowed concurrency is {max_requests}, use --max-log-requests to "
            "increase the limit",
            USAGE,
        )
    lock = threading.Lock()
    errors: list[Exception] = []

    def show(pod_name: str) -> None:
        prefix = f"[{pod_name}] " if len(pod_names) > 1 else ""
        options: dict[str, Any] = {"tail": tail, "previous": previous}
        try:
            if follow:
                lines: Iterable[str] = kube.follow_log(kube.namespace, pod_name, **options)
            else:
                lines = kube.log(kube.namespace, pod_name, **options).splitlines()
            for line in lines:
                with lock:
                    print(prefix + line, file=out, flush=follow)
        except (CtlError, KubeError) as exc:
            errors.append(exc)

    if not follow or len(pod_names) == 1:
        for pod_name in pod_names:
            show(pod_name)
    else:  # one stream per pod at once, lines as they come (daemon: Ctrl-C ends them)
        threads = [threading.Thread(target=show, args=(n,), daemon=True) for n in pod_names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return OK
