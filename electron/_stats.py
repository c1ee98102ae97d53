"""Stats: one consistent snapshot of an ArenaOfPools."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ("Stats",)


@dataclass(frozen=True, slots=True)
class Stats:
    """What an :class:`ArenaOfPools` holds and has done, taken under its lock.

    Byte figures count capacity: an arena lent out counts in full whatever it has used.
    """

    active_arenas: int  #: arenas lent out now
    pooled_arenas: int  #: idle arenas kept for reuse
    arenas_created: int  #: arena regions allocated fresh
    arenas_reused: int  #: arena hand-outs served from the pool
    active_buffers: int  #: buffers lent out now
    pooled_buffers: int  #: idle buffers kept for reuse
    buffers_created: int  #: buffer regions allocated fresh
    bytes_reserved: int  #: all bytes the pool holds: lent, idle and quarantined
    bytes_in_use: int  #: bytes lent out now (arenas and buffers)
    high_water_bytes: int  #: the most ``bytes_reserved`` has ever been
    quarantined: int  #: regions held back now because something still exports them
    quarantine_events: int  #: times a region had to be held back or dropped for that reason
    waiting: int  #: callers waiting for an arena now
    waits: int  #: get_arena calls that had to wait
    wait_timeouts: int  #: waits that ended in PoolExhausted
    trimmed_bytes: int  #: idle bytes released by trimming
    arena_used_bytes_total: int  #: bytes used by arenas when they came back (metrics=True)
    arena_used_bytes_max: int  #: the most one arena had used when it came back (metrics=True)
    leaks_detected: int  #: arenas and buffers garbage-collected without being given back
    arena_size: int  #: capacity of newly lent arenas (learnt when ``arena_size="auto"``)

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict (for JSON, logs and metrics)."""
        return asdict(self)
