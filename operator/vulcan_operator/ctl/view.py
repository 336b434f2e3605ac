"""`kubectl vulcan status`: everything about one engine, collected once (`collect`) and shown on
one screen (`render`). `collect` returns plain data, which `-o json|yaml` prints as it is."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from vulcan_operator import kinds, names
from vulcan_operator.ctl.kube import Kube, ours, path
from vulcan_operator.status import parse_time

#: The kinds an engine's children can be (apiVersion, plural, kind), in the order shown.
#: Secrets are left out on purpose: listing them reads their values.
CHILD_KINDS = (
    ("apps/v1", "deployments", "Deployment"),
    ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("v1", "services", "Service"),
    ("v1", "configmaps", "ConfigMap"),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    ("networking.k8s.io/v1", "ingresses", "Ingress"),
    ("batch/v1", "cronjobs", "CronJob"),
    ("batch/v1", "jobs", "Job"),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule"),
)
EVENTS_SHOWN = 5
MESSAGE_WIDTH = 110


def engine_of(obj: dict[str, Any]) -> str | None:
    """The engine a problem, backup or restore names."""
    return ((obj.get("spec") or {}).get("engineRef") or {}).get("name")


def related(kube: Kube, kind: kinds.Kind, namespace: str, engine: str) -> list[dict[str, Any]]:
    """The objects of `kind` in the namespace that name `engine`."""
    return [o for o in kube.list(ours(kind, namespace)) if engine_of(o) == engine]


def children(kube: Kube, namespace: str, engine: str) -> list[dict[str, Any]]:
    """Every child of the engine the cluster serves (by the engine label), solver Jobs apart."""
    selector = {names.LABEL_ENGINE: names.label_value(engine)}
    found = []
    for api_version, plural, kind in CHILD_KINDS:
        for obj in kube.list(path(api_version, plural, namespace), selector):
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(names.LABEL_COMPONENT) == names.COMPONENT_SOLVER:
                continue
            found.append({"apiVersion": api_version, "kind": kind, **obj})
    return found


def health(obj: dict[str, Any]) -> tuple[bool | None, str]:
    """(healthy: True / False / None for in progress, a few words) of one child."""
    kind, spec, st = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Deployment":
        want, ready = spec.get("replicas", 1), st.get("readyReplicas", 0)
        conds = {c.get("type"): c for c in st.get("conditions") or []}
        if (conds.get("Progressing") or {}).get("reason") == "ProgressDeadlineExceeded":
            return False, f"{ready}/{want} ready, rollout stuck (ProgressDeadlineExceeded)"
        if want == 0:
            return True, "scaled to zero"
        return (True if ready >= want else None), f"{ready}/{want} ready"
    if kind == "HorizontalPodAutoscaler":
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        return True, f"{_num(st.get('currentReplicas'))} replicas (min {low}, max {high})"
    if kind == "CronJob":
        if spec.get("suspend"):
            return None, f"suspended ({spec.get('schedule')})"
        last = st.get("lastSuccessfulTime") or st.get("lastScheduleTime") or "never"
        return True, f"{spec.get('schedule')}, last run {last}"
    if kind == "Job":
        conds = {c.get("type"): c for c in st.get("conditions") or [] if c.get("status") == "True"}
        if "Failed" in conds:
            return False, f"failed ({conds['Failed'].get('reason') or 'Failed'})"
        if "Complete" in conds:
            return True, "succeeded"
        return None, "running"
    if kind == "PersistentVolumeClaim":
        phase = st.get("phase") or "Pending"
        return (True if phase == "Bound" else None), phase
    return True, "present"


def _problem_summary(problems: list[dict[str, Any]]) -> dict[str, Any]:
    phases = Counter(str((p.get("status") or {}).get("phase") or "Pending") for p in problems)
    failed = [
        p["metadata"]["name"] for p in problems if (p.get("status") or {}).get("phase") == "Failed"
    ]
    running = [
        p["metadata"]["name"] for p in problems if (p.get("status") or {}).get("phase") == "Running"
    ]
    return {
        "total": len(problems),
        "phases": dict(sorted(phases.items())),
        "running": running,
        "failed": failed,
    }


def _event_time(event: dict[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def warning_events(
    kube: Kube, namespace: str, objects: set[str], limit: int = EVENTS_SHOWN
) -> list[dict[str, Any]]:
    """The newest Warning Events about `objects` (names) in the namespace."""
    events = [
        e
        for e in kube.list(path("v1", "events", namespace))
        if e.get("type") == "Warning" and (e.get("involvedObject") or {}).get("name") in objects
    ]
    events.sort(key=_event_time)
    return [
        {
            "time": _event_time(e),
            "reason": e.get("reason"),
            "object": f"{(e.get('involvedObject') or {}).get('kind')}/"
            f"{(e.get('involvedObject') or {}).get('name')}",
            "message": e.get("message") or "",
            "count": e.get("count") or 1,
        }
        for e in events[-limit:]
    ]


def collect(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """Everything `status` shows, as plain data; None when there is no such engine."""
    engine = kube.get(ours(kinds.ENGINE, namespace, name))
    if engine is None:
        return None
    spec, st = engine.get("spec") or {}, engine.get("status") or {}
    kids = children(kube, namespace, name)
    backups = related(kube, kinds.BACKUP, namespace, name)
    restores = related(kube, kinds.RESTORE, namespace, name)
    problems = related(kube, kinds.PROBLEM, namespace, name)
    objects = {name} | {o["metadata"]["name"] for o in [*kids, *backups, *restores, *problems]}
    upgrade = st.get("upgrade") or None
    return {
        "engine": {
            "name": name,
            "namespace": namespace,
            "phase": st.get("phase"),
            "version": spec.get("version"),
            "currentVersion": st.get("currentVersion"),
            "failedVersion": st.get("failedVersion"),
            "paused": bool(spec.get("paused")),
            "hibernate": bool(spec.get("hibernate")),
        },
        "upgrade": None
        if not upgrade
        else {k: upgrade.get(k) for k in ("kind", "from", "to", "step", "startedAt", "finishedAt")},
        "replicas": {"desired": st.get("replicas"), "ready": st.get("readyReplicas")},
        "databaseRevision": st.get("databaseRevision"),
        "lastBackup": st.get("lastBackup"),
        "lastDrill": st.get("lastDrill"),
        "lastMaintenance": st.get("lastMaintenance"),
        "restore": st.get("restore"),
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message", "lastTransitionTime")}
            for c in st.get("conditions") or []
        ],
        "children": [
            {"kind": o["kind"], "name": o["metadata"]["name"], "healthy": h, "health": words}
            for o in kids
            for h, words in [health(o)]
        ],
        "backups": [
            {"name": b["metadata"]["name"], "phase": (b.get("status") or {}).get("phase")}
            for b in backups
        ],
        "problems": _problem_summary(problems),
        "warnings": warning_events(kube, namespace, objects),
    }


# --- the screen -------------------------------------------------------------------------


def ago(text: str | None, now: datetime.datetime) -> str:
    """`<time> (<age> ago)`, or `-`."""
    when = parse_time(text)
    if when is None:
        return text or "-"
    shown = when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{shown} ({seconds // size}{unit} ago)"
    return f"{shown} ({seconds}s ago)"


def _short(text: str | None, width: int = MESSAGE_WIDTH) -> str:
    one = " ".join(str(text or "").split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _mark(healthy: bool | None) -> str:
    return {True: "ok", False: "!!", None: ".."}[healthy]


def _version_line(e: dict[str, Any], upgrade: dict[str, Any] | None) -> str:
    line = f"Version:    {e.get('currentVersion') or '-'}"
    if e.get("version") != e.get("currentVersion"):
        line += f" (spec: {e.get('version')})"
    if upgrade and not upgrade.get("finishedAt"):
        start = f" {upgrade['from']} ->" if upgrade.get("from") else ""
        line += (
            f"; {upgrade.get('kind') or 'upgrade'}{start} {upgrade.get('to')} in flight, "
            f"step {upgrade.get('step')}"
        )
    elif upgrade:
        kind = upgrade.get("kind") or "upgrade"
        line += f"; last {kind} to {upgrade.get('to')}: {upgrade.get('step')}"
    if e.get("failedVersion"):
        line += f"; failed version {e['failedVersion']} (kubectl vulcan retry-upgrade)"
    return line


def _backup_line(last: dict[str, Any] | None, now: datetime.datetime) -> str:
    if not last:
        return "Backup:     none yet"
    line = f"Backup:     {last.get('outcome') or '-'} {ago(last.get('time'), now)}"
    if last.get("location"):
        line += f" {last['location']}"
    if last.get("reason"):
        line += f"\n            {last['reason']}: {_short(last.get('message'))}"
    return line


def _drill_line(drill: dict[str, Any] | None, now: datetime.datetime) -> str:
    if not drill:
        return "Drill:      none yet"
    line = f"Drill:      {drill.get('outcome') or '-'} {ago(drill.get('time'), now)}"
    if drill.get("backup"):
        line += f" of {drill['backup']}"
    if drill.get("durationSeconds") is not None:
        line += f" in {drill['durationSeconds']}s"
    if drill.get("message"):
        line += f"\n            {_short(drill['message'])}"
    return line


def _maintenance_line(run: dict[str, Any] | None, now: datetime.datetime) -> str:
    if not run:
        return "Vacuum:     none yet"
    line = f"Vacuum:     {run.get('outcome') or '-'} {ago(run.get('time'), now)}"
    if run.get("databaseBytes") is not None:
        line += f", database {run['databaseBytes'] / 2**20:.1f} MiB"
    if run.get("reindexed"):
        line += ", reindexed"
    if run.get("reason"):
        line += f"\n            {run['reason']}: {_short(run.get('message'))}"
    return line


def _problems_line(p: dict[str, Any]) -> str:
    if not p["total"]:
        return "Problems:   none"
    parts = [f"{n} {phase.lower()}" for phase, n in p["phases"].items()]
    line = "Problems:   " + ", ".join(parts)
    if p["running"]:
        line += f"\n            running: {', '.join(p['running'][:5])}"
    if p["failed"]:
        line += f"\n            failed: {', '.join(p['failed'][:5])}"
    return line


def render(snap: dict[str, Any], now: datetime.datetime) -> str:
    """The one screen."""
    e, rep = snap["engine"], snap["replicas"]
    flags = [f for f, on in (("paused", e["paused"]), ("hibernate", e["hibernate"])) if on]
    lines = [
        f"VulcanEngine {e['namespace']}/{e['name']}   phase {e.get('phase') or '-'}"
        + (f"   ({', '.join(flags)})" if flags else ""),
        _version_line(e, snap.get("upgrade")),
        f"Replicas:   {rep.get('ready') or 0}/{_num(rep.get('desired'))} ready",
        f"Database:   revision {snap.get('databaseRevision') or '-'}",
        _backup_line(snap.get("lastBackup"), now),
        _drill_line(snap.get("lastDrill"), now),
        _maintenance_line(snap.get("lastMaintenance"), now),
    ]
    restore = snap.get("restore")
    if restore:
        lines.append(
            f"Restore:    {restore.get('name')} at step {restore.get('step')}"
            + (f": {_short(restore.get('message'))}" if restore.get("message") else "")
        )
    lines.append(_problems_line(snap["problems"]))
    lines.append("")
    lines.append("Conditions:")
    for c in snap["conditions"]:
        lines.append(
            f"  {c['type']:<16} {c['status']:<8} {c.get('reason') or '-':<26} "
            f"{_short(c.get('message'), 80)}"
        )
    if not snap["conditions"]:
        lines.append("  none yet (the operator has not reconciled this engine)")
    lines.append("")
    lines.append("Children:")
    for child in snap["children"]:
        lines.append(
            f"  {_mark(child['healthy'])} {child['kind'] + '/' + child['name']:<48} "
            f"{child['health']}"
        )
    if not snap["children"]:
        lines.append("  none")
    lines.append("")
    if snap["warnings"]:
        lines.append(f"Warning events (newest {len(snap['warnings'])}):")
        for w in snap["warnings"]:
            count = f" (x{w['count']})" if w.get("count", 1) > 1 else ""
            lines.append(f"  {ago(w['time'], now)} {w['reason']} {w['object']}{count}")
            lines.append(f"      {_short(w['message'])}")
    else:
        lines.append("Warning events: none")
    return "\n".join(line.rstrip() for line in lines) + "\n"
