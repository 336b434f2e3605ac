"""Run the real Kopf operator in-process (in the test's loop) against the emulator.

`kopf.operator()` is `spawn_tasks()` + `run_tasks(ignored=<tasks that existed at start>)`, and
on stopping it waits for, then cancels, every other task of the loop as its own "hung" task.
In a test, those include pytest-asyncio's fixture teardown task (the very one stopping the
operator: it then waits 5 s and gets cancelled) and any task the test starts later. So the
runner calls the same two functions, and tells Kopf which tasks are not its own: those created
outside the context in which Kopf was started (a context variable, checked by a task factory).
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Collection, Coroutine, Iterator
from typing import Any

import kopf
import kubernetes

#: the set of tasks of the runner whose Kopf created the task (None: not created by a Kopf)
_IN_KOPF: contextvars.ContextVar[weakref.WeakSet[asyncio.Task[Any]] | None] = (
    contextvars.ContextVar("in_kopf", default=None)
)
_OUTSIDERS: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
_CANCELS = 5  # cancels before giving up on a stopping operator
_CANCEL_WAIT = 10.0  # seconds to wait after each (a loaded machine drains Kopf's workers slowly)


def _mark_outsiders(loop: asyncio.AbstractEventLoop) -> None:
    """Remember every task of this loop created outside Kopf (once per loop)."""
    previous = loop.get_task_factory()
    if getattr(previous, "marks_outsiders", False):
        return

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        task = (
            previous(loop, coro, **kwargs)
            if previous is not None
            else asyncio.Task(coro, loop=loop, **kwargs)
        )
        context = kwargs.get("context")
        owner = context.get(_IN_KOPF, None) if context is not None else _IN_KOPF.get()
        if isinstance(task, asyncio.Task):
            (_OUTSIDERS if owner is None else owner).add(task)
        return task

    factory.marks_outsiders = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)  # type: ignore[arg-type]


class _NotKopfs(Collection[asyncio.Task[Any]]):
    def __init__(self, existing: set[asyncio.Task[Any]]) -> None:
        self.existing = existing

    def __contains__(self, task: object) -> bool:
        return task in self.existing or task in _OUTSIDERS

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(self.existing | set(_OUTSIDERS))

    def __len__(self) -> int:
        return len(self.existing | set(_OUTSIDERS))


class OperatorRunner:
    """The operator as a task, with a login handler pointing at `server`.

    Stop: the stop flag first, then (only if it lingers) a cancel; a cancel alone makes Kopf
    arm a SIGKILL of its own thread. With the flag, Kopf stops in milliseconds, except that
    requests of its start-up scan can linger: it then waits 5 s for them; the cancel after
    `grace` cuts that short. `restart()` stops and starts again on the same registry, as a
    new operator process would (Kopf keeps its state in the objects' annotations).
    """

    def __init__(
        self, server: str, registry: kopf.OperatorRegistry, liveness: str | None = None
    ) -> None:
        self.server = server
        self.registry = registry
        self.liveness = liveness  # e.g. http://127.0.0.1:<port>/healthz
        self.starts = 0
        self._task: asyncio.Task[None] | None = None
        self._stop_flag: asyncio.Event | None = None
        self._kopf_tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        kopf.on.login(registry=registry)(self._login)

    def _login(self, **_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=self.server, insecure=True, scheme=None, default_namespace="default"
        )

    def replace_registry(self, registry: kopf.OperatorRegistry) -> None:
        """Start with this registry from now on: a new process, with none of the in-memory
        state the handlers of the previous one kept (e.g. made by a fresh `make_registry()`)."""
        if self.running:
            raise RuntimeError("stop the operator first")
        kopf.on.login(registry=registry)(self._login)
        self.registry = registry

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, ready_within: float = 10.0) -> None:
        if self.running:
            raise RuntimeError("the operator is already running")
        loop = asyncio.get_running_loop()
        _mark_outsiders(loop)
        self._stop_flag, ready = asyncio.Event(), asyncio.Event()
        context = contextvars.copy_context()
        context.run(_IN_KOPF.set, self._kopf_tasks)
        self._task = loop.create_task(
            self._operate(self._stop_flag, ready), name="kopf", context=context
        )
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait(
            {waiter, self._task}, timeout=ready_within, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if self._task.done():
            self._task.result()  # re-raise why it died
            raise RuntimeError("the operator exited during its start-up")
        if not ready.is_set():
            await self.stop()
            raise TimeoutError(f"the operator was not ready within {ready_within}s")
        self.starts += 1

    async def _operate(self, stop_flag: asyncio.Event, ready: asyncio.Event) -> None:
        existing = asyncio.all_tasks()  # as kopf.operator() does, plus _OUTSIDERS
        tasks = await kopf.spawn_tasks(
            registry=self.registry,
            clusterwide=True,
            standalone=True,
            stop_flag=stop_flag,
            ready_flag=ready,
            liveness_endpoint=self.liveness,
        )
        await kopf.run_tasks(tasks, ignored=_NotKopfs(existing))

    async def stop(self, grace: float = 0.5) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        assert self._stop_flag is not None
        self._stop_flag.set()
        done, _ = await asyncio.wait({task}, timeout=grace)
        # Kopf's own shutdown awaits its core tasks inside a `finally` after the first cancel;
        # under load one of them can outlive it and that await never returns (seen as a hang
        # in fixture teardown). Each further cancel interrupts whatever Kopf awaits then.
        for _attempt in range(_CANCELS):
            if done:
                break
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=_CANCEL_WAIT)
        if not done:
            raise RuntimeError(f"the operator did not stop after {_CANCELS} cancels")
        await _stop_stragglers(self._kopf_tasks)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def restart(self) -> None:
        await self.stop()
        await self.start()


async def _stop_stragglers(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel the tasks Kopf started and left running (a cancelled operator does not wait for
    all of them: a watcher still drains its workers, which give a daemon its
    `cancellation_timeout`); one that outlives every cancel would hang the loop's close.

    A Kopf scheduler's own helpers ("spawner of ...", "cleaner of ...") are left to their
    scheduler while anything else runs: `Scheduler.close()` waits for the cleaner's notice
    that its last worker is gone, so cancelling the cleaner first makes that close (and the
    watcher draining through it) wait forever."""
    left = {task for task in tasks if not task.done()}
    for _attempt in range(_CANCELS):
        if not left:
            return
        owners = {task for task in left if not _scheduler_helper(task)}
        for task in owners or left:  # helpers only once their owners are gone
            task.cancel()
        _, left = await asyncio.wait(left, timeout=_CANCEL_WAIT)
    if left:
        stuck = [task for task in tasks if not task.done()]
        where = "\n".join(f"{task.get_name()}: {_stack(task)}" for task in stuck)
        raise RuntimeError(f"Kopf tasks ignore their cancel:\n{where}")


def _scheduler_helper(task: asyncio.Task[Any]) -> bool:
    return task.get_name().startswith(("spawner of ", "cleaner of "))


def _stack(task: asyncio.Task[Any]) -> str:
    return " <- ".join(
        f"{frame.f_code.co_name} {frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}"
        for frame in task.get_stack()
    )


def kube_configuration(server: str) -> kubernetes.client.Configuration:
    """A configuration of the official client for the emulator (plain HTTP, no TLS checks)."""
    config = kubernetes.client.Configuration(host=server)
    config.verify_ssl = False
    return config
