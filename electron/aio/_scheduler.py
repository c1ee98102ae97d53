"""Scheduler: a fixed set of worker tasks running submitted jobs, each in its own arena."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, TypeVarTuple, final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._arena_of_pools import ArenaOfPools
from .._checks import check_timeout
from .._errors import ElectronError, InvalidArgument, ResourceClosed

if TYPE_CHECKING:
    from typing import Self

__all__ = (
    "Job",
    "JobCancelled",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerFull",
    "SchedulerStatistics",
)

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

#: The most worker tasks a Scheduler runs (each is a task: more is a mistake, not a need).
MAX_WORKERS = 65_536


class SchedulerFull(ElectronError, anyio.WouldBlock):
    """:meth:`Scheduler.submit_nowait` found the queue full (``await submit()`` would wait)."""

    def __init__(self, queue_size: float) -> None:
        self.queue_size = queue_size
        super().__init__(
            f"the scheduler's queue is full ({queue_size:g} jobs waiting): await submit() to "
            "wait for room, raise queue_size, or add workers"
        )


class SchedulerClosed(ResourceClosed):
    """A job was submitted to a :class:`Scheduler` that is not running (not entered, or left)."""

    kind = "scheduler"

    def __init__(
        self, detail: str = "submit() only works inside 'async with Scheduler(...)'"
    ) -> None:
        super().__init__(detail)


class JobCancelled(ElectronError):
    """Raised by awaiting a :class:`Job` that was cancelled before it finished.

    A job is cancelled by :meth:`Job.cancel`, when the scheduler is left with an error or
    cancelled itself, or when the submitter was cancelled while its job was being queued.
    It is a plain exception (not the backend's cancellation exception), so awaiting a
    cancelled job never looks like a cancellation of the awaiting task.
    """

    def __init__(self) -> None:
        super().__init__("the job was cancelled before it finished")


@final
@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """A snapshot of a :class:`Scheduler` (like anyio's stream statistics)."""

    workers: int  #: worker tasks
    queue_size: float  #: how many jobs may wait in the queue (``math.inf``: no limit)
    queued: int  #: jobs in the queue, not yet taken by a worker
    running: int  #: jobs a worker is running now (including waiting for their arena)
    waiting_submitters: int  #: tasks blocked in :meth:`Scheduler.submit` for room in the queue
    submitted: int  #: jobs accepted so far
    completed: int  #: jobs that returned a result
    failed: int  #: jobs that raised an exception
    cancelled: int  #: jobs cancelled before they finished


_PENDING, _RUNNING, _DONE = 0, 1, 2


class Job(Generic[T]):
    """The handle :meth:`Scheduler.submit` returns: await it for the job's result.

    ``await job`` returns what the job returned or raises what it raised (any number of
    tasks may await it); a cancelled job raises :class:`JobCancelled`. :meth:`cancel`
    cancels it whether it is still queued or already running.
    """

    __slots__ = (
        "__weakref__",
        "_args",
        "_cancel_scope",
        "_cancelled",
        "_error",
        "_event",
        "_fn",
        "_result",
        "_scheduler",
        "_state",
    )

    def __init__(
        self, scheduler: Scheduler, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]
    ) -> None:
        self._scheduler: Scheduler | None = scheduler
        self._fn: Callable[..., Awaitable[T]] | None = fn
        self._args = args
        self._state = _PENDING
        self._cancelled = False
        self._cancel_scope: anyio.CancelScope | None = None
        self._event: anyio.Event | None = None  # created when someone waits
        self._result: T | None = None
        self._error: BaseException | None = None

    # -- what the awaiting side sees ---------------------------------------------------------

    def done(self) -> bool:
        """True once the job returned, raised or was cancelled."""
        return self._state == _DONE

    def cancelled(self) -> bool:
        """True if the job was cancelled before it finished."""
        return self._cancelled

    def result(self) -> T:
        """The job's result; raises its exception, or :class:`JobCancelled`.

        Raises :class:`RuntimeError` if the job has not finished yet (await it instead).
        """
        if self._state != _DONE:
            raise RuntimeError("the job has not finished yet; await it")
        if self._cancelled:
            raise JobCancelled()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The exception the job raised (``None`` if it returned); see :meth:`result`."""
        if self._state != _DONE:
            raise RuntimeError("the job has not finished yet; await it")
        if self._cancelled:
            raise JobCancelled()
        return self._error

    def cancel(self) -> bool:
        """Cancel the job: a queued one never starts, a running one gets a cancellation.

        Returns False if the job had already finished. Awaiting a cancelled job raises
        :class:`JobCancelled`. A running job that catches its cancellation and returns still
        counts as cancelled.
        """
        if self._state == _DONE:
            return False
        if self._state == _RUNNING:
            assert self._cancel_scope is not None
            self._cancel_scope.cancel()
            return True
        self._finish_cancelled()
        return True

    async def wait(self) -> T:
        """Wait for the job to finish; return its result or raise (see :meth:`result`)."""
        if self._state != _DONE:
            event = self._event
            if event is None:
                event = self._event = anyio.Event()
            await event.wait()
        else:
            await anyio.lowlevel.checkpoint()
        return self.result()

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = ("pending", "running", "done")[self._state]
        if self._cancelled:
            state = "cancelled"
        return f"<Job {state} {getattr(self._fn, '__qualname__', self._fn)!r}>"

    # -- what the worker side does -----------------------------------------------------------

    def _finish(self) -> None:
        self._state = _DONE
        self._fn = None
        self._args = ()
        self._cancel_scope = None
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler._job_finished(self)
        if self._event is not None:
            self._event.set()

    def _finish_cancelled(self) -> None:
        self._cancelled = True
        self._finish()

    async def _run(self, aop: ArenaOfPools | None, arena_timeout: float | None) -> None:
        """Run the job on the calling worker task, recording how it ended."""
        fn, args = self._fn, self._args
        assert fn is not None
        self._state = _RUNNING
        with anyio.CancelScope() as scope:
            self._cancel_scope = scope
            try:
                if aop is None:
                    result = await fn(*args)
                else:
                    async with aop.arena(timeout=arena_timeout):
                        result = await fn(*args)
            except Exception as exc:
                self._error = exc
                self._finish()
                return
            except BaseException:
                # The job's own cancel scope (cancel()) or the scheduler's: the job is
                # cancelled either way; anything but our own cancellation propagates.
                self._finish_cancelled()
                raise
        if self._state == _DONE:
            return  # cancel() reached it, and the exception handler above recorded that
        if scope.cancel_called:
            self._finish_cancelled()  # cancel() came, but the job returned anyway
        else:
            self._result = result
            self._finish()


class Scheduler:
    """Runs submitted async jobs on ``workers`` concurrent tasks (an anyio task group).

    Use it as ``async with Scheduler(4, aop=aop) as s:``; inside, :meth:`submit` queues a
    job and returns a :class:`Job` to await for its result. With ``aop``, each job runs in
    its own ``aop.arena()`` scope (so :func:`~electron.aio.current_arena` works in it, and
    the arena goes back when the job ends). Jobs run in the workers' context (a copy of the
    context where the scheduler was entered), not the submitter's.

    The queue holds at most ``queue_size`` jobs (default ``4 * workers``; ``math.inf`` for
    no limit): when it is full, ``await submit()`` waits for room and :meth:`submit_nowait`
    raises :class:`SchedulerFull`. Leaving the block normally waits for every submitted job
    (including jobs that jobs submit meanwhile); leaving it with an exception, or being
    cancelled while waiting, cancels every job still queued or running. Either way no task
    is left behind, and a job's exception only ever reaches whoever awaits its handle.
    Works on asyncio, uvloop and trio; use it from the tasks of the event loop it runs on.
    """

    def __init__(
        self,
        workers: int,
        *,
        aop: ArenaOfPools | None = None,
        queue_size: float | None = None,
        arena_timeout: float | None = None,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"workers must be an int, not {type(workers).__name__}")
        if not 1 <= workers <= MAX_WORKERS:
            raise InvalidArgument("workers", workers, f"an int in [1, {MAX_WORKERS}]")
        if queue_size is None:
            queue_size = 4 * workers
        elif isinstance(queue_size, bool) or not isinstance(queue_size, int | float):
            kind = type(queue_size).__name__
            raise TypeError(f"queue_size must be an int or math.inf, not {kind}")
        elif queue_size != math.inf and not (isinstance(queue_size, int) and queue_size >= 0):
            raise InvalidArgument("queue_size", queue_size, "an int >= 0 or math.inf")
        if aop is not None and not isinstance(aop, ArenaOfPools):
            raise TypeError(f"aop must be an ArenaOfPools or None, not {type(aop).__name__}")
        arena_timeout = check_timeout(arena_timeout, "arena_timeout")
        self._workers = workers
        self._queue_size = queue_size
        self._aop = aop
        self._arena_timeout = arena_timeout
        self._tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[Job[Any]] | None = None
        self._receive: MemoryObjectReceiveStream[Job[Any]] | None = None
        self._entered = False
        self._unfinished = 0  # accepted jobs not yet done (queued, being queued or running)
        self._idle: anyio.Event | None = None  # set when _unfinished drops to 0
        self._running = 0
        self._submitted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a Scheduler can be entered only once; create a new one")
        self._entered = True
        self._send, self._receive = anyio.create_memory_object_stream[Job[Any]](self._queue_size)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            for i in range(self._workers):
                tg.start_soon(self._worker, name=f"electron.aio.Scheduler worker {i}")
        except BaseException as exc:
            tg.cancel_scope.cancel()
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg = self._tg
        assert tg is not None
        # The body's own exception is never passed to the task group: it would come back
        # wrapped in an ExceptionGroup. The workers are cancelled by hand instead.
        try:
            if exc_type is None:
                try:
                    await self._drain()
                except BaseException:
                    self._stop(cancel=True)
                    await tg.__aexit__(None, None, None)
                    raise
            self._stop(cancel=exc_type is not None)
            await tg.__aexit__(None, None, None)
        finally:
            self._cancel_leftovers()

    async def _drain(self) -> None:
        while self._unfinished:
            self._idle = anyio.Event()
            await self._idle.wait()

    def _stop(self, *, cancel: bool) -> None:
        assert self._send is not None
        assert self._tg is not None
        self._send.close()  # workers finish what is queued, then their loops end
        if cancel:
            self._tg.cancel_scope.cancel()

    def _cancel_leftovers(self) -> None:
        receive, self._receive = self._receive, None
        self._send = None
        if receive is None:
            return
        while True:
            try:
                job = receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            if not job.done():
                job._finish_cancelled()
        receive.close()

    async def _worker(self) -> None:
        receive = self._receive
        assert receive is not None
        aop, arena_timeout = self._aop, self._arena_timeout
        with receive.clone() as jobs:
            async for job in jobs:
                if job._state != _PENDING:
                    continue  # cancelled while it sat in the queue
                self._running += 1
                try:
                    await job._run(aop, arena_timeout)
                finally:
                    self._running -= 1

    # -- submitting -------------------------------------------------------------------------

    def _new_job(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> Job[T]:
        if self._send is None:
            raise SchedulerClosed()
        job = Job(self, fn, args)
        self._unfinished += 1
        self._submitted += 1
        return job

    async def submit(self, fn: Callable[[*PosArgsT], Awaitable[T]], /, *args: *PosArgsT) -> Job[T]:
        """Queue ``fn(*args)`` (an async function) and return its :class:`Job` handle.

        Waits for room when the queue is full. Raises :class:`SchedulerClosed` outside the
        ``async with`` block. If the caller is cancelled while waiting, the job is
        cancelled too (it never runs). Keyword arguments: use ``functools.partial``.
        """
        job = self._new_job(fn, args)
        send = self._send
        assert send is not None
        try:
            await send.send(job)
        except anyio.ClosedResourceError:
            job._finish_cancelled()
            raise SchedulerClosed("the scheduler is stopping") from None
        except BaseException:
            # anyio may already have moved the job into the queue; cancelled, it never runs.
            job._finish_cancelled()
            raise
        return job

    def submit_nowait(self, fn: Callable[[*PosArgsT], Awaitable[T]], /, *args: *PosArgsT) -> Job[T]:
        """Like :meth:`submit`, but raise :class:`SchedulerFull` instead of waiting for room."""
        job = self._new_job(fn, args)
        send = self._send
        assert send is not None
        try:
            send.send_nowait(job)
        except anyio.WouldBlock:
            job._finish_cancelled()
            raise SchedulerFull(self._queue_size) from None
        except anyio.ClosedResourceError:
            job._finish_cancelled()
            raise SchedulerClosed("the scheduler is stopping") from None
        return job

    async def run(self, fn: Callable[[*PosArgsT], Awaitable[T]], /, *args: *PosArgsT) -> T:
        """Submit ``fn(*args)`` and wait for its result (``await (await submit(...))``)."""
        job = await self.submit(fn, *args)
        try:
            return await job
        except BaseException:
            job.cancel()  # the caller gave up (cancelled): the job need not run on
            raise

    # -- bookkeeping ------------------------------------------------------------------------

    def _job_finished(self, job: Job[Any]) -> None:
        if job._cancelled:
            self._cancelled += 1
        elif job._error is not None:
            self._failed += 1
        else:
            self._completed += 1
        self._unfinished -= 1
        if self._unfinished == 0 and self._idle is not None:
            self._idle.set()

    def statistics(self) -> SchedulerStatistics:
        """A snapshot of the queue and of what the jobs did so far."""
        queued = waiting = 0
        if self._send is not None:
            stream = self._send.statistics()
            queued, waiting = stream.current_buffer_used, stream.tasks_waiting_send
        return SchedulerStatistics(
            workers=self._workers,
            queue_size=self._queue_size,
            queued=queued,
            running=self._running,
            waiting_submitters=waiting,
            submitted=self._submitted,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
        )

    @property
    def workers(self) -> int:
        """How many jobs may run at once."""
        return self._workers

    def __repr__(self) -> str:
        state = "running" if self._send is not None else "idle"
        return f"<Scheduler {state} workers={self._workers} unfinished={self._unfinished}>"
