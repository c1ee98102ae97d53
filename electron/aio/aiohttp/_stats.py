"""MiddlewareStatistics: what the aiohttp middleware has done."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ("MiddlewareStatistics",)


@dataclass(frozen=True, slots=True)
class MiddlewareStatistics:
    """A snapshot of a :class:`Middleware`'s counters (all since it was made)."""

    requests: int  #: requests that were lent an arena
    in_flight: int  #: leases not given back yet (handler running or response still sending)
    rejected: int  #: requests answered 503 because the budget stayed exhausted
    deferred: int  #: leases kept past the handler because the response may reference them
    flush_waits: int  #: leases that waited for the transport to flush pooled memory
    errors: int  #: handlers that raised (other than HTTP exceptions); their arena came back
    cancelled: int  #: handlers that were cancelled; their arena came back
    too_large: int  #: request bodies refused with 413 by :func:`read_body`

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict (for JSON, logs and metrics)."""
        return asdict(self)
