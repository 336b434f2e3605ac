"""Reconcile one SchedulingProblem: validate → engine → queue → Job → outcome → status.

Level-based: every call looks at the problem, its engine and its Job as they are now and
returns the whole status they imply, plus Events and when to look again. Nothing is written
when nothing changed. One problem generation has exactly one Job, named from the problem's
uid and generation (`names.problem_job`): a retry or an operator restart finds it instead of
making a second one.

Phases: Pending (waiting for the engine or a referenced ConfigMap, or the Job's pod is
starting), Queued (waiting for a solver slot of the engine, or for Kueue), Running (the pod
runs; it patches `status.progress` itself), Succeeded (a schedule), Failed (invalid,
infeasible, no schedule in time, out of memory, deadline, image, eviction, crash).

The engine may live in another namespace (`engineRef.namespace`): it solves the problem only
when its `spec.solver.acceptFrom` admits the problem's namespace (by name, or by a selector on
the namespace's labels, read then); otherwise the problem fails (`NotAccepted`) naming the
field that would allow it, and learns nothing else of the engine. Its Job still runs in the
problem's namespace, in the engine's queue; when it ends, the operator writes its schedule
rows with the engine's credentials (`schedulerows`), as the pod itself does in the engine's
own namespace.

A spec edit starts over: a Job of the older generation still running is deleted, and the
previous result moves to `status.history` (newest first, at most `HISTORY_LIMIT`).

Reading a problem costs CPU in proportion to its size (up to ~1 MiB), so a large inline spec
and every problemRef ConfigMap are validated in a small thread pool (`CHECK_THREADS`), not on
the event loop, and a ConfigMap's verdict is kept per ConfigMap version
(`checked_reference`), so a queued problem's polls do not read it again. The loader refuses
YAML aliases and oversize text before building anything (`solver.loader`). A problem asking
for more than its engine's caps fails (`builders.problem.cap_issues`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from vulcan_operator import kinds, names
from vulcan_operator.api import errors
from vulcan_operator.api.engine import AcceptFrom, VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders.problem import (
    KUEUE_QUEUE_LABEL,
    ProblemInputs,
    acceptance_issue,
    active_deadline_seconds,
    build,
    cap_issues,
)
from vulcan_operator.checks import check_referenced, inline_key
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, ApiError, NotOurs, Ref, apply
from vulcan_operator.reconcile import solverjob
from vulcan_operator.reconcile.queue import EngineKey, QueueEntry, QueueView, engine_key
from vulcan_operator.reconcile.schedulerows import ForeignSolve, write_rows
from vulcan_operator.solverpod.store import ScheduleKey
from vulcan_operator.status import condition, get_condition, now, set_conditions

__all__ = ["HISTORY_LIMIT", "KIND", "TERMINAL", "Finished", "ProblemOutcome", "reconcile"]

KIND = kinds.PROBLEM.kind
TERMINAL = ("Succeeded", "Failed")
HISTORY_LIMIT = 5
#: A Queued problem looks again (and refreshes its queuePosition) every this many polls; its
#: daemon writes a new position (and nothing else changed) at most this often too.
QUEUED_POLL_FACTOR = 3
#: A routine step (`routine_step`) is written once it has lasted this long (the solver pod's
#: progress: at most once a second too).
STEP_SECONDS = 1.0
ROUTINE_STEPS = {("Pending", "Starting"), ("Running", "Solving")}
KUEUE_WORKLOAD = ("kueue.x-k8s.io/v1beta1", "Workload")
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
#: The label the API server puts on every namespace: its name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: Fields of the status the reconcile owns; `progress`, `result` and `solutionRef` are also
#: written by the solver pod, and only set here when they must change.
Event = tuple[str, str, str]
#: Threads that read problems (each may hold a 1 MiB problem's objects, ~100 MiB at worst).
CHECK_THREADS = 2
#: An inline problem with more entries (machines, operators, tasks) than this is validated in
#: the check threads; a smaller one (milliseconds) on the loop, never queued behind big ones.
INLINE_ON_LOOP = 1_000
#: ConfigMap verdicts kept (a few lines each).
VERDICT_CACHE_SIZE = 1024
#: Lines of an invalid problem's explanation kept in the status (and the Event), and the
#: characters kept of each (a line may quote a name or key of any length).
EXPLANATION_LINES = 20
LINE_CHARS = 500

_T = TypeVar("_T")
_CHECKS = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="problem-check")
_VERDICTS: OrderedDict[tuple[str, ...], list[str]] = OrderedDict()


async def off_loop(function: Callable[..., _T], *args: Any) -> _T:
    """`function(*args)` in the problem-check threads, not on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_CHECKS, function, *args)


