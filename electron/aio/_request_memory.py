"""The framework-free half of electron's web glue: one request's memory, and the counters.

A web framework's glue (``electron.aio.aiohttp``, ``electron.asgi``) gives every request one
:class:`RequestLease` on first use and gives it back, in one step, once the response can no
longer reference it. What a lease holds (the request's arena, lent on first use, and the
pooled buffers it took), how it goes back, and what the glue counts
(:class:`MiddlewareStatistics`, :class:`RouteUsage`, usage listeners for
``electron.metrics``) are the same for every framework and live here; how a request is
found, when its response is complete and how refusals are answered stay in the glue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TypedDict

from .._arena import Arena
from .._arena_of_pools import ArenaOfPools
from .._buffer import Buffer
from .._checks import check_size, check_timeout
from .._errors import ArenaClosed, InsufficientCapacity, PoolExhausted

__all__ = (
    "LENDING",
    "OTHER_ROUTES",
    "UNMATCHED",
    "MiddlewareStatistics",
    "RequestLease",
    "RequestMemoryOptions",
    "RequestMemoryOwner",
    "RouteUsage",
    "ended",
    "give_back_body",
    "never_fits",
)

#: The route that routes beyond the middleware's ``max_routes`` are counted under.
OTHER_ROUTES = "(other)"
#: The route of a request that matched none of the app's routes (a 404 or 405).
UNMATCHED = "(unmatched)"

_log = logging.getLogger("electron.aio")

# Serialises first uses, so that a request is lent one arena however many of its tasks and
# threads (``to_thread``) ask at once. Reentrant: a finaliser run by a garbage collection
# inside the locked section may call back in.
LENDING = threading.RLock()


@dataclass(frozen=True, slots=True)
class MiddlewareStatistics:
    """A snapshot of an electron middleware's counters (all since it was made)."""

    #: requests that were lent an arena (on first use, or by waiting for the budget); a
    #: request that never touches electron memory is not counted (it costs nothing)
    requests: int
    in_flight: int  #: leases not given back yet (handler running or response still sending)
    rejected: int  #: requests answered 503 because the budget was exhausted
    deferred: int  #: leases kept past the handler because the response may reference them
    flush_waits: int  #: leases that waited for the transport to flush pooled memory
    errors: int  #: handlers that raised (other than HTTP exceptions); their arena came back
    cancelled: int  #: handlers that were cancelled; their arena came back
    too_large: int  #: request bodies refused with 413

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict (for JSON, logs and metrics)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RouteUsage:
    """Electron memory used by the requests of one route (those that used any).

    ``bytes_total`` adds, over those requests, the arena bytes each used plus the capacity
    of the pooled buffers it took (as lent); ``bytes_max`` is the most one request took.
    """

    route: str  #: the route's path template (``"(unmatched)"`` when no route matched)
    requests: int  #: requests of this route that used electron memory
    bytes_total: int  #: bytes those requests took, added up
    bytes_max: int  #: the most one of them took

    @property
    def bytes_mean(self) -> float:
        """Average bytes per request (0 without requests)."""
        return self.bytes_total / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, str | int]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


class RequestMemoryOptions(TypedDict, total=False):
    """The options every electron middleware takes (see :class:`RequestMemoryOwner`)."""

    acquire_timeout: float | None
    retry_after: int
    body_limit: int
    body_timeout: float | None
    exclude: Iterable[str]
    max_routes: int


