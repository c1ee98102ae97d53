"""MiddlewareStatistics and RouteUsage: what the aiohttp middleware has done."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ("OTHER_ROUTES", "MiddlewareStatistics", "RouteUsage")

#: The route that routes beyond the middleware's ``max_routes`` are counted under.
OTHER_ROUTES = "(other)"


@dataclass(frozen=True, slots=True)
class MiddlewareStatistics:
    """A snapshot of a :class:`Middleware`'s counters (all since it was made)."""

    #: requests that were lent an arena (on first use, or by waiting for the budget); a
    #: request that never touches electron memory is not counted (it costs nothing)
    requests: int
    in_flight: int  #: leases not given back yet (handler running or response still sending)
    rejected: int  #: requests answered 503 because the budget was exhausted
    deferred: int  #: leases kept past the handler because the response may reference them
    flush_waits: int  #: leases that waited for the transport to flush pooled memory
    errors: int  #: handlers that raised (other than HTTP exceptions); their arena came back
    cancelled: int  #: handlers that were cancelled; their arena came back
    too_large: int  #: request bodies refused with 413 by :func:`read_body`

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict (for JSON, logs and metrics)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RouteUsage:
    """Electron memory used by the requests of one route (those that used any).

    ``bytes_total`` adds, over those requests, the arena bytes each used plus the capacity
    of the pooled buffers it took (as lent); ``bytes_max`` is the most one request took.
    """

    route: str  #: the route's canonical path (``"(unmatched)"`` for 404/405 answers)
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