@dataclass(frozen=True)
class Finished:
    """A solve that just ended, for the metrics."""

    status: str
    seconds: float | None = None
    jobs_by_priority: dict[int | str, int] = field(default_factory=dict)
    timed_out: bool = False
    memory_bytes: int | None = None


@dataclass
class ProblemOutcome:
    """The status to show, the Events to post, and when to look again (a problem's daemon
    writes the status itself, so this is not `status.Outcome`)."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    #: Seconds until the next look without any event; None: nothing to wait for.
    requeue: float | None = None
    finished: Finished | None = None
    #: The engine whose solver slot this problem just took, if any (the next in its queue
    #: may take another).
    took_slot: EngineKey | None = None


# --- the status -------------------------------------------------------------------------


def _phase_event(old: dict[str, Any], phase: str, reason: str) -> bool:
    """Post an Event only when the phase or the reason changes (not on every look)."""
    ready = get_condition(old, "Ready") or {}
    return old.get("phase") != phase or ready.get("reason") != reason


class _Status:
    """Builds the next status from the current one."""

    def __init__(self, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self.gen: int = int(meta.get("generation") or 1)
        self.old: dict[str, Any] = dict(body.get("status") or {})
        self.fields: dict[str, Any] = {}

    def set(self, **fields: Any) -> None:
        self.fields.update(fields)

    def make(
        self,
        phase: str,
        reason: str,
        message: str,
        *,
        ready: bool = False,
        progressing: bool = True,
    ) -> dict[str, Any]:
        conditions = set_conditions(
            self.old.get("conditions"),
            [
                condition("Ready", ready, reason, message, self.gen),
                condition("Progressing", progressing, reason, message, self.gen),
            ],
        )
        status = {
            "phase": phase,
            "observedGeneration": self.gen,
            "queuePosition": None,
            **self.fields,
            "conditions": conditions,
        }
        return status


def routine_step(new: dict[str, Any]) -> tuple[str, str] | None:
    """The (phase, Ready reason) of the status `new` when it shows a routine step of a solve,
    which the daemon writes only once it has lasted `STEP_SECONDS`: the Job created, its pod
    starting or running. None for a queue, trouble, the end (written at once)."""
    phase = str(new.get("phase") or "")
    reason = str((get_condition(new, "Ready") or {}).get("reason") or "")
    return (phase, reason) if (phase, reason) in ROUTINE_STEPS else None


def moved_up(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """True when the status `new` differs from `old` only in the queue position (and the
    message saying it): a problem still waiting for a solver slot, further up the queue. Only
    the fields `new` sets are compared (the status diff writes no others)."""

    def without_position(st: dict[str, Any]) -> dict[str, Any]:
        conditions = [
            {k: v for k, v in c.items() if k != "message"} for c in st.get("conditions") or []
        ]
        rest = {k: st.get(k) for k in new if k not in ("queuePosition", "conditions")}
        return {**rest, "conditions": conditions}

    ready = (get_condition(old, "Ready") or {}).get("reason")
    return (
        old is not None
        and ready == "Queued"
        and (get_condition(new, "Ready") or {}).get("reason") == "Queued"
        and without_position(old) == without_position(new)
    )


def _compact(value: Any) -> Any:
    """Nested dicts without None values (the API server would prune them: no diff churn)."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


# --- inputs ------------------------------------------------------------------------------


def _entries(spec: Any) -> int:
    """Roughly how much validating an inline spec costs: its machines, operators and tasks."""
    if not isinstance(spec, dict):
        return 0
    count = 0
    for key in ("machines", "operators", "jobs"):
        items = spec.get(key)
        if isinstance(items, list):
            count += len(items)
            if key == "jobs":
                count += sum(len(j.get("tasks") or []) for j in items if isinstance(j, dict))
    return count


async def parsed(body: dict[str, Any]) -> SchedulingProblem | list[str]:
    """`parse`, in the check threads when the inline problem is large."""
    if _entries(body.get("spec")) <= INLINE_ON_LOOP:
        return parse(body)
    return await off_loop(parse, body)