class RequestMemoryOwner:
    """What every electron middleware has: its pool, its options and its counters.

    The options mean the same for every framework: ``acquire_timeout`` (seconds a request
    waits for the budget before 503; ``None``: forever), ``retry_after`` (the 503's
    ``Retry-After``), ``body_limit`` and ``body_timeout`` (``read_body``'s limit, 413 beyond,
    and its wait for each part of a body, 408 after), ``exclude`` (paths that get no
    memory) and ``max_routes`` (routes tracked by :meth:`route_usage`). The middleware is a
    ``UsageSource`` of :mod:`electron.metrics` (:meth:`statistics`,
    :meth:`add_usage_listener`).
    """

    def __init__(
        self,
        *,
        aop: ArenaOfPools,
        acquire_timeout: float | None = 1.0,
        retry_after: int = 1,
        body_limit: int = 1 << 20,
        body_timeout: float | None = 30.0,
        exclude: Iterable[str] = (),
        max_routes: int = 256,
    ) -> None:
        if not isinstance(aop, ArenaOfPools):
            raise TypeError(f"aop must be an ArenaOfPools, not {type(aop).__name__}")
        if isinstance(exclude, str):
            raise TypeError("exclude must be an iterable of paths, not one str")
        self.aop = aop
        self.acquire_timeout = check_timeout(acquire_timeout, "acquire_timeout")
        self.retry_after = check_size(retry_after, "retry_after")
        self.body_limit = check_size(body_limit, "body_limit")
        self.body_timeout = check_timeout(body_timeout, "body_timeout")
        self.exclude = frozenset(exclude)
        self.max_routes = check_size(max_routes, "max_routes")
        self._bounded = aop.max_arenas is not None or aop.max_bytes is not None
        self._lent = 0  # requests lent an arena
        self._released = 0
        self._rejected = 0
        self._deferred = 0
        self._flush_waits = 0
        self._errors = 0
        self._cancelled = 0
        self._too_large = 0
        # route -> [requests, bytes, largest]: requests that used electron memory
        self._routes: dict[str, list[int]] = {}
        self._listeners: tuple[Callable[[str, int], object], ...] = ()

    def _body_limit(self, limit: int | None) -> int:
        """The most a body may have: ``limit`` (default ``body_limit``), within the budget."""
        limit = self.body_limit if limit is None else check_size(limit, "limit")
        budget = self.aop.max_bytes
        return limit if budget is None else min(limit, budget)

    def _refuses_length(self, length: int | None, limit: int | None = None) -> int | None:
        """The limit a declared ``length`` is over (counted as a 413), else None."""
        if length is None:
            return None
        most = self._body_limit(limit)
        if length <= most:
            return None
        self._too_large += 1
        return most

    def _record(self, route: str, nbytes: int) -> None:
        """A request of ``route`` that used electron memory gave back ``nbytes``."""
        usage = self._routes.get(route)
        if usage is None:
            route, usage = self._new_route(route)
        usage[0] += 1
        usage[1] += nbytes
        if nbytes > usage[2]:
            usage[2] = nbytes
        for listener in self._listeners:
            try:
                listener(route, nbytes)
            except Exception:  # a metrics hook must never break a release
                _log.exception("electron: a usage listener failed")

    def _new_route(self, route: str) -> tuple[str, list[int]]:
        """The usage record a route seen for the first time is counted in: its own, or
        beyond ``max_routes`` that of :data:`OTHER_ROUTES`; and that route."""
        routes = self._routes
        if len(routes) >= self.max_routes:
            route = OTHER_ROUTES
            usage = routes.get(route)
            if usage is not None:
                return route, usage
        usage = routes[route] = [0, 0, 0]
        return route, usage

    def add_usage_listener(self, listener: Callable[[str, int], object]) -> None:
        """Call ``listener(route, nbytes)`` whenever a request that used electron memory
        gave it back (e.g. to observe a histogram). It runs on the event loop, inside the
        release: keep it quick and non-blocking; its exceptions are logged, not raised."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        self._listeners = (*self._listeners, listener)

    def route_usage(self, top: int | None = None) -> list[RouteUsage]:
        """Memory used per route, largest total first (at most ``top`` routes).

        Counts the requests that used electron memory (those that did not cost nothing and
        are not counted); routes beyond ``max_routes`` are merged into ``"(other)"``.
        """
        rows = [RouteUsage(route, *usage) for route, usage in list(self._routes.items())]
        rows.sort(key=lambda r: (-r.bytes_total, r.route))
        return rows if top is None else rows[: check_size(top, "top")]

    def statistics(self) -> MiddlewareStatistics:
        """A snapshot of this middleware's counters."""
        return MiddlewareStatistics(
            requests=self._lent,
            in_flight=self._lent - self._released,
            rejected=self._rejected,
            deferred=self._deferred,
            flush_waits=self._flush_waits,
            errors=self._errors,
            cancelled=self._cancelled,
            too_large=self._too_large,
        )


def ended() -> ArenaClosed:
    """The error of a helper called once its request's memory went back."""
    return ArenaClosed("its request has ended: the request's memory went back with it")


def never_fits(exc: BaseException, lease: RequestLease | None) -> bool:
    """Whether ``exc`` says the request can never get the memory it asked for: more than
    the whole budget, or more than the budget leaves beside what ``lease`` holds itself.
    Waiting for other requests cannot help, so the answer is final, not a 503."""
    if isinstance(exc, InsufficientCapacity):
        return exc.where == "budget"
    return isinstance(exc, PoolExhausted) and lease is not None and lease.outgrows(exc)