def parse(body: dict[str, Any]) -> SchedulingProblem | list[str]:
    """The SchedulingProblem as a typed model, or the list of problems with its spec."""
    return errors.parse(body, SchedulingProblem)


async def checked_reference(problem: SchedulingProblem, configmap: dict[str, Any]) -> list[str]:
    """`check_referenced` in the check threads, once per ConfigMap version (and spec fields it
    merges with); the verdicts are kept in a bounded cache."""
    ref = problem.spec.problemRef
    assert ref is not None
    meta = configmap.get("metadata") or {}
    version = str(meta.get("resourceVersion") or "")
    key = (
        str(meta.get("namespace") or ""),
        ref.configMapName,
        str(meta.get("uid") or ""),
        version,
        ref.key,
        inline_key(problem),
    )
    if version and key in _VERDICTS:
        _VERDICTS.move_to_end(key)
        return list(_VERDICTS[key])
    lines = await off_loop(check_referenced, problem, configmap)
    if version:
        _VERDICTS[key] = list(lines)
        while len(_VERDICTS) > VERDICT_CACHE_SIZE:
            _VERDICTS.popitem(last=False)
    return lines


async def kueue_pending(api: Api, job: dict[str, Any]) -> str:
    """Why Kueue has not admitted the Job yet, in Kueue's words."""
    meta = job.get("metadata") or {}
    queue = (meta.get("labels") or {}).get(KUEUE_QUEUE_LABEL, "")
    try:
        workloads = await api.list(
            Ref(*KUEUE_WORKLOAD, meta.get("namespace")), {KUEUE_JOB_UID_LABEL: meta.get("uid", "")}
        )
    except ApiError as exc:
        if exc.status in (403, 404):
            return (
                f"waiting for Kueue to admit Job {meta.get('name')} (LocalQueue '{queue}'); "
                "no Kueue Workload can be read: is Kueue installed?"
            )
        raise
    if not workloads:
        return f"waiting for Kueue to admit Job {meta.get('name')} (LocalQueue '{queue}')"
    conditions = {
        c.get("type"): c for c in (workloads[0].get("status") or {}).get("conditions") or []
    }
    for kind in ("QuotaReserved", "Admitted"):
        c = conditions.get(kind)
        if c is not None and c.get("status") != "True" and c.get("message"):
            return f"Kueue (LocalQueue '{queue}'): {c['message']}"
    return f"waiting for Kueue to admit Job {meta.get('name')} (LocalQueue '{queue}')"


# --- the reconcile -----------------------------------------------------------------------


async def reconcile(
    api: Api, body: dict[str, Any], settings: Settings, queue: QueueView
) -> ProblemOutcome:
    """Move one problem on; return the status it should show."""
    meta = body.get("metadata") or {}
    name, namespace, uid = meta["name"], meta["namespace"], meta.get("uid", "")
    st = _Status(body)
    old, gen = st.old, st.gen
    poll = float(settings.problem_poll_seconds)
    events: list[Event] = []
    job_name = names.problem_job(name, uid, gen)

    # A new generation: stop the older Job if it still runs, keep the older result.
    if old.get("observedGeneration") not in (None, gen):
        previous = old.get("jobName")
        running = previous and previous != job_name and old.get("phase") not in TERMINAL
        if running and await api.delete(Ref("batch/v1", "Job", namespace, previous)):
            events.append(("Normal", "Cancelled", f"deleted Job {previous} (spec changed)"))
        history = list(old.get("history") or [])
        if old.get("result"):
            history = [old["result"], *history]
        st.set(
            history=history[:HISTORY_LIMIT],
            result=None,
            progress=None,
            solutionRef=None,
            jobName=None,
        )
        events.append(("Normal", "SpecChanged", f"spec changed (generation {gen}): solving again"))
        old = {k: v for k, v in old.items() if k in ("conditions", "history")}
    elif old.get("phase") in TERMINAL:
        return ProblemOutcome(old)  # this generation is done; nothing to do

    problem = await parsed(body)  # an inline problem may be ~1 MiB
    if isinstance(problem, list):
        return _invalid(st, old, events, problem)

    engine_name = problem.spec.engineRef.name
    engine_ns = problem.spec.engineRef.namespace_for(namespace)
    key = engine_key(engine_ns, engine_name)
    created = str(meta.get("creationTimestamp") or "")
    pods = problem.spec.solver.pods
    me = QueueEntry(created, name, uid, True, "Queued", job_name, namespace, pods)
    job = None
    if old.get("jobName") == job_name or queue.knows_job(key, me):
        job = await api.get(Ref("batch/v1", "Job", namespace, job_name))
    if job is not None:
        st.set(jobName=job_name)
        rows = None
        if engine_ns != namespace:
            rows = _foreign_rows(api, queue, problem, namespace, uid, gen, job_name)
        return await _follow(api, st, old, events, job, poll, rows)
    if old.get("jobName") == job_name and old.get("phase") in ("Pending", "Running"):
        message = f"the solver Job {job_name} was deleted before it finished"
        st.set(result={"explanation": [message], "finishedAt": now()})
        status = st.make("Failed", "JobDeleted", message, progressing=False)
        return ProblemOutcome(
            status, [*events, ("Warning", "JobDeleted", message)], None, Finished("ERROR")
        )

    engine = queue.engine(engine_ns, engine_name)
    if engine is None:
        message = (
            f"VulcanEngine '{engine_name}' not found in namespace '{engine_ns}': the problem "
            "is solved once it exists"
        )
        status = st.make("Pending", "EngineNotFound", message, progressing=False)
        new = _phase_event(old, "Pending", "EngineNotFound")
        return ProblemOutcome(
            status, [*events, ("Warning", "EngineNotFound", message)] if new else events, poll
        )
    if engine_ns != namespace:
        # Accepted first, from acceptFrom alone: a namespace the engine does not accept
        # learns nothing of the engine's spec, not even why it is invalid.
        refused = await _refusal(api, namespace, engine_name, engine_ns, engine)
        if refused is not None:
            st.set(result={"explanation": [refused], "finishedAt": now()})
            status = st.make("Failed", "NotAccepted", refused, progressing=False)
            event = ("Warning", "NotAccepted", refused)
            return ProblemOutcome(status, [*events, event], None)
    try:
        engine_spec = VulcanEngineSpec.model_validate(engine.get("spec") or {})
    except ValidationError as exc:
        # An engine newer than this operator (an unknown field) must not make every
        # reconcile of its problems raise: its problems wait, saying why (to the engine's
        # own namespace; another one only learns that it is invalid).
        lines = [f"spec.{line}" for line in errors.describe(exc, VulcanEngineSpec)]
        if engine_ns != namespace:
            lines = [f"see VulcanEngine '{engine_name}' in namespace '{engine_ns}'"]
        message = f"VulcanEngine '{engine_name}' has an invalid spec: " + "; ".join(lines)
        status = st.make("Pending", "EngineInvalid", message, progressing=False)
        new = _phase_event(old, "Pending", "EngineInvalid")
        return ProblemOutcome(
            status, [*events, ("Warning", "EngineInvalid", message)] if new else events, poll
        )

    over = cap_issues(problem.spec, engine_spec)
    if over:
        return _invalid(st, old, events, over)
    if engine_spec.hibernate:
        message = (
            f"VulcanEngine '{engine_name}' hibernates (spec.hibernate): the problem is solved "
            "once it is woken up"
        )
        status = st.make("Queued", "EngineHibernated", message)
        new = _phase_event(old, "Queued", "EngineHibernated")
        return ProblemOutcome(
            status, [*events, ("Normal", "EngineHibernated", message)] if new else events, poll
        )

    ref = problem.spec.problemRef
    if ref is not None:
        cm = await api.get(Ref("v1", "ConfigMap", namespace, ref.configMapName))
        if cm is None:
            message = f"ConfigMap '{ref.configMapName}' (spec.problemRef) not found"
            status = st.make("Pending", "ConfigMapNotFound", message, progressing=False)
            new = _phase_event(old, "Pending", "ConfigMapNotFound")
            event = ("Warning", "ConfigMapNotFound", message)
            return ProblemOutcome(status, [*events, event] if new else events, poll)
        lines = await checked_reference(problem, cm)
        if lines:
            return _invalid(st, old, events, lines)

    inputs = ProblemInputs(
        name=name,
        namespace=namespace,
        uid=uid,
        generation=gen,
        spec=problem.spec,
        engine=engine_spec,
        settings=settings,
        engine_namespace=engine_ns,
    )

    async def start() -> None:
        for child in build(inputs):
            create_only = child["kind"] in ("Job", "ConfigMap")
            await apply(api, child, create_only=create_only, likely_new=True)

    solver = inputs.solver
    what = (
        f"{solver.numWorkers} CPU, {solver.memoryLimitMB} MiB, time limit "
        f"{solver.maxTimeSeconds:g} s, deadline {active_deadline_seconds(solver)} s"
    )
    if pods > 1:
        what = f"{pods} pods racing, each {what}"
    position = 0
    if not inputs.queue_name:  # with Kueue, Kueue admits (unsuspends) the Jobs
        position = queue.admit(key, me, engine_spec.solver.maxConcurrentJobs, job_name)
    if not position:
        try:
            await start()
        except NotOurs as error:
            queue.admissions.release(key, uid)
            message = str(error)
            st.set(result={"explanation": [message], "finishedAt": now()})
            status = st.make("Failed", "NameConflict", message, progressing=False)
            event = ("Warning", "NameConflict", message)
            return ProblemOutcome(status, [*events, event], None, Finished("ERROR"))
        except BaseException:
            queue.admissions.release(key, uid)
            raise

    if position:
        limit = engine_spec.solver.maxConcurrentJobs
        slots = f"{pods} solver slots" if pods > 1 else "a solver slot"
        message = (
            f"waiting for {slots} of engine '{engine_name}' ({limit} at once): position {position}"
        )
        st.set(queuePosition=position)
        status = st.make("Queued", "Queued", message)
        status["queuePosition"] = position
        if old.get("phase") != "Queued":
            events.append(("Normal", "Queued", message))
        # A freed slot wakes the head of the queue at once; this look only refreshes the
        # position, so it comes less often (each refresh is a status write).
        return ProblemOutcome(status, events, poll * QUEUED_POLL_FACTOR)

    st.set(jobName=job_name)
    if inputs.queue_name:
        message = f"created Job {job_name} ({what}) for Kueue LocalQueue '{inputs.queue_name}'"
        status = st.make("Queued", "KueuePending", message)
        return ProblemOutcome(status, [*events, ("Normal", "JobCreated", message)], poll)
    message = f"created Job {job_name} ({what})"
    status = st.make("Pending", "Starting", message)
    return ProblemOutcome(status, [*events, ("Normal", "JobCreated", message)], poll, took_slot=key)