class RequestLease:
    """One request's electron memory: the pooled buffers it took and its arena (lent on
    first use of :attr:`arena`), given back in one step by :meth:`release`.

    A glue subclasses it for what its framework adds (the response whose body is pooled
    memory, given back first by :meth:`_release_first`) and says which route the request
    took (:meth:`_route`, asked once, at the release).
    """

    __slots__ = ("_arena", "buffer_bytes", "buffers", "owner", "released")

    def __init__(self, owner: RequestMemoryOwner, arena: Arena | None = None) -> None:
        owner._lent += 1
        self.owner = owner
        self.buffers: list[Buffer] = []
        self.buffer_bytes = 0  # capacity of the buffers taken, as lent
        self.released = False
        self._arena = arena

    @property
    def arena(self) -> Arena:
        """The request's arena, lent on first use (:class:`~electron.PoolExhausted` beyond
        the budget); :class:`~electron.ArenaClosed` once the lease went back."""
        arena = self._arena
        if arena is None:
            lent = self.owner.aop.get_arena(0)  # PoolExhausted beyond the budget
            with LENDING:  # the request's tasks and threads may ask at once: one arena
                arena = self._arena
                if arena is None and not self.released:
                    arena = self._arena = lent
                    return arena
            lent.close()
            if arena is None:
                raise ended()
        return arena

    def buffer(self, size_hint: int) -> Buffer:
        """A pooled buffer that goes back with this lease."""
        buf = self.owner.aop.get_buffer(size_hint)
        self.buffers.append(buf)
        self.buffer_bytes += buf.capacity
        if self.released:  # the request ended in another thread meanwhile
            buf.close()
            raise ended()
        return buf

    def outgrows(self, exc: PoolExhausted) -> bool:
        """Whether what ``exc`` refused, beside what this request holds itself, is more than
        the whole ``max_bytes``: waiting for other requests could never make it fit."""
        limit = self.owner.aop.max_bytes
        if limit is None or exc.nbytes is None or self.released:
            return False
        arena = self._arena
        held = sum(buf.capacity for buf in self.buffers)
        if arena is not None and not arena.closed:
            held += arena.capacity
        return held + exc.nbytes > limit

    def refused_body(self, exc: InsufficientCapacity | PoolExhausted) -> int | None:
        """The limit a body that failed to grow with ``exc`` can never exceed, counted as a
        final 413: more than the whole budget (``exc.capacity``), or than it leaves beside
        what this request holds itself (``max_bytes``); None when other requests only spent
        the budget for now (a 503, retry)."""
        if isinstance(exc, InsufficientCapacity):
            most = exc.capacity
        elif self.outgrows(exc):
            most = self.owner.aop.max_bytes or 0
        else:
            return None
        self.owner._too_large += 1
        return most

    def _route(self) -> str:
        """The route the request took, for the owner's per-route usage."""
        return UNMATCHED

    def _release_first(self) -> BaseException | None:
        """Give back what must go before the buffers (a response's body); the error, if any."""
        return None

    def release(self) -> None:
        """Give the response's body, the buffers and the arena back now. Idempotent."""
        if self.released:
            return
        self.released = True
        owner = self.owner
        owner._released += 1
        used = self.buffer_bytes
        error = self._release_first()
        buffers, self.buffers = self.buffers, []
        for buf in buffers:
            try:
                buf.close()
            except BaseException as exc:  # give the rest back before reporting it
                error = error or exc
        with LENDING:
            arena, self._arena = self._arena, None
        if arena is not None:
            try:
                if not arena.closed:
                    used += arena.used
                arena.close()
            except BaseException as exc:
                error = error or exc
        try:
            route = self._route()
        except Exception:  # the route is for statistics: never let it break a release
            route = UNMATCHED
        owner._record(route, used)
        if error is not None:
            raise error


def give_back_body(
    view: memoryview | None,
    own_view: bool,
    on_release: Callable[[], object] | None,
    buf: Buffer | None,
) -> None:
    """Give a pooled response body back: release ``view`` if the response made it
    (``own_view``), call ``on_release``, and give ``buf`` (the body's buffer, whose views go
    back with it) to its pool whatever the callback raised."""
    try:
        if view is not None and own_view:
            try:
                view.release()
            except BufferError:
                pass  # still exported somewhere: the pool quarantines the memory
        if on_release is not None:
            on_release()
    finally:
        if buf is not None:
            buf.close()