def _invalid(
    st: _Status, old: dict[str, Any], events: list[Event], lines: list[str]
) -> ProblemOutcome:
    """Failed, InvalidSpec, naming every field (the first `EXPLANATION_LINES`); no Job, no
    retry until the spec changes."""
    more = len(lines) - EXPLANATION_LINES
    lines = [
        line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + " ..."
        for line in lines[:EXPLANATION_LINES]
    ]
    if more > 0:
        lines.append(f"... and {more} more")
    message = "invalid problem: " + "; ".join(lines)
    st.set(result={"explanation": list(lines), "finishedAt": now()})
    status = st.make("Failed", "InvalidSpec", message, progressing=False)
    return ProblemOutcome(
        status,
        [*events, ("Warning", "InvalidSpec", message)],
        None,
        Finished("INVALID"),
    )


async def _refusal(
    api: Api, namespace: str, engine_name: str, engine_ns: str, engine: dict[str, Any]
) -> str | None:
    """Why the engine does not solve problems of `namespace` (None: it does). The namespace's
    labels are read only when a selector could admit it."""
    raw = ((engine.get("spec") or {}).get("solver") or {}).get("acceptFrom") or {}
    try:
        accept = AcceptFrom.model_validate(raw)
    except ValidationError:
        accept = AcceptFrom()  # an invalid acceptFrom admits no one
    labels = None
    if accept.namespaceSelector is not None and namespace not in accept.namespaces:
        labels = await namespace_labels(api, namespace)
    return acceptance_issue(namespace, engine_name, engine_ns, accept, labels)


async def namespace_labels(api: Api, namespace: str) -> dict[str, str]:
    """The namespace's labels, with the one the API server sets on every namespace (so a
    selector on kubernetes.io/metadata.name works even where nothing else labels it)."""
    body = await api.get(Ref("v1", "Namespace", None, namespace))
    labels = dict(((body or {}).get("metadata") or {}).get("labels") or {})
    return {**labels, NAMESPACE_NAME_LABEL: namespace}


def _foreign_rows(
    api: Api,
    queue: QueueView,
    problem: SchedulingProblem,
    namespace: str,
    uid: str,
    gen: int,
    job_name: str,
) -> Callable[[], Awaitable[tuple[str | None, str | None]]]:
    """How the schedule rows of a problem solved for an engine of another namespace get
    written (`schedulerows`): by the operator, with the engine's credentials."""
    ref = problem.spec.engineRef
    engine_ns = ref.namespace_for(namespace)

    async def write() -> tuple[str | None, str | None]:
        engine = queue.engine(engine_ns, ref.name)
        try:
            spec = VulcanEngineSpec.model_validate((engine or {}).get("spec") or {})
        except ValidationError:
            spec = None
        if engine is None or spec is None:
            return None, f"not written to the engine's database: VulcanEngine '{ref.name}' is gone"
        key = ScheduleKey(namespace, problem.metadata.name, uid, gen, job_name)
        configmap = names.problem_schedule_configmap(problem.metadata.name)
        solve = ForeignSolve(key, configmap, engine_ns, spec.database_url_ref(ref.name))
        return await write_rows(api, solve)

    return write


async def _follow(
    api: Api,
    st: _Status,
    old: dict[str, Any],
    events: list[Event],
    job: dict[str, Any],
    poll: float,
    rows: Callable[[], Awaitable[tuple[str | None, str | None]]] | None = None,
) -> ProblemOutcome:
    """The problem's Job exists: report what it does. `rows` writes the schedule rows when
    the pod could not (an engine of another namespace)."""
    meta = job["metadata"]
    job_name, namespace = meta["name"], meta["namespace"]
    if solverjob.suspended(job):
        message = await kueue_pending(api, job)
        return ProblemOutcome(st.make("Queued", "KueuePending", message), events, poll)

    state = solverjob.finished(job)
    if state is None:
        ready = int((job.get("status") or {}).get("ready") or 0)
        running = ready > 0 or bool(old.get("progress"))
        if not running:
            pods = await api.list(Ref("v1", "Pod", namespace), {"job-name": job_name})
            trouble = solverjob.starting(job, pods)
            if trouble is not None:
                reason, message, fatal = trouble
                if fatal:
                    await api.delete(Ref("batch/v1", "Job", namespace, job_name))
                    st.set(result={"explanation": [message], "finishedAt": now()})
                    status = st.make("Failed", reason, message, progressing=False)
                    return ProblemOutcome(
                        status, [*events, ("Warning", reason, message)], None, Finished("ERROR")
                    )
                status = st.make("Pending", reason, message)
                new = _phase_event(old, "Pending", reason)
                return ProblemOutcome(
                    status, [*events, ("Warning", reason, message)] if new else events, poll
                )
        if running:
            message = f"the solver pod of Job {job_name} is running"
            return ProblemOutcome(st.make("Running", "Solving", message), events, poll)
        message = f"Job {job_name} created; its pod is starting"
        return ProblemOutcome(st.make("Pending", "Starting", message), events, poll)

    pods = await api.list(Ref("v1", "Pod", namespace), {"job-name": job_name})
    verdict = solverjob.verdict(job, pods, old.get("result"), now())
    if rows is not None and verdict.solution_ref and verdict.solution_ref.get("configMapName"):
        verdict = solverjob.with_rows(verdict, *await rows())
    st.set(result=_compact(verdict.result))
    if verdict.solution_ref is not None:
        st.set(solutionRef=verdict.solution_ref)
    if verdict.progress is not None:
        st.set(progress=_compact(verdict.progress))
    phase = "Succeeded" if verdict.succeeded else "Failed"
    status = st.make(
        phase, verdict.reason, verdict.message, ready=verdict.succeeded, progressing=False
    )
    kind = "Normal" if verdict.succeeded else "Warning"
    return ProblemOutcome(
        status,
        [*events, (kind, verdict.reason, verdict.message)],
        None,
        Finished(
            verdict.metric_status,
            verdict.seconds,
            verdict.jobs_by_priority,
            verdict.timed_out,
            verdict.memory_bytes,
        ),
    )
